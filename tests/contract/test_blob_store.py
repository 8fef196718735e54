"""One behaviour suite for every BlobStore adapter (disk here; S3 joins with the AWS path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trainyard.adapters.local.disk_blobs import DiskBlobStore
from trainyard.errors import NotFound
from trainyard.ports import BlobStore

ADAPTERS: dict[str, Callable[[Path], BlobStore]] = {"disk": lambda tmp: DiskBlobStore(tmp / "blobs")}


@pytest.fixture(params=sorted(ADAPTERS))
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return ADAPTERS[request.param](tmp_path)


def test_round_trip_list_and_delete_prefix(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes("t/a/1.bin", b"one")
    source = tmp_path / "src.bin"
    source.write_bytes(b"two")
    blobs.put_file("t/a/sub/2.bin", source)
    blobs.put_bytes("t/b/3.bin", b"three")
    assert blobs.get_bytes("t/a/1.bin") == b"one"
    assert blobs.local_path("t/a/sub/2.bin").read_bytes() == b"two"
    assert blobs.list_keys("t/a/") == ["t/a/1.bin", "t/a/sub/2.bin"]
    blobs.delete_prefix("t/a/")
    assert blobs.list_keys("t/a/") == [] and not blobs.exists("t/a/1.bin")
    assert blobs.exists("t/b/3.bin")


def test_missing_blobs_raise_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFound):
        blobs.get_bytes("nope/x")
    with pytest.raises(NotFound):
        blobs.local_path("nope/x")


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", ""])
def test_keys_cannot_escape_the_store(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        blobs.put_bytes(key, b"x")
