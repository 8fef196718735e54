"""One behaviour suite for every BlobStore adapter: the disk store and S3 (moto), followed by
what only the S3 store offers (presigned POSTs, batched deletes, its download cache)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from moto import mock_aws

from trainyard.adapters.aws.s3_blobs import DELETE_BATCH_SIZE, S3BlobStore
from trainyard.adapters.local.disk_blobs import DiskBlobStore
from trainyard.errors import NotFound
from trainyard.ports import BlobStore

REGION = "us-east-1"
BUCKET = "trainyard-test-blobs"


def s3_store(tmp: Path) -> S3BlobStore:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    # no client passed: the store builds its own, as bootstrap's will
    return S3BlobStore(BUCKET, cache_dir=tmp / "s3-cache", region_name=REGION)


ADAPTERS: dict[str, Callable[[Path], BlobStore]] = {
    "disk": lambda tmp: DiskBlobStore(tmp / "blobs"),
    "s3": s3_store,
}
NEEDS_AWS = {"s3"}


def fake_aws(monkeypatch: pytest.MonkeyPatch) -> AbstractContextManager[object]:
    """moto's mock, with credentials that could never reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return mock_aws()


@pytest.fixture(params=sorted(ADAPTERS))
def blobs(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BlobStore]:
    with fake_aws(monkeypatch) if request.param in NEEDS_AWS else nullcontext():
        yield ADAPTERS[request.param](tmp_path)


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3BlobStore]:
    with fake_aws(monkeypatch):
        yield s3_store(tmp_path)


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


def test_a_prefix_is_a_folder_not_a_string_prefix(blobs: BlobStore) -> None:
    blobs.put_bytes("t/a/1.bin", b"one")
    blobs.put_bytes("t/ab/2.bin", b"two")
    assert blobs.list_keys("t/a") == ["t/a/1.bin"]
    assert blobs.list_keys("t/a/1.bin") == ["t/a/1.bin"]
    blobs.delete_prefix("t/a")
    assert blobs.list_keys("t/") == ["t/ab/2.bin"]


def test_overwriting_a_blob_replaces_what_local_path_gives(blobs: BlobStore) -> None:
    blobs.put_bytes("t/m/model.onnx", b"first")
    assert blobs.local_path("t/m/model.onnx").read_bytes() == b"first"
    blobs.put_bytes("t/m/model.onnx", b"second")
    assert blobs.local_path("t/m/model.onnx").read_bytes() == b"second"


def test_presigned_get_url(blobs: BlobStore) -> None:
    blobs.put_bytes("t/m/model.onnx", b"onnx")
    url = blobs.presigned_get_url("t/m/model.onnx", 300, filename="model v1.onnx")
    if isinstance(blobs, DiskBlobStore):
        assert url is None  # the API streams local files itself
        return
    assert url is not None
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.scheme == "https"
    assert parsed.hostname == f"{BUCKET}.s3.amazonaws.com" and parsed.path == "/t/m/model.onnx"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"][0]
    assert query["X-Amz-Expires"] == ["300"]
    assert query["response-content-disposition"] == [
        "attachment; filename=\"model v1.onnx\"; filename*=UTF-8''model%20v1.onnx"
    ]


# --- S3 only ----------------------------------------------------------------------------------


def test_presigned_post_pins_the_key_and_caps_the_size(s3: S3BlobStore) -> None:
    post = s3.presigned_post("uploads/t1/up_1", 600, max_bytes=5000)
    assert post.url == f"https://{BUCKET}.s3.amazonaws.com/"
    assert post.fields["key"] == "uploads/t1/up_1" and post.fields["x-amz-signature"]
    policy = json.loads(base64.b64decode(post.fields["policy"]))
    assert ["content-length-range", 1, 5000] in policy["conditions"]
    assert {"key": "uploads/t1/up_1"} in policy["conditions"]
    assert {"bucket": BUCKET} in policy["conditions"]


def test_delete_prefix_deletes_more_than_one_batch(s3: S3BlobStore) -> None:
    count = DELETE_BATCH_SIZE + 5
    client = boto3.client("s3", region_name=REGION)
    for i in range(count):
        client.put_object(Bucket=BUCKET, Key=f"t/many/{i:05d}", Body=b"")
    s3.put_bytes("t/kept", b"k")
    assert len(s3.list_keys("t/many/")) == count  # more than one list page (1000) as well
    s3.delete_prefix("t/many/")
    assert s3.list_keys("t/") == ["t/kept"]


def test_a_cached_copy_goes_with_its_blob(s3: S3BlobStore) -> None:
    s3.put_bytes("t/m/model.onnx", b"onnx")
    cached = s3.local_path("t/m/model.onnx")
    s3.delete_prefix("t/m/")
    assert not cached.exists()
    with pytest.raises(NotFound):
        s3.local_path("t/m/model.onnx")


def test_the_client_is_created_on_first_use_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    class FakeClient:
        def head_object(self, **_: object) -> dict[str, object]:
            return {}

    def fake_client(service: str, **_: object) -> FakeClient:
        created.append(service)
        return FakeClient()

    monkeypatch.setattr(boto3, "client", fake_client)
    store = S3BlobStore(BUCKET, cache_dir=tmp_path, region_name=REGION)
    assert created == []  # building the store (a cold start) costs no client
    assert store.exists("t/x") and store.exists("t/y")
    assert created == ["s3"]  # one client, reused
