"""Seed 002 (the AI trainer) against the full app: token auth, /checkserver/, /starttraining/
with every documented field, /statustraining/…, datasets pulled from real emulators (moto's S3
server, Azurite) zipped or as a folder in both layouts, failures that end FAILED with a
message and a webhook, and bad requests that store nothing. The credentials must never show
up in what the service stores, logs or answers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.emulators import AzureEmulator, S3Emulator, azurite_blob_server, moto_s3_server
from tests.helpers import webhook_receiver
from tests.synthetic import labelled_images, zip_bytes
from tests.synthetic_detection import detection_samples, yolo_files
from trainyard.bootstrap import Services
from trainyard.domain import JobStatus
from trainyard.services.webhooks import verify
from trainyard.settings import Settings

SEED_STATUSES = {"PENDING", "DOWNLOADIND", "DOWNLOADED", "RUNNING", "EXPORTING", "SUCCESS", "FAILED"}
STATUS_FIELDS = {
    "result",
    "current_epoch",
    "epochs",
    "loss",
    "accuracy",
    "lastupdate",
    "last_epoch_duration_seconds",
}
START_FIELDS = {"status", "project_name", "profile_id", "dataset", "message"}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Emulator]:
    with moto_s3_server() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def azure() -> Iterator[AzureEmulator]:
    with azurite_blob_server() as emulator:
        yield emulator


@pytest.fixture
def settings(tmp_path: Path, s3: S3Emulator) -> Settings:
    """tests/conftest.py's settings, with S3 sources pointed at the moto server."""
    return Settings(
        home=tmp_path / "home",
        webhook_backoff_seconds=0.1,
        cancel_grace_seconds=3,
        external_s3_endpoint=s3.endpoint,
    )


@pytest.fixture
def seed_client(client: TestClient, api_key: str) -> TestClient:
    """The seed's clients send the key itself in Authorization."""
    client.headers["Authorization"] = api_key
    return client


def class_files(prefix: str, layout: str, per_class: int = 3, seed: int = 0) -> dict[str, bytes]:
    """Class-folder datasets: layout "split" is train/<class>/… + val/<class>/…, "flat" <class>/…"""
    files: dict[str, bytes] = {}
    for index, (label, png) in enumerate(labelled_images(per_class, seed, size=32)):
        if layout == "split":
            split = "val" if index % per_class == 0 else "train"
            files[f"{prefix}{split}/{label}/{index:03d}.png"] = png
        else:
            files[f"{prefix}{label}/{index:03d}.png"] = png
    return files


def bearer(client: TestClient) -> dict[str, str]:
    """The core API (/v1) takes only `Bearer <key>`; the seed's clients send the key itself."""
    return {"Authorization": f"Bearer {client.headers['Authorization']}"}


def start_body(**overrides: Any) -> dict[str, Any]:
    """Every documented field, small enough to train in seconds."""
    body: dict[str, Any] = {
        "profile_id": "profile-1",
        "project_name": "teeth",
        "webhook_url": None,
        "epochs": 2,
        "learning_rate": 0.01,
        "image_size": 32,
        "batch_size": 8,
        "step_size": 1,
        "gamma": 0.5,
        "export": ["onnx"],  # the documented default adds coreml, which the trainer lacks so far
        "model_type": "classification",
        "storage_type": "aws",
        "container": "datasets",
        "folder": "teeth",
        "zipped": False,
    }
    body.update(overrides)
    return body


def aws_keys(s3: S3Emulator) -> dict[str, str]:
    return {"aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key}


def wait_for_status(
    client: TestClient, profile: str, project: str, done: set[str], timeout: float = 240
) -> tuple[dict[str, Any], list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/statustraining/{profile}/{project}")
        assert response.status_code == 200, response.text
        body = response.json()
        if not seen or seen[-1] != body["result"]:
            seen.append(body["result"])
        if body["result"] in done:
            return body, seen
        time.sleep(0.2)
    raise AssertionError(f"{profile}/{project} never reached {done}; saw {seen}")


def job_of(services: Services, tenant: str, profile: str, project: str) -> Any:
    alias = services.store.get_alias(tenant, "002.project", f"{profile}/{project}")
    assert alias is not None
    return services.store.get_job(tenant, alias.target)


def wait_until_launched(services: Services, tenant: str, profile: str, project: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = job_of(services, tenant, profile, project)
        if job.launch_ref is not None or job.status.is_terminal:
            return job
        time.sleep(0.1)
    raise AssertionError(f"{profile}/{project} was never launched")


def stored_bytes(home: Path) -> Iterator[tuple[Path, bytes]]:
    for path in home.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def assert_nowhere(secrets: list[str], home: Path, texts: list[str]) -> None:
    """No credential in any file under the service's home (database, WAL, blobs, job dirs,
    worker logs, secrets file) nor in the given texts (responses, log records)."""
    for secret in secrets:
        for path, data in stored_bytes(home):
            assert secret.encode() not in data, f"a credential is stored in {path}"
        for text in texts:
            assert secret not in text, "a credential is in a response or a log line"


# --- checkserver and auth ----------------------------------------------------------------


def test_checkserver_answers_ok_with_the_token_and_failed_without(client: TestClient, api_key: str) -> None:
    for header in (api_key, f"Bearer {api_key}"):
        for path in ("/checkserver/", "/seeds/002/checkserver/"):
            response = client.get(path, headers={"Authorization": header})
            assert response.status_code == 200
            assert response.json() == {"result": "Ok", "message": "Trainyard is ready to train"}
    for header in ("", "ty_wrong"):
        response = client.get("/checkserver/", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["result"] == "Failed" and response.json()["message"]
        assert set(response.json()) == {"result", "message"}


def test_every_route_needs_the_token(client: TestClient) -> None:
    client.headers.pop("Authorization")
    response = client.post("/starttraining/", json=start_body())
    assert response.status_code == 401
    assert response.json()["status"] == "FAILED" and "token" in response.json()["message"]
    assert response.json()["project_name"] == "teeth" and response.json()["profile_id"] == "profile-1"
    response = client.post("/seeds/002/starttraining", json=start_body())
    assert response.status_code == 401 and response.json()["status"] == "FAILED"
    for path in ("/statustraining/profile-1/teeth", "/seeds/002/statustraining/profile-1/teeth"):
        response = client.get(path)
        assert response.status_code == 401 and response.json()["result"] == "FAILED"


# --- the whole flow: S3 folder (train/val) → training → SUCCESS + webhook --------------------


def test_s3_folder_trains_to_success_with_webhook_and_keeps_the_keys_secret(
    seed_client: TestClient,
    services: Services,
    s3: S3Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trainyard")
    s3.put_files("datasets", class_files("teeth/", "split"))
    tenant = services.tenants.ensure_default_tenant()
    with webhook_receiver() as receiver:
        body = start_body(webhook_url=receiver.url, **aws_keys(s3))
        response = seed_client.post("/starttraining/", json=body)
        assert response.status_code == 200, response.text
        started = response.json()
        assert set(started) == START_FIELDS
        assert started["status"] == "PENDING" and started["project_name"] == "teeth"
        assert started["profile_id"] == "profile-1" and started["dataset"] == "datasets/teeth"

        # a second request for the pair is refused, and records nothing more
        # ids only: the first request's download moves its job along in the background meanwhile
        listed = seed_client.get("/v1/jobs", headers=bearer(seed_client)).json()["items"]
        jobs_before = [job["id"] for job in listed]
        again = seed_client.post("/starttraining/", json=body)
        assert again.status_code == 409
        assert again.json()["status"] == "FAILED" and "already exists" in again.json()["message"]
        assert again.json()["project_name"] == "teeth"
        listed = seed_client.get("/v1/jobs", headers=bearer(seed_client)).json()["items"]
        assert [job["id"] for job in listed] == jobs_before  # the duplicate recorded no job

        status, seen = wait_for_status(seed_client, "profile-1", "teeth", {"SUCCESS", "FAILED"})
        assert status["result"] == "SUCCESS", status
        assert set(status) == STATUS_FIELDS
        assert set(seen) <= SEED_STATUSES and seen[0] in ("PENDING", "DOWNLOADIND", "DOWNLOADED", "RUNNING")
        assert status["current_epoch"] == 2 == status["epochs"]
        assert isinstance(status["loss"], float) and isinstance(status["accuracy"], float)
        assert isinstance(status["last_epoch_duration_seconds"], float)
        assert status["lastupdate"].startswith("20")
        assert receiver.received.wait(30), "no webhook arrived"

    job = job_of(services, tenant, "profile-1", "teeth")
    assert job.status is JobStatus.SUCCEEDED
    assert job.params["lr_step_size"] == 1 and job.params["lr_gamma"] == 0.5
    assert job.params["learning_rate"] == 0.01 and job.params["batch_size"] == 8
    assert job.params["exports"] == ["onnx"]
    model = seed_client.get(f"/v1/models/{job.model_id}", headers=bearer(seed_client)).json()
    assert model["status"] == "ready" and model["classes"] == ["circle", "square", "triangle"]
    dataset = services.store.get_dataset(tenant, model["dataset_id"])
    assert dataset is not None and dataset.image_count == 9
    splits = {image.split for image in services.store.list_images(tenant, dataset.id)}
    assert splits == {"train", "val"}
    delivery = receiver.requests[-1]
    assert verify(services.webhooks.secret_for(tenant), delivery["headers"], delivery["body"])
    assert json.loads(delivery["body"])["type"] == "job.succeeded"

    texts = [started["message"], json.dumps(status), caplog.text, json.dumps(model)]
    texts += [r["body"].decode() for r in receiver.requests]
    assert_nowhere([s3.secret_access_key, s3.access_key_id], services.settings.home, texts)


# --- the other sources: zipped or folder, both layouts, S3 and Azure; detection --------------


@pytest.mark.parametrize(
    "storage,zipped,layout,folder,key",
    [
        ("aws", True, "flat", "zips/teeth.zip", "zips/teeth.zip"),  # folder names the zip
        ("aws", True, "split", "zips/teeth", "zips/teeth.zip"),  # <folder>.zip
        ("azure", True, "split", "exports", "exports/dataset.zip"),  # the only .zip inside
        ("azure", False, "flat", "teeth-flat", None),
        ("azure", False, "split", "teeth-split/", None),
    ],
)
def test_sources_in_each_layout_become_the_dataset_the_job_trains_on(
    seed_client: TestClient,
    services: Services,
    s3: S3Emulator,
    azure: AzureEmulator,
    storage: str,
    zipped: bool,
    layout: str,
    folder: str,
    key: str | None,
) -> None:
    files = class_files("dataset/" if zipped else folder.rstrip("/") + "/", layout)
    if zipped:
        assert key is not None
        files = {key: zip_bytes(files.items())}
    container = f"src-{storage}-{layout}-{int(zipped)}"
    credentials: dict[str, str]
    if storage == "aws":
        s3.put_files(container, files)
        credentials = aws_keys(s3)
    else:
        azure.put_files(container, files)
        credentials = {"azure_connection_string": azure.connection_string()}
    body = start_body(
        storage_type=storage,
        container=container,
        folder=folder,
        zipped=zipped,
        project_name="p",
        **credentials,
    )
    response = seed_client.post("/starttraining/", json=body)
    assert response.status_code == 200 and response.json()["status"] == "PENDING", response.text

    tenant = services.tenants.ensure_default_tenant()
    job = wait_until_launched(services, tenant, "profile-1", "p")
    assert job.status is not JobStatus.FAILED, job.error
    model = services.store.get_model(tenant, job.model_id)
    assert model is not None
    dataset = services.store.get_dataset(tenant, model.dataset_id)
    assert dataset is not None and dataset.classes == ["circle", "square", "triangle"]
    assert dataset.image_count == 9
    splits = {image.split for image in services.store.list_images(tenant, dataset.id)}
    assert splits == ({"train", "val"} if layout == "split" else {None})
    # the training itself is proven above; stop this one to keep the suite short
    assert seed_client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(seed_client)).status_code == 200
    status = seed_client.get("/statustraining/profile-1/p").json()
    assert status["result"] == "FAILED" and status["message"] == "the training was cancelled"


def test_a_detection_dataset_from_azure_launches_a_detection_job(
    seed_client: TestClient, services: Services, azure: AzureEmulator
) -> None:
    files = {f"yolo/{name}": data for name, data in yolo_files(detection_samples(6, seed=1)).items()}
    azure.put_files("detection", files)
    body = start_body(
        model_type="detection",
        storage_type="azure",
        container="detection",
        folder="yolo",
        image_size=64,
        project_name="boxes",
        azure_connection_string=azure.connection_string(),
    )
    assert seed_client.post("/starttraining/", json=body).json()["status"] == "PENDING"
    tenant = services.tenants.ensure_default_tenant()
    job = wait_until_launched(services, tenant, "profile-1", "boxes")
    assert job.status is not JobStatus.FAILED, job.error
    assert job.task.value == "detection" and job.params["image_size"] == 64
    model = services.store.get_model(tenant, job.model_id)
    assert model is not None
    dataset = services.store.get_dataset(tenant, model.dataset_id)
    assert dataset is not None and dataset.task.value == "detection" and dataset.image_count == 6
    assert seed_client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(seed_client)).status_code == 200


# --- failures after the answer: FAILED with a message, and a webhook -------------------------


@pytest.mark.parametrize(
    "case,expected",
    [
        ("aws_wrong_secret", "refused the credentials"),
        ("aws_unknown_key", "refused the credentials"),
        ("aws_missing_bucket", "does not exist"),
        ("aws_empty_folder", "is empty or does not exist"),
        ("aws_missing_zip", "no zip file"),
        ("azure_wrong_key", "refused the credentials"),
        ("azure_missing_container", "does not exist"),
        ("azure_bad_connection_string", "azure_connection_string is not usable"),
        ("azure_not_a_dataset", "not inside a class folder"),
    ],
)
def test_source_failures_end_failed_with_a_message_and_a_webhook(
    seed_client: TestClient,
    services: Services,
    s3: S3Emulator,
    azure: AzureEmulator,
    caplog: pytest.LogCaptureFixture,
    case: str,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trainyard")
    s3.put_files("present", {"other/readme.txt": b"not here"})
    azure.put_files("present", {"loose/readme.txt": b"a file outside any class folder"})
    secrets = [s3.secret_access_key, azure.key]
    source: dict[str, Any] = {
        "aws_wrong_secret": {
            "container": "present",
            **aws_keys(s3),
            "aws_secret_access_key": "wrong-secret-1",
        },
        "aws_unknown_key": {"container": "present", **aws_keys(s3), "aws_access_key_id": "AKIAUNKNOWN000"},
        "aws_missing_bucket": {"container": "absent", **aws_keys(s3)},
        "aws_empty_folder": {"container": "present", "folder": "nothing-here", **aws_keys(s3)},
        "aws_missing_zip": {"container": "present", "zipped": True, **aws_keys(s3)},
        "azure_wrong_key": {
            "storage_type": "azure",
            "container": "present",
            "azure_connection_string": azure.connection_string(key="d3Jvbmcta2V5LXdyb25nLWtleQ=="),
        },
        "azure_missing_container": {
            "storage_type": "azure",
            "container": "absent",
            "azure_connection_string": azure.connection_string(),
        },
        "azure_bad_connection_string": {
            "storage_type": "azure",
            "container": "present",
            "azure_connection_string": "not a connection string",
        },
        "azure_not_a_dataset": {
            "storage_type": "azure",
            "container": "present",
            "folder": "loose",
            "azure_connection_string": azure.connection_string(),
        },
    }[case]
    services.settings = services.settings.model_copy(update={"seed002_default_webhook_url": None})
    with webhook_receiver() as receiver:
        if case == "aws_empty_folder":  # no webhook_url: the setting's default URL is used
            services.settings = services.settings.model_copy(
                update={"seed002_default_webhook_url": receiver.url}
            )
            body = start_body(webhook_url="", **source)
        else:
            body = start_body(webhook_url=receiver.url, **source)
        response = seed_client.post("/starttraining/", json=body)
        assert response.status_code == 200 and response.json()["status"] == "PENDING", response.text
        status, _ = wait_for_status(seed_client, "profile-1", "teeth", {"FAILED", "SUCCESS"}, timeout=60)
        assert status["result"] == "FAILED" and expected in status["message"], status
        assert receiver.received.wait(30), "no webhook for the failure"
    delivered = json.loads(receiver.requests[-1]["body"])
    assert delivered["type"] == "job.failed" and expected in delivered["data"]["error"]
    texts = [response.text, json.dumps(status), caplog.text, json.dumps(delivered)]
    assert_nowhere(secrets, services.settings.home, texts)
    # nothing half-made: a failed download stores no dataset
    assert seed_client.get("/v1/datasets", headers=bearer(seed_client)).json()["items"] == []


def test_defaults_are_the_documented_ones(
    seed_client: TestClient, services: Services, s3: S3Emulator
) -> None:
    """Only the mandatory fields: epochs 10, learning_rate 0.01, image_size 224, batch_size 36,
    step_size 10, gamma 0.1, export ["onnx", "coreml"], no webhook. The source is empty, so
    nothing trains."""
    optional = (
        "epochs",
        "learning_rate",
        "image_size",
        "batch_size",
        "step_size",
        "gamma",
        "export",
        "webhook_url",
    )
    mandatory = {
        k: v for k, v in start_body(**aws_keys(s3), container="present").items() if k not in optional
    }
    s3.put_files("present", {})
    response = seed_client.post("/starttraining/", json=mandatory)
    assert response.status_code == 200, response.text
    tenant = services.tenants.ensure_default_tenant()
    job = job_of(services, tenant, "profile-1", "teeth")
    assert job.epochs == 10 and job.webhook_url is None
    params = job.params
    assert (params["epochs"], params["learning_rate"], params["image_size"]) == (10, 0.01, 224)
    assert (params["batch_size"], params["lr_step_size"], params["lr_gamma"]) == (36, 10, 0.1)
    assert params["exports"] == ["onnx", "coreml"]


# --- bad requests: the documented FAILED form, nothing stored -------------------------------


@pytest.mark.parametrize(
    "change,status,expected",
    [
        ({"profile_id": None}, 422, "profile_id"),
        ({"project_name": None}, 422, "project_name"),
        ({"project_name": ""}, 422, "project_name"),
        ({"project_name": "a/b"}, 422, "project_name"),
        ({"profile_id": 12}, 422, "profile_id"),
        ({"epochs": "ten"}, 422, "epochs"),
        ({"epochs": 1}, 422, "epochs"),
        ({"epochs": 100}, 422, "epochs"),
        ({"learning_rate": 0}, 422, "learning_rate"),
        ({"learning_rate": 1.5}, 422, "learning_rate"),
        ({"image_size": 1024}, 422, "image_size"),
        ({"image_size": 16}, 422, "image_size"),
        ({"model_type": "detection", "image_size": 100}, 422, "image_size"),
        ({"batch_size": 37}, 422, "batch_size"),
        ({"batch_size": 0}, 422, "batch_size"),
        ({"step_size": 0}, 422, "step_size"),
        ({"gamma": 0}, 422, "gamma"),
        ({"gamma": 2}, 422, "gamma"),
        ({"export": ["gif"]}, 422, "export"),
        ({"export": "onnx"}, 422, "export"),
        ({"model_type": "segmentation"}, 422, "model_type"),
        ({"model_type": None}, 422, "model_type"),
        ({"storage_type": "gcs"}, 422, "storage_type"),
        ({"container": None}, 422, "container"),
        ({"folder": None}, 422, "folder"),
        ({"zipped": None}, 422, "zipped"),
        ({"zipped": "perhaps"}, 422, "zipped"),
        ({"zipped": 0}, 422, "zipped"),  # strict: the schema says boolean (fuzzing found 0 taken)
        ({"epochs": "10"}, 422, "epochs"),
        ({"aws_access_key_id": None}, 422, "aws_access_key_id"),
        ({"storage_type": "azure"}, 422, "azure_connection_string"),
        ({"webhook_url": "ftp://example.com/hook"}, 422, "webhook_url"),
        ({"surprise": 1}, 422, "surprise"),
    ],
)
def test_bad_start_requests_are_refused_in_the_failed_form_and_store_nothing(
    seed_client: TestClient, services: Services, change: dict[str, Any], status: int, expected: str
) -> None:
    body = {**start_body(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t-value"), **change}
    body = {k: v for k, v in body.items() if not (v is None and k in change)}
    response = seed_client.post("/starttraining/", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == START_FIELDS and answer["status"] == "FAILED"
    assert expected in answer["message"], answer
    assert "s3cr3t-value" not in response.text
    tenant = services.tenants.ensure_default_tenant()
    assert services.store.list_aliases(tenant, "002.project") == []
    assert seed_client.get("/v1/jobs", headers=bearer(seed_client)).json()["items"] == []
    assert seed_client.get("/v1/models", headers=bearer(seed_client)).json()["items"] == []


@pytest.mark.parametrize(
    "content,status,expected",
    [(b"{not json", 400, "not JSON"), (b"[1, 2]", 422, "JSON object"), (b"", 400, "not JSON")],
)
def test_unreadable_bodies_are_refused(
    seed_client: TestClient, content: bytes, status: int, expected: str
) -> None:
    response = seed_client.post(
        "/starttraining/", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["status"] == "FAILED" and expected in response.json()["message"]
    assert seed_client.get("/v1/jobs", headers=bearer(seed_client)).json()["items"] == []


def test_unknown_training_and_other_tenants_trainings_are_not_found(
    seed_client: TestClient, services: Services, s3: S3Emulator
) -> None:
    response = seed_client.get("/statustraining/nobody/nothing")
    assert response.status_code == 404
    assert response.json()["result"] == "FAILED" and "nobody" in response.json()["message"]
    s3.put_files("present", {})
    assert (
        seed_client.post("/starttraining/", json=start_body(container="present", **aws_keys(s3))).status_code
        == 200
    )
    _, _, other_key = services.tenants.create_tenant("other")
    response = seed_client.get("/statustraining/profile-1/teeth", headers={"Authorization": other_key})
    assert response.status_code == 404
    # another tenant may use the same pair: names are per tenant
    response = seed_client.post(
        "/starttraining/",
        json=start_body(container="present", **aws_keys(s3)),
        headers={"Authorization": other_key},
    )
    assert response.status_code == 200 and response.json()["status"] == "PENDING"
