"""Large uploads through HTTP on the local backend: POST /v1/uploads → PUT the bytes to the
URL it returns → POST /v1/datasets naming the upload. Uploads are per tenant, capped at
their declared size, and a rejected body leaves nothing behind."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from tests.synthetic import class_folder_zip
from trainyard.adapters.aws.s3_blobs import S3BlobStore
from trainyard.api.app import create_app
from trainyard.bootstrap import Services
from trainyard.errors import Conflict, NotFound
from trainyard.services.archives import ArchiveLimits
from trainyard.services.datasets import DatasetService
from trainyard.services.uploads import ApiUploadTransport, PresignedPostTransport, UploadService, upload_key

S3_REGION = "us-east-1"
S3_BUCKET = "trainyard-test-datasets"


def make_uploads(services: Services, **overrides: Any) -> UploadService:
    options: dict[str, Any] = {
        "max_upload_bytes": services.settings.max_upload_bytes,
        "expires_seconds": services.settings.presign_seconds,
    }
    return UploadService(services.blobs, ApiUploadTransport(), services.datasets, **{**options, **overrides})


@pytest.fixture
def uploads(services: Services) -> UploadService:
    return services.uploads  # as the composition root wires it


@pytest.fixture
def upload_client(client: TestClient) -> TestClient:
    return client


def start_upload(client: TestClient, size: int, filename: str = "shapes.zip") -> dict[str, Any]:
    response = client.post("/v1/uploads", json={"filename": filename, "size_bytes": size})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_the_local_backend_takes_the_bytes_at_its_own_put_route(upload_client: TestClient) -> None:
    archive = class_folder_zip(3, seed=11)
    body = start_upload(upload_client, len(archive))
    assert body["method"] == "PUT" and body["fields"] == {}
    assert body["url"] == f"http://testserver/v1/uploads/{body['upload_id']}"
    assert body["max_bytes"] == len(archive)
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)

    sent = upload_client.put(body["url"], content=archive)
    assert sent.status_code == 200, sent.text
    assert sent.json() == {"upload_id": body["upload_id"], "size_bytes": len(archive)}


def test_a_dataset_from_an_upload(upload_client: TestClient, services: Services) -> None:
    archive = class_folder_zip(4, seed=12)
    body = start_upload(upload_client, len(archive))
    assert upload_client.put(body["url"], content=archive).status_code == 200
    created = upload_client.post("/v1/datasets", json={"name": "shapes", "upload_id": body["upload_id"]})
    assert created.status_code == 201, created.text
    assert created.json()["classes"] == ["circle", "square", "triangle"]
    assert created.json()["image_count"] == 12
    assert services.blobs.list_keys("uploads/") == []  # the dataset consumed its upload


def test_the_service_makes_a_dataset_from_an_upload(
    upload_client: TestClient, uploads: UploadService, services: Services
) -> None:
    """What POST /v1/datasets {"name", "upload_id"} calls (UploadService.create_dataset)."""
    archive = class_folder_zip(4, seed=13)
    body = start_upload(upload_client, len(archive))
    assert upload_client.put(body["url"], content=archive).status_code == 200
    dataset = uploads.create_dataset("default", "shapes", body["upload_id"])
    assert dataset.classes == ["circle", "square", "triangle"] and dataset.image_count == 12
    assert upload_client.get(f"/v1/datasets/{dataset.id}").status_code == 200
    assert services.blobs.list_keys("uploads/") == []


def test_a_dataset_needs_the_bytes_first(upload_client: TestClient, uploads: UploadService) -> None:
    body = start_upload(upload_client, 1000)
    with pytest.raises(Conflict, match="has no data yet"):
        uploads.open_upload("default", body["upload_id"])


@pytest.mark.parametrize("chunked", [False, True], ids=["declared-length", "chunked"])
def test_a_body_over_the_declared_size_is_413_and_stores_nothing(
    upload_client: TestClient, services: Services, chunked: bool
) -> None:
    body = start_upload(upload_client, 100)
    payload = b"x" * 101
    # a chunked body declares no length, so the cap is enforced while streaming
    content: Any = iter([payload[:60], payload[60:]]) if chunked else payload
    response = upload_client.put(body["url"], content=content)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert not services.blobs.exists(upload_key("default", body["upload_id"]))
    assert files_under(services.settings.tmp_root) == []


def test_a_declared_size_over_the_service_limit_is_413(upload_client: TestClient, services: Services) -> None:
    limit = services.settings.max_upload_bytes
    response = upload_client.post("/v1/uploads", json={"filename": "big.zip", "size_bytes": limit + 1})
    assert response.status_code == 413, response.text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"filename": "a.zip"}, "size_bytes"),
        ({"filename": "a.zip", "size_bytes": "10"}, "size_bytes"),
        ({"filename": "a.zip", "size_bytes": True}, "size_bytes"),
        ({"filename": " ", "size_bytes": 10}, "filename"),
        ({"filename": "a.zip", "size_bytes": 0}, "size_bytes"),
        ({"filename": "a.zip", "size_bytes": 10, "purpose": "model"}, "purpose"),
        ({"filename": "a.zip", "size_bytes": 10, "extra": 1}, "unknown field"),
    ],
)
def test_bad_upload_requests_are_422(
    upload_client: TestClient, payload: dict[str, Any], message: str
) -> None:
    response = upload_client.post("/v1/uploads", json=payload)
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]


def test_another_tenants_upload_is_not_found(
    upload_client: TestClient, services: Services, uploads: UploadService
) -> None:
    body = start_upload(upload_client, 10)
    _, _, other_key = services.tenants.create_tenant("other")
    response = upload_client.put(
        body["url"], content=b"0123456789", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert response.status_code == 404, response.text
    assert not services.blobs.exists(upload_key("default", body["upload_id"]))
    other_tenant = services.tenants.authenticate(other_key)
    with pytest.raises(NotFound):
        uploads.open_upload(other_tenant, body["upload_id"])


@pytest.mark.parametrize("upload_id", ["up_0123456789abcdef", "up_0123456789abcdef.json", "%2E%2E"])
def test_an_unknown_upload_id_is_not_found(upload_client: TestClient, upload_id: str) -> None:
    response = upload_client.put(f"/v1/uploads/{upload_id}", content=b"data")
    assert response.status_code == 404, response.text


def test_an_expired_upload_takes_no_bytes(services: Services, api_key: str) -> None:
    past = make_uploads(services, expires_seconds=60, clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    app = create_app(services)
    app.state.uploads = past
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {api_key}"
        body = start_upload(client, 4)
        app.state.uploads = make_uploads(services)  # the present: the upload expired an hour ago
        response = client.put(body["url"], content=b"data")
    assert response.status_code == 404 and "expired" in response.json()["message"]


def test_uploads_need_an_api_key(upload_client: TestClient) -> None:
    response = upload_client.post(
        "/v1/uploads", json={"filename": "a.zip", "size_bytes": 1}, headers={"Authorization": ""}
    )
    assert response.status_code == 401


# --- the AWS backend: the bytes go straight to S3 ----------------------------------------------


@pytest.fixture
def s3_uploads(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UploadService]:
    """An UploadService as the AWS backend builds it: datasets and uploads in one S3 bucket
    (moto), bytes sent with a presigned POST."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")  # credentials that could never reach a real account
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("s3", region_name=S3_REGION).create_bucket(Bucket=S3_BUCKET)
        bucket = S3BlobStore(S3_BUCKET, cache_dir=tmp_path / "s3-cache", region_name=S3_REGION)
        settings = services.settings
        datasets = DatasetService(
            services.store,
            bucket,
            settings.tmp_root,
            ArchiveLimits(settings.max_archive_files, settings.max_archive_uncompressed_bytes),
            settings.max_image_pixels,
            settings.min_images_per_class,
        )
        yield UploadService(
            bucket,
            PresignedPostTransport(bucket),
            datasets,
            max_upload_bytes=settings.max_upload_bytes,
            expires_seconds=settings.presign_seconds,
        )


def test_on_s3_the_client_posts_to_the_bucket_and_the_dataset_reads_it_back(
    s3_uploads: UploadService,
) -> None:
    archive = class_folder_zip(3, seed=14)
    body = s3_uploads.create("t1", "shapes.zip", len(archive))
    key = upload_key("t1", body["upload_id"])
    assert body["method"] == "POST" and body["url"] == f"https://{S3_BUCKET}.s3.amazonaws.com/"
    assert body["fields"]["key"] == key and body["max_bytes"] == len(archive)
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 1, len(archive)] in policy["conditions"]
    with pytest.raises(NotFound):  # PUT /v1/uploads/{id} is the local backend's only
        s3_uploads.accept_api_upload("t1", body["upload_id"])

    # moto intercepts botocore, not a client's HTTP POST: store the bytes as S3 would
    boto3.client("s3", region_name=S3_REGION).put_object(Bucket=S3_BUCKET, Key=key, Body=archive)
    dataset = s3_uploads.create_dataset("t1", "shapes", body["upload_id"])
    assert dataset.classes == ["circle", "square", "triangle"] and dataset.image_count == 9
    listed = boto3.client("s3", region_name=S3_REGION).list_objects_v2(Bucket=S3_BUCKET, Prefix="uploads/")
    assert "Contents" not in listed  # the upload and its record are gone
