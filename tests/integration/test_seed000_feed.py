"""Seed 000's incremental training, with real training jobs (trainer subprocesses): a model
trained on circles and squares is fed triangles (a new class) and more circles (a known
one) plus ids of stored images; the new version predicts the triangles, and the first
version still answers exactly as before. Bad feeds to a ready model store nothing."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.synthetic import labelled_images, shape_image, zip_bytes
from trainyard.api.app import create_app
from trainyard.bootstrap import bootstrap
from trainyard.settings import Settings

# Small and quick: 32-px images; an epoch takes about 0.1 s, so 15 of them cost little
# (the fine-tune repeats the model's epochs; 6 left squares and triangles confused).
PARAMETERS = {"epochs": 15, "image_height": 32, "image_width": 32, "batch_size": 8, "seed": 1,
              "learning_rate": 0.003, "nn_type": 0}  # fmt: skip
HELD_OUT = {label: [shape_image(label, random.Random(100 + i), 32) for i in range(8)]
            for label in ("circle", "square", "triangle")}  # fmt: skip


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_until_trained(client: TestClient, number: int, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = dict(client.get(f"/models/{number}").json())
        if view["status"] != "training":
            assert view["status"] == "ready", view
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.5)


def predict(client: TestClient, model_id: str, data: bytes) -> list[dict[str, Any]]:
    response = client.post(f"/v1/models/{model_id}/predict", json={"image_b64": b64(data), "top_k": 3})
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("seed000") / "home"
    services = bootstrap(Settings(home=home))
    key = services.tenants.ensure_default_key(None, home / "api_key")
    with TestClient(create_app(services, background_work=True)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {key}"  # the /v1 routes; seed routes take it too
        yield test_client


@pytest.fixture(scope="module")
def first_version(client: TestClient) -> dict[str, Any]:
    images = [(label, data) for label, data in labelled_images(16, seed=3, size=32) if label != "triangle"]
    archive = zip_bytes((f"{label}/{i}.png", data) for i, (label, data) in enumerate(images))
    assert client.post("/v1/datasets", data={"name": "shapes"}, files={"file": ("d.zip", archive)}).is_success
    dataset = client.get("/datasets").json()[0]
    body = {"model_name": "shapes", "dataset_id": dataset["id"], "description": "feed test",
            "parameters": PARAMETERS}  # fmt: skip
    created = client.post("/models/train", json=body)
    assert created.status_code == 200, created.text
    view = wait_until_trained(client, created.json()["id"])
    assert view["classes"] == ["circle", "square"] and view["version"] == 1
    before = {label: [predict(client, view["model_id"], d) for d in data]
              for label, data in HELD_OUT.items()}  # fmt: skip
    return {"view": view, "dataset": dataset, "predictions": before}


BAD_FEEDS = [
    ({"images": []}, 422, "images"),
    ({}, 422, "images"),
    ({"images": [{"image_b64": "AAAA"}]}, 422, "label"),
    ({"images": [{"id": 1, "label": "circle"}]}, 422, "not both"),
    ({"images": [{"id": "1"}]}, 422, "id"),
    ({"images": [{"image_b64": "@@not base64@@", "label": "circle"}]}, 422, "image_b64"),
    ({"images": [{"image_b64": b64(b"not an image"), "label": "circle"}]}, 422, "images[0]"),
    (
        {"images": [{"image_b64": b64(HELD_OUT["circle"][0]), "label": "circle", "node_id": "x"}]},
        422,
        "node_id",
    ),
    ({"images": [{"image_b64": b64(HELD_OUT["circle"][0]), "label": ""}]}, 422, "label"),
    ({"images": [{"id": 9999}]}, 404, "image 9999"),
    ({"images": [{"id": 1}, {"id": 1}]}, 422, "more than once"),
]


@pytest.mark.parametrize(("body", "status", "named"), BAD_FEEDS)
def test_bad_feeds_store_nothing(
    client: TestClient, first_version: dict[str, Any], body: dict[str, Any], status: int, named: str
) -> None:
    dataset = first_version["dataset"]
    response = client.put("/models/feed/1", json=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["message"] and named in response.json()["message"]
    assert client.get("/models/1").json()["versions"] == 1
    assert client.get("/datasets").json()[0]["image_count"] == dataset["image_count"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"initial_model_id": "mdl_missing"}, 404, "mdl_missing"),
        ({"params": {"image_size": 64}}, 422, "params.image_size"),
        ({"params": {"backbone": "mobilenet_v2", "image_size": 32}}, 422, "params.backbone"),
    ],
)
def test_fine_tuning_jobs_check_the_initial_model(
    client: TestClient, first_version: dict[str, Any], change: dict[str, Any], status: int, named: str
) -> None:
    """The core route behind the feed: an unknown initial model or another architecture is
    refused before anything is recorded."""
    body = {"type": "train", "dataset_id": first_version["dataset"]["dataset_id"], "model_name": "m",
            "initial_model_id": first_version["view"]["model_id"], "params": {"image_size": 32}}  # fmt: skip
    jobs_before = len(client.get("/v1/jobs").json()["items"])
    response = client.post("/v1/jobs", json={**body, **change})
    assert response.status_code == status, response.text
    assert named in response.json()["message"]
    assert len(client.get("/v1/jobs").json()["items"]) == jobs_before


# Last in this module: it ends by deleting the model the tests above use.
def test_feeding_a_new_class_makes_a_version_that_predicts_it(
    client: TestClient, first_version: dict[str, Any]
) -> None:
    dataset, first = first_version["dataset"], first_version["view"]
    stored = client.get(f"/datasets/{dataset['id']}/images").json()
    rng = random.Random(7)
    triangles = [
        {"image_b64": b64(shape_image("triangle", rng, 32)), "label": "triangle", "name": f"t{i}.png",
         "node_id": 1, "object_id": 100 + i}
        for i in range(16)
    ]  # fmt: skip
    circles = [{"image_b64": b64(shape_image("circle", rng, 32)), "label": "circle"} for _ in range(2)]
    body = {"images": [*triangles, *circles, {"id": stored[0]["id"]}, {"id": stored[-1]["id"]}]}
    response = client.put("/models/feed/1", json=body)
    assert response.status_code == 200, response.text
    fed = response.json()
    assert fed["id"] == 1 and fed["version"] == fed["versions"] == 2 and fed["status"] == "training"
    assert fed["model_id"] != first["model_id"] and fed["dataset_id"] == dataset["id"]
    # stored images already in the dataset are trained on again, not copied
    assert len(fed["fed_image_ids"]) == 18
    assert client.get("/datasets").json()[0]["image_count"] == dataset["image_count"] + 18

    second = wait_until_trained(client, 1)
    assert second["classes"] == ["circle", "square", "triangle"] and second["version"] == 2
    job = client.get(f"/v1/jobs/{second['job_id']}").json()
    assert job["params"]["initial_model_id"] == first["model_id"] and job["status"] == "SUCCEEDED"

    correct = {
        label: sum(predict(client, second["model_id"], d)[0]["label"] == label for d in data)
        for label, data in HELD_OUT.items()
    }
    assert correct["triangle"] >= 6, correct  # 8 held-out triangles, a class the first version lacked
    assert correct["circle"] + correct["square"] >= 12, correct

    # the first version: still listed, unchanged, and answering exactly as before
    earlier = client.get("/models/1?version=1").json()
    assert earlier["model_id"] == first["model_id"] and earlier["classes"] == ["circle", "square"]
    assert earlier["version"] == 1 and earlier["versions"] == 2 and earlier["status"] == "ready"
    after = {label: [predict(client, first["model_id"], d) for d in data] for label, data in HELD_OUT.items()}
    assert after == first_version["predictions"]

    # the fed images keep their metadata and numbers
    listed = {i["id"]: i for i in client.get(f"/datasets/{dataset['id']}/images").json()}
    first_triangle = listed[fed["fed_image_ids"][0]]
    assert first_triangle | {"id": 0, "image_id": ""} == {"id": 0, "image_id": "", "label": "triangle",
        "split": None, "name": "t0.png", "node_id": 1, "object_id": 100}  # fmt: skip

    # deleting the model deletes every version
    deleted = client.delete("/models/1")
    assert deleted.status_code == 200 and deleted.json() == "Modèle 1 supprimé"
    for version in (first, second):
        assert client.get(f"/v1/models/{version['model_id']}").status_code == 404
