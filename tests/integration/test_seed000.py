"""Seed 000 (/models) through HTTP: every documented example and field, and bad input for
every route → {"message": …} naming the problem, with nothing stored. The training flow
(train, feed a new class, earlier version unchanged) is in test_seed000_feed.py."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.synthetic import labelled_images, zip_bytes
from trainyard.bootstrap import Services

# The documented model view: every field with its documented type (None: null allowed).
DOCUMENTED_FIELDS: dict[str, tuple[type, ...]] = {
    "batch_size": (int,),
    "dataset_id": (int,),
    "dataset": (str,),
    "description": (str,),
    "epochs": (int,),
    "id": (int,),
    "image_height": (int,),
    "image_width": (int,),
    "layer2retrain": (int, type(None)),
    "name": (str,),
    "nn_name": (str,),
    "nn_type": (int,),
    "seed": (int, type(None)),
    "shuffle": (bool,),
    "plot_loss": (str,),
    "use_imageGenerator": (bool,),
    "use_rgb": (bool,),
}
UNFINISHED = ("PENDING", "DOWNLOADING", "DOWNLOADED", "RUNNING", "EXPORTING")


def check_documented_shape(view: dict[str, Any]) -> None:
    for field, types in DOCUMENTED_FIELDS.items():
        assert isinstance(view[field], types) and not (bool in types) ^ isinstance(view[field], bool), (
            field,
            view[field],
        )
    assert base64.b64decode(view["plot_loss"]).startswith(b"\x89PNG")
    assert view["status"] in ("training", "ready", "failed") and view["training_status"]


@pytest.fixture(autouse=True)
def stop_workers(client: TestClient) -> Iterator[None]:
    """These tests check responses, not trained models: the jobs they start are cancelled."""
    yield
    for job in client.get("/v1/jobs", params={"limit": 100}).json()["items"]:
        if job["status"] in UNFINISHED:
            client.post(f"/v1/jobs/{job['id']}/cancel")


@pytest.fixture
def dataset(client: TestClient) -> dict[str, Any]:
    images = [(label, data) for label, data in labelled_images(4, seed=5, size=32) if label != "triangle"]
    archive = zip_bytes((f"{label}/{i}.png", data) for i, (label, data) in enumerate(images))
    response = client.post("/v1/datasets", data={"name": "datasets_test"}, files={"file": ("d.zip", archive)})
    assert response.status_code == 201, response.text
    listed = client.get("/datasets").json()
    assert [d["dataset_id"] for d in listed] == [response.json()["id"]]
    return dict(listed[0])


def cancel_training(client: TestClient, view: dict[str, Any]) -> None:
    client.post(f"/v1/jobs/{view['job_id']}/cancel")


def test_datasets_are_numbered_once(client: TestClient, dataset: dict[str, Any]) -> None:
    assert dataset["id"] == 1 and dataset["name"] == "datasets_test"
    assert dataset["classes"] == ["circle", "square"] and dataset["image_count"] == 8
    assert client.get("/datasets").json() == [dataset]  # listing again gives the same number
    images = client.get(f"/datasets/{dataset['id']}/images").json()
    assert [i["id"] for i in images] == list(range(1, 9))
    assert {i["label"] for i in images} == {"circle", "square"}
    assert client.get(f"/datasets/{dataset['id']}/images").json() == images


def test_the_documented_train_example(client: TestClient, dataset: dict[str, Any]) -> None:
    body = {
        "model_name": "Etienne_cegrosbg",
        "dataset_id": dataset["id"],
        "description": "Model de test",
        "parameters": {"epochs": 2, "num_predictions": 3, "validation_split": 0.1},
    }
    response = client.post("/models/train", json=body)
    assert response.status_code == 200, response.text
    view = response.json()
    check_documented_shape(view)
    assert view["id"] == 1 and view["name"] == "Etienne_cegrosbg" and view["description"] == "Model de test"
    assert view["dataset_id"] == dataset["id"] and view["dataset"] == "datasets_test"
    assert view["epochs"] == 2 and view["num_predictions"] == 3 and view["validation_split"] == 0.1
    assert view["status"] == "training" and view["training_status"] in UNFINISHED
    assert view["version"] == view["versions"] == 1
    job = client.get(f"/v1/jobs/{view['job_id']}").json()
    assert job["params"]["epochs"] == 2 and job["params"]["validation_split"] == 0.1
    # the same model under the seed's prefix and at the root, alone and in the list
    for prefix in ("", "/seeds/000"):
        one = client.get(f"{prefix}/models/1").json()
        assert {k: one[k] for k in DOCUMENTED_FIELDS if k != "plot_loss"} == {
            k: view[k] for k in DOCUMENTED_FIELDS if k != "plot_loss"
        }
        assert [m["id"] for m in client.get(f"{prefix}/models").json()] == [1]


@pytest.mark.parametrize("parameters", ["Default", {}, None])
def test_default_parameters(client: TestClient, dataset: dict[str, Any], parameters: object) -> None:
    body: dict[str, Any] = {"model_name": "m", "dataset_id": dataset["id"], "description": "d"}
    if parameters is not None:
        body["parameters"] = parameters
    response = client.post("/models/train", json=body)
    assert response.status_code == 200, response.text
    view = response.json()
    check_documented_shape(view)
    assert (view["epochs"], view["batch_size"], view["image_height"], view["image_width"]) == (
        10,
        32,
        224,
        224,
    )
    assert (view["nn_name"], view["nn_type"], view["layer2retrain"], view["seed"]) == ("CNN", 0, None, None)
    assert view["shuffle"] is True and view["use_imageGenerator"] is False and view["num_predictions"] == 5


def test_every_documented_parameter(client: TestClient, dataset: dict[str, Any]) -> None:
    parameters = {
        "batch_size": 100,
        "epochs": 1,
        "image_height": 224,
        "image_width": 224,
        "layer2retrain": 9,
        "nn_name": "VGG16",
        "nn_type": 1,
        "seed": 7,
        "shuffle": False,
        "use_imageGenerator": True,
        "num_predictions": 3,
        "validation_split": 0.25,
        "use_rgb": True,
    }
    body = {"model_name": "datasets_test_batch100_epochs1_retrain9.h5", "dataset_id": dataset["dataset_id"],
            "description": "[...]", "parameters": parameters}  # fmt: skip
    response = client.post("/models/train", json=body)
    assert response.status_code == 200, response.text
    view = response.json()
    check_documented_shape(view)
    for name, value in parameters.items():
        assert view[name] == value, name
    assert view["dataset_id"] == dataset["id"]  # a ds_… id is shown by its number
    job = client.get(f"/v1/jobs/{view['job_id']}").json()
    expected = {"backbone": "vgg16", "weights": "imagenet", "layers_to_retrain": 9, "augment": True,
                "shuffle": False, "seed": 7, "batch_size": 100, "image_size": 224}  # fmt: skip
    assert {k: job["params"][k] for k in expected} == expected


def test_delete_answers_the_documented_string(client: TestClient, dataset: dict[str, Any]) -> None:
    view = client.post("/models/train", json={"model_name": "m", "dataset_id": dataset["id"]}).json()
    refused = client.delete("/models/1")  # still training: nothing is deleted
    assert refused.status_code == 409 and "training" in refused.json()["message"]
    assert client.get("/models/1").status_code == 200
    cancel_training(client, view)
    response = client.delete("/seeds/000/models/1")
    assert response.status_code == 200 and response.json() == "Modèle 1 supprimé"
    assert client.get("/models/1").status_code == 404
    assert client.get(f"/v1/models/{view['model_id']}").status_code == 404
    assert client.get("/models").json() == []


BAD_TRAIN_BODIES = [
    ({"dataset_id": 1}, 422, "model_name"),
    ({"model_name": "m"}, 422, "dataset_id"),
    ({"model_name": 5, "dataset_id": 1}, 422, "model_name"),
    ({"model_name": "m", "dataset_id": [1]}, 422, "dataset_id"),
    ({"model_name": "m", "dataset_id": 99}, 404, "dataset 99"),
    ({"model_name": "m", "dataset_id": "ds_missing"}, 404, "ds_missing"),
    ({"model_name": "m", "dataset_id": 1, "colour": "red"}, 422, "colour"),
    ({"model_name": "m", "dataset_id": 1, "parameters": "default"}, 422, "parameters"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"epochs": "2"}}, 422, "epochs"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"epochs": 0}}, 422, "parameters.epochs"),
    (
        {"model_name": "m", "dataset_id": 1, "parameters": {"batch_size": 10_000}},
        422,
        "parameters.batch_size",
    ),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"validation_split": 2}}, 422, "validation_split"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"layer2retrain": -1}}, 422, "layer2retrain"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"shuffle": "no"}}, 422, "shuffle"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"num_predictions": 0}}, 422, "num_predictions"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"image_height": 4096}}, 422, "image_height"),
    (
        {"model_name": "m", "dataset_id": 1, "parameters": {"image_height": 64, "image_width": 96}},
        422,
        "square",
    ),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"nn_type": 42}}, 422, "nn_type"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"nn_name": "AlexNet"}}, 422, "nn_name"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"nn_type": 0, "nn_name": "VGG16"}}, 422, "nn_name"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"use_rgb": False}}, 422, "use_rgb"),
    ({"model_name": "m", "dataset_id": 1, "parameters": {"dropout": 0.5}}, 422, "dropout"),
]


@pytest.mark.parametrize(("body", "status", "named"), BAD_TRAIN_BODIES)
def test_bad_train_requests_store_nothing(
    client: TestClient,
    services: Services,
    dataset: dict[str, Any],
    body: dict[str, Any],
    status: int,
    named: str,
) -> None:
    response = client.post("/models/train", json=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["message"] and named in response.json()["message"]
    assert client.get("/models").json() == []
    assert client.get("/v1/jobs").json()["items"] == []
    assert services.store.list_aliases("default", "000.model") == []


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/models/train", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422 and list(response.json()) == ["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "named"),
    [
        ("GET", "/models/99", 404, "model 99"),
        ("GET", "/models/abc", 422, "model_id"),
        ("GET", "/models/1?version=0", 422, "version"),
        ("DELETE", "/models/99", 404, "model 99"),
        ("DELETE", "/models/abc", 422, "model_id"),
        ("PUT", "/models/feed/99", 404, "model 99"),
        ("GET", "/datasets/99/images", 404, "dataset 99"),
    ],
)
def test_unknown_ids(client: TestClient, method: str, path: str, status: int, named: str) -> None:
    body = {"images": [{"id": 1}]} if method == "PUT" else None
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert named in response.json()["message"]


def test_a_version_beyond_the_last_is_404(client: TestClient, dataset: dict[str, Any]) -> None:
    client.post("/models/train", json={"model_name": "m", "dataset_id": dataset["id"]})
    assert client.get("/models/1?version=1").json()["version"] == 1
    response = client.get("/models/1?version=2")
    assert response.status_code == 404 and "version 2" in response.json()["message"]


def test_feeding_a_model_still_training_is_refused(client: TestClient, dataset: dict[str, Any]) -> None:
    client.post("/models/train", json={"model_name": "m", "dataset_id": dataset["id"]})
    response = client.put("/models/feed/1", json={"images": [{"id": 1}]})
    assert response.status_code == 409 and "still training" in response.json()["message"]
    assert client.get("/models/1").json()["versions"] == 1
    assert client.get("/datasets").json()[0]["image_count"] == 8
