"""Idempotency-Key on POST /v1/jobs: a retry returns the first job and never starts a second
worker; the same key with another body is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.synthetic import class_folder_zip
from trainyard.bootstrap import Services
from trainyard.domain import JobStatus
from trainyard.services.jobs import TrainJobRequest, idempotent_ids


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post(
        "/v1/datasets", data={"name": "d"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    return str(response.json()["id"])


@pytest.fixture
def body(dataset_id: str) -> dict[str, object]:
    return {
        "type": "train",
        "dataset_id": dataset_id,
        "model_name": "m",
        "params": {"epochs": 200, "image_size": 32},
    }


@pytest.fixture(autouse=True)
def stop_workers(client: TestClient) -> Iterator[None]:
    yield
    for job in client.get("/v1/jobs", params={"limit": 100}).json()["items"]:
        if job["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            client.post(f"/v1/jobs/{job['id']}/cancel")


def test_a_retry_with_the_same_key_returns_the_first_job(
    client: TestClient, services: Services, body: dict[str, object]
) -> None:
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["model_id"] == first.json()["model_id"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1
    assert [p.name for p in services.settings.jobs_root.iterdir()] == [first.json()["id"]]


def test_the_same_key_with_another_body_is_refused(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k1"}).status_code == 202
    changed = {**body, "model_name": "other"}
    response = client.post("/v1/jobs", json=changed, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["message"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1


def test_without_a_key_each_request_is_a_new_job(client: TestClient, body: dict[str, object]) -> None:
    ids = {client.post("/v1/jobs", json=body).json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_keys_are_per_tenant(services: Services) -> None:
    assert idempotent_ids("tenant-a", "k") != idempotent_ids("tenant-b", "k")


def test_a_job_recorded_but_never_launched_is_launched_by_the_retry(
    client: TestClient, services: Services, body: dict[str, object]
) -> None:
    # As if the first request died between recording the job and launching it.
    request = TrainJobRequest.model_validate(body)
    job_id, model_id = idempotent_ids("default", "crashed")
    from tests.helpers import record_job

    recorded = record_job(services.store)
    services.store.create_job(
        recorded.model_copy(
            update={
                "id": job_id,
                "model_id": model_id,
                "launch_ref": None,
                "dataset_id": body["dataset_id"],
                "params": {**request.params.model_dump(), "exports": ["keras", "onnx", "tflite"]},
                "request_fingerprint": hashlib.sha256(request.model_dump_json().encode()).hexdigest(),
            }
        ),
        services.store.get_model("default", recorded.model_id).model_copy(  # type: ignore[union-attr]
            update={"id": model_id, "job_id": job_id}
        ),
    )
    response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "crashed"})
    assert response.status_code == 202 and response.json()["id"] == job_id
    launched = services.store.get_job("default", job_id)
    assert launched is not None and launched.launch_ref and launched.status is not JobStatus.FAILED
    assert (services.settings.jobs_root / job_id / "launch.json").exists()


def test_an_overlong_key_is_refused(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["message"]
