"""Job creation's validation: bad requests are 4xx naming the problem and record nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.synthetic import class_folder_zip


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post(
        "/v1/datasets", data={"name": "d"}, files={"file": ("d.zip", class_folder_zip(2, 1))}
    )
    return str(response.json()["id"])


@pytest.mark.parametrize(
    "change,status,expected",
    [
        ({"params": {"backbone": "alexnet"}}, 422, "params.backbone"),
        ({"params": {"epochs": 0}}, 422, "params.epochs"),
        ({"params": {"epochs": 100000}}, 422, "params.epochs"),
        ({"params": {"image_size": 4096}}, 422, "params.image_size"),
        ({"params": {"learning_rate": -1}}, 422, "params.learning_rate"),
        ({"params": {"epoch": 3}}, 422, "params.epoch"),
        ({"type": "predict"}, 422, "type"),
        ({"task": "segmentation"}, 422, "task"),
        ({"model_name": ""}, 422, "model_name"),
        ({"exports": ["caffe2"]}, 422, "caffe2"),
        ({"webhook_url": "ftp://example.com"}, 422, "webhook_url"),
        ({"surprise": 1}, 422, "surprise"),
        ({"dataset_id": "ds_missing"}, 404, "ds_missing"),
    ],
)
def test_bad_job_requests(
    client: TestClient, dataset_id: str, change: dict, status: int, expected: str
) -> None:
    body = {"type": "train", "task": "classification", "dataset_id": dataset_id, "model_name": "m", **change}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert expected in response.json()["message"]
    assert client.get("/v1/jobs").json()["items"] == []
    assert client.get("/v1/models").json()["items"] == []


def test_unknown_job_and_model_ids_are_404(client: TestClient) -> None:
    for path in (
        "/v1/jobs/job_x",
        "/v1/jobs/job_x/metrics",
        "/v1/models/mdl_x",
        "/v1/models/mdl_x/exports/onnx",
        "/v1/jobs/job_x/webhooks",
    ):
        response = client.get(path)
        assert response.status_code == 404 and "not found" in response.json()["message"]
    assert client.post("/v1/jobs/job_x/cancel").status_code == 404
    assert client.post("/v1/models/mdl_x/predict", json={"image_b64": "aGk="}).status_code == 404
