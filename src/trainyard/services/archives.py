"""Safe extraction of uploaded .zip and .tar.gz archives.

Every member name is checked before anything is written (no absolute paths, no `..`, no
backslashes or drive letters), links and devices are refused, and the file count and total
uncompressed size are capped while the bytes stream, so a bomb stops at the cap rather than
at the end of the disk.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import InvalidInput

CHUNK = 1024 * 1024
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int
    max_total_bytes: int


def safe_member_path(name: str) -> PurePosixPath:
    if "\\" in name or DRIVE_LETTER.match(name) or name.startswith("/"):
        raise InvalidInput(f"archive entry {name!r} has an unsafe path")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise InvalidInput(f"archive entry {name!r} has an unsafe path")
    return path


def detect_archive_kind(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise InvalidInput("file is not a .zip or .tar.gz archive")


class _Budget:
    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0

    def add_file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise InvalidInput(f"archive has more than {self.limits.max_files} files (at {name!r})")

    def copy(self, source: IO[bytes], target: Path, name: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := source.read(CHUNK):
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_total_bytes:
                    raise InvalidInput(
                        f"archive expands to more than {self.limits.max_total_bytes} bytes (at {name!r})"
                    )
                out.write(chunk)


def _zip_members(path: Path) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"corrupt zip archive: {exc}") from exc
    with archive:
        for info in archive.infolist():
            if info.flag_bits & 0x1:
                raise InvalidInput(f"archive entry {info.filename!r} is encrypted")
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) == 0o120000:
                raise InvalidInput(f"archive entry {info.filename!r} is a symbolic link")
            if info.is_dir():
                yield info.filename, True, None
                continue
            try:
                with archive.open(info) as member:
                    yield info.filename, False, member
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise InvalidInput(f"corrupt zip archive at {info.filename!r}: {exc}") from exc


def _tar_members(path: Path) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    try:
        archive = tarfile.open(path, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"corrupt tar.gz archive: {exc}") from exc
    with archive:
        try:
            for info in archive:
                if info.isdir():
                    yield info.name, True, None
                    continue
                if not info.isfile():
                    raise InvalidInput(f"archive entry {info.name!r} is a link or device")
                member = archive.extractfile(info)
                yield info.name, False, member
        except (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidInput(f"corrupt tar.gz archive: {exc}") from exc


def extract_archive(path: Path, destination: Path, limits: ArchiveLimits) -> list[PurePosixPath]:
    """Extract into `destination` (which must be empty); returns the files' relative paths.
    On any error the destination is removed and InvalidInput names the problem."""
    kind = detect_archive_kind(path)
    members = _zip_members(path) if kind == "zip" else _tar_members(path)
    budget = _Budget(limits)
    extracted: list[PurePosixPath] = []
    destination.mkdir(parents=True, exist_ok=True)
    try:
        for name, is_dir, stream in members:
            relative = safe_member_path(name)
            if is_dir or stream is None:
                # kept, so that an empty class folder is reported rather than unseen
                destination.joinpath(*relative.parts).mkdir(parents=True, exist_ok=True)
                continue
            budget.add_file(name)
            budget.copy(stream, destination.joinpath(*relative.parts), name)
            extracted.append(relative)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return extracted
