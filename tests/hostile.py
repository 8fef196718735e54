"""Builders of hostile uploads: archives that try to escape, explode or hide, and images
and CSVs that are broken in the ways real clients and attackers break them."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from collections.abc import Iterable, Mapping

import py7zr
from PIL import Image

ZEROS_BOMB_BYTES = 10 * 1024 * 1024  # compresses to a few KB: over the ratio cap, under the size cap


Entries = Iterable[tuple[str, bytes]] | Mapping[str, bytes]  # (name, bytes) pairs, or name → bytes


def _pairs(entries: Entries) -> Iterable[tuple[str, bytes]]:
    return entries.items() if isinstance(entries, Mapping) else entries


def zip_of(entries: Entries, compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in _pairs(entries):
            # ZipInfo keeps the name verbatim (writestr(str) would normalise backslashes)
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def zip_symlink(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.external_attr = 0o120777 << 16
        archive.writestr(info, target)
    return buffer.getvalue()


def zip_encrypted_entry(name: str, data: bytes) -> bytes:
    """An entry flagged as encrypted (general purpose bit 0), as zip -e writes it."""
    # zipfile cannot encrypt and clears the flag when writing: it is set in both headers after
    data = bytearray(zip_of([(name, data)], compress=False))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = bytes(data).index(signature) + flag_offset
        data[at] |= 0x1
    return bytes(data)


def tar_of(entries: Iterable[tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_special(name: str, kind: bytes, linkname: str = "", mode: str = "w:gz") -> bytes:
    """A tar holding one link, device or fifo entry (`kind` is a tarfile type such as SYMTYPE)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        archive.addfile(info)
    return buffer.getvalue()


def tar_of_dirs(count: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(count):
            info = tarfile.TarInfo(f"d{index}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
    return buffer.getvalue()


def seven_zip_of(entries: Entries, password: str | None = None, encrypt_header: bool = False) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password, header_encryption=encrypt_header) as archive:
        for name, data in _pairs(entries):
            # _writestr: the public writestr refuses unsafe names, which is what an attacker's
            # own tool would not do
            archive._writestr(data, name)
    return buffer.getvalue()


def png(width: int = 16, height: int = 16, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), "white" if mode == "RGB" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel_bomb_png() -> bytes:
    """100 megapixels of one colour: a few hundred KB that would decode to 100 MB."""
    return png(10_000, 10_000, mode="L")


def truncated_png() -> bytes:
    return png(64, 64)[:80]


def tiff() -> bytes:
    """A real image, in a format outside the whitelist."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="TIFF")
    return buffer.getvalue()


def incompressible(size: int) -> bytes:
    return os.urandom(size)
