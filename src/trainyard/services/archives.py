"""Safe extraction of uploaded .zip, .tar.gz, .tar and .7z archives.

Every member name is checked before anything is written (no absolute paths, no `..`, no
backslashes or drive letters), links and devices are refused, and the file count and total
uncompressed size are capped while the bytes stream, so a bomb stops at the cap rather than
at the end of the disk. A .7z is decoded by py7zr, whose decoders stop at each member's
declared size: the declared sizes are checked against the caps before anything is written.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import InvalidInput

CHUNK = 1024 * 1024
DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
TAR_MAGIC_OFFSET = 257  # a POSIX (and GNU) tar header says "ustar" here


# Magic numbers of archive formats: a member that starts with one is an archive inside the
# archive, refused rather than left for a later step to open without these caps.
NESTED_ARCHIVE_MAGIC = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (SEVEN_ZIP_MAGIC, "7z"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"Rar!\x1a\x07", "rar"),
)
# The compression ratio is only judged past this many expanded bytes: small text files
# (annotations, labels) legitimately compress far better than the cap.
RATIO_FLOOR_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_files: int
    max_total_bytes: int
    # expanded bytes per archive byte: images and videos barely compress, so a dataset stays
    # far below this, while a bomb (zeros, repeated blocks) is 1000:1 and more
    max_ratio: int = 200


def is_visible_name(name: str) -> bool:
    """Not archive clutter: dot files (.DS_Store, ._x) and macOS's __MACOSX folder are
    skipped by every dataset reader."""
    return not name.startswith(".") and name != "__MACOSX"


def safe_member_path(name: str) -> PurePosixPath:
    if "\\" in name or DRIVE_LETTER.match(name) or name.startswith("/"):
        raise InvalidInput(f"archive entry {name!r} has an unsafe path")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise InvalidInput(f"archive entry {name!r} has an unsafe path")
    return path


def detect_archive_kind(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(TAR_MAGIC_OFFSET + 5)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(SEVEN_ZIP_MAGIC[:4]):
        return "7z"
    if head[TAR_MAGIC_OFFSET:] == b"ustar":
        return "tar"
    raise InvalidInput("file is not a .zip, .tar.gz or .7z archive (nor a plain .tar)")


def nested_archive_kind(head: bytes) -> str | None:
    """The archive format `head` (a member's first bytes) starts with, if any."""
    for magic, kind in NESTED_ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    return None


class _Budget:
    def __init__(self, limits: ArchiveLimits, archive_bytes: int) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0
        self.ratio_allowance = max(RATIO_FLOOR_BYTES, limits.max_ratio * archive_bytes)

    def add_file(self, name: str) -> None:
        # directories count too: a million empty folders would otherwise pass
        self.files += 1
        if self.files > self.limits.max_files:
            raise InvalidInput(f"archive has more than {self.limits.max_files} files (at {name!r})")

    def _count(self, size: int, name: str) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_total_bytes:
            raise InvalidInput(
                f"archive expands to more than {self.limits.max_total_bytes} bytes (at {name!r})"
            )
        if self.bytes > self.ratio_allowance:
            raise InvalidInput(
                f"archive expands more than {self.limits.max_ratio} times its own size (at {name!r});"
                " refused as a compression bomb"
            )

    def copy(self, source: IO[bytes], target: Path, name: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            first = True
            while chunk := source.read(CHUNK):
                if first:
                    nested = nested_archive_kind(chunk)
                    if nested is not None:
                        raise InvalidInput(
                            f"archive entry {name!r} is itself a {nested} archive;"
                            " archives inside archives are not accepted"
                        )
                    first = False
                self._count(len(chunk), name)
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


def _tar_members(path: Path, kind: str) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    try:
        archive = tarfile.open(path, mode="r:gz" if kind == "tar.gz" else "r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"corrupt {kind} archive: {exc}") from exc
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
            raise InvalidInput(f"corrupt {kind} archive: {exc}") from exc


def _7z_members(path: Path, limits: ArchiveLimits) -> Iterator[tuple[str, bool, IO[bytes] | None]]:
    import py7zr  # noqa: PLC0415 - only .7z uploads need it
    from py7zr.exceptions import Bad7zFile, PasswordRequired  # noqa: PLC0415

    try:
        archive = py7zr.SevenZipFile(path)
    except PasswordRequired:
        # an encrypted header (7z -mhe): not even the names can be read
        raise InvalidInput("the 7z archive is encrypted") from None
    except (Bad7zFile, OSError, EOFError, ValueError) as exc:
        raise InvalidInput(f"corrupt 7z archive: {exc}") from exc
    with archive:
        if archive.needs_password():
            raise InvalidInput("the 7z archive is encrypted")
        entries = archive.list()
        # everything is checked from the header before extractall writes a byte
        if len(entries) > limits.max_files:
            raise InvalidInput(f"archive has more than {limits.max_files} files")
        declared = sum(entry.uncompressed or 0 for entry in entries if not entry.is_directory)
        if declared > limits.max_total_bytes:
            raise InvalidInput(f"archive expands to more than {limits.max_total_bytes} bytes")
        if declared > max(RATIO_FLOOR_BYTES, limits.max_ratio * path.stat().st_size):
            raise InvalidInput(
                f"archive expands more than {limits.max_ratio} times its own size;"
                " refused as a compression bomb"
            )
        for entry in entries:
            safe_member_path(entry.filename)
            if entry.is_symlink:
                raise InvalidInput(f"archive entry {entry.filename!r} is a symbolic link")
        with tempfile.TemporaryDirectory(prefix="7z-", dir=path.parent) as scratch:
            try:
                archive.extractall(path=scratch)
            except Exception as exc:  # py7zr raises many kinds for damaged data (CRC, LZMA, …)
                raise InvalidInput(f"corrupt 7z archive: {exc}") from exc
            for entry in entries:
                member = Path(scratch).joinpath(*PurePosixPath(entry.filename).parts)
                if entry.is_directory:
                    yield entry.filename, True, None
                    continue
                with member.open("rb") as stream:
                    yield entry.filename, False, stream


def extract_archive(path: Path, destination: Path, limits: ArchiveLimits) -> list[PurePosixPath]:
    """Extract into `destination` (which must be empty); returns the files' relative paths.
    On any error the destination is removed and InvalidInput names the problem."""
    kind = detect_archive_kind(path)
    if kind == "zip":
        members = _zip_members(path)
    elif kind in ("tar.gz", "tar"):
        members = _tar_members(path, kind)
    else:
        members = _7z_members(path, limits)
    budget = _Budget(limits, path.stat().st_size)
    extracted: list[PurePosixPath] = []
    destination.mkdir(parents=True, exist_ok=True)
    try:
        for name, is_dir, stream in members:
            relative = safe_member_path(name)
            budget.add_file(name)
            if is_dir or stream is None:
                # kept, so that an empty class folder is reported rather than unseen
                destination.joinpath(*relative.parts).mkdir(parents=True, exist_ok=True)
                continue
            budget.copy(stream, destination.joinpath(*relative.parts), name)
            extracted.append(relative)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return extracted
