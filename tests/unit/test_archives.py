from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.synthetic import tar_bytes, tar_gz_bytes, zip_bytes
from trainyard.errors import InvalidInput
from trainyard.services.archives import ArchiveLimits, extract_archive

LIMITS = ArchiveLimits(max_files=100, max_total_bytes=1_000_000)


def _extract(tmp_path: Path, data: bytes, limits: ArchiveLimits = LIMITS) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = tmp_path / "upload"
    archive.write_bytes(data)
    return [p.as_posix() for p in extract_archive(archive, tmp_path / "out", limits)]


def test_zip_and_tar_extract_the_same_files(tmp_path: Path) -> None:
    files = [("a/1.txt", b"x"), ("b/2.txt", b"yy")]
    assert _extract(tmp_path / "z", zip_bytes(files)) == ["a/1.txt", "b/2.txt"]
    assert _extract(tmp_path / "t", tar_gz_bytes(files)) == ["a/1.txt", "b/2.txt"]


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "a/../../evil", "a\\..\\evil", "C:evil"])
def test_unsafe_member_paths_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="unsafe path"):
        _extract(tmp_path, zip_bytes([(name, b"x")]))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "evil.txt").exists()


def test_tar_links_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("a/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(InvalidInput, match="link or device"):
        _extract(tmp_path, buffer.getvalue())


def test_zip_symlink_entries_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("a/link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic link"):
        _extract(tmp_path, buffer.getvalue())


def test_size_cap_stops_a_bomb_while_streaming(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/zeros.bin", b"\0" * 5_000_000)  # ~5 KB compressed
    assert len(buffer.getvalue()) < 20_000
    with pytest.raises(InvalidInput, match="expands to more than"):
        _extract(tmp_path, buffer.getvalue())
    assert not (tmp_path / "out").exists()


def test_file_count_cap(tmp_path: Path) -> None:
    files = [(f"a/{i}.txt", b"x") for i in range(5)]
    with pytest.raises(InvalidInput, match="more than 4 files"):
        _extract(tmp_path, zip_bytes(files), ArchiveLimits(max_files=4, max_total_bytes=10**6))


@pytest.mark.parametrize("data", [b"not an archive at all", b"PK\x03\x04garbage", b"\x1f\x8bgarbage"])
def test_corrupt_or_unknown_archives(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidInput):
        _extract(tmp_path, data)


def test_a_plain_tar_extracts_like_a_tar_gz(tmp_path: Path) -> None:
    files = [("a/1.txt", b"x"), ("b/2.txt", b"yy")]
    assert _extract(tmp_path, tar_bytes(files)) == ["a/1.txt", "b/2.txt"]
    assert (tmp_path / "out" / "b" / "2.txt").read_bytes() == b"yy"
