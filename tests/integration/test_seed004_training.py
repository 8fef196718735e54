"""Seed 004's whole flow with a real training job: train and test CSVs of rendered digits
(POST /training) → a small_cnn trained in a subprocess of the trainer's venv → the HTML
message with the test accuracy → canvases of held-out digits predicted (POST /predict).

One training serves most tests of the module: 400 train rows (40 per digit, the train CSV
with a header, as Kaggle's MNIST CSVs have) and 100 test rows without a header, at the
classifier's smallest input (32 px), for EPOCHS epochs (about 15 s on two CPU cores); the
last test starts a second, one-epoch job to see the route answer before it ends."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.synthetic_digits import as_data_url, canvas_png, digit_rows, digits_csv
from trainyard.api.app import create_app
from trainyard.bootstrap import Services, bootstrap
from trainyard.domain import JobStatus
from trainyard.services.digits import MODEL_NAMESPACE, DigitService
from trainyard.services.tenants import DEFAULT_TENANT
from trainyard.settings import Settings

EPOCHS = 15
# Over five runs of this module's data the test accuracy was 0.96-1.0 and the canvases
# 0.9-1.0 right (the job's seed is random, as the route sets none). The bounds leave room for
# that run-to-run spread while still proving the model learnt the digits: chance is 0.10.
MIN_TEST_ACCURACY = 0.85
# Canvases go through the route's own preprocessing (composite, invert, crop, 20 px, centre
# of mass) from 280 px strokes, a path the training rows did not take: a slightly lower bound.
MIN_CANVAS_ACCURACY = 0.8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    services = bootstrap(Settings(home=tmp_path_factory.mktemp("seed004") / "home"))
    key = services.tenants.ensure_default_key(None, services.settings.home / "api_key")
    with TestClient(create_app(services, background_work=True)) as client:
        # the /v1 routes need the key; the seed routes take it too (its tenant: the default one)
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, services


@pytest.fixture(scope="module")
def trained(stack: tuple[TestClient, Services]) -> dict[str, Any]:
    client, _ = stack
    train = digits_csv(digit_rows(400, seed=11), header=True)
    test = digits_csv(digit_rows(100, seed=12), header=False)
    response = client.post(
        "/training",
        files={"file1": ("train.csv", train, "text/csv"), "file2": ("test.csv", test, "text/csv")},
        data={"epoch": str(EPOCHS)},
    )
    return {"status": response.status_code, "type": response.headers["content-type"], "html": response.text}


def attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name} in {html}"
    return match.group(1)


def test_training_answers_html_with_the_test_accuracy(trained: dict[str, Any]) -> None:
    assert trained["status"] == 200, trained["html"]
    assert trained["type"].startswith("text/html")
    accuracy = float(attribute(trained["html"], "data-accuracy"))
    assert accuracy >= MIN_TEST_ACCURACY
    assert f"{accuracy * 100:.2f} %" in trained["html"]


def test_training_is_a_job_like_any_other(
    stack: tuple[TestClient, Services], trained: dict[str, Any]
) -> None:
    client, services = stack
    job_id = attribute(trained["html"], "data-job-id")
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "SUCCEEDED" and job["epochs"] == EPOCHS
    assert job["val_accuracy"] == pytest.approx(float(attribute(trained["html"], "data-accuracy")), abs=1e-4)
    assert job_id in [j["id"] for j in client.get("/v1/jobs").json()["items"]]
    model = client.get(f"/v1/models/{attribute(trained['html'], 'data-model-id')}").json()
    assert model["classes"] == [str(d) for d in range(10)]
    assert model["params"]["backbone"] == "small_cnn" and model["params"]["image_size"] == 32
    dataset = client.get(f"/v1/datasets/{model['dataset_id']}").json()
    assert dataset["image_count"] == 500
    images = services.store.list_images(DEFAULT_TENANT, model["dataset_id"])
    assert sorted(i.split or "" for i in images).count("val") == 100  # the test CSV is the val split


def test_held_out_canvases_are_predicted(stack: tuple[TestClient, Services], trained: dict[str, Any]) -> None:
    """Fresh digits (another seed than both CSVs), drawn as a browser sends them: transparent
    and white canvases, with and without the data: prefix, at the root and under /seeds/004."""
    client, _ = stack
    rng = random.Random(99)
    right = total = 0
    for index in range(40):
        digit = index % 10
        background = "transparent" if index % 2 else "white"
        image = as_data_url(canvas_png(digit, rng, background), prefix=index % 4 < 2)
        prefix = "/seeds/004" if index % 3 else ""
        response = client.post(f"{prefix}/predict", json={"image": image})
        assert response.status_code == 200
        prediction = response.json()["prediction"]
        assert isinstance(prediction, int) and 0 <= prediction <= 9, prediction
        right += prediction == digit
        total += 1
    assert right / total >= MIN_CANVAS_ACCURACY, f"{right}/{total} canvases right"


def test_a_failed_training_request_keeps_the_model(
    stack: tuple[TestClient, Services], trained: dict[str, Any]
) -> None:
    client, services = stack
    before = DigitService(services.store, services.datasets, services.jobs, services.models).current_model(
        DEFAULT_TENANT
    )
    response = client.post(
        "/training",
        files={"file1": ("a.csv", b"1,2\n", "text/csv"), "file2": ("b.csv", b"1,2\n", "text/csv")},
        data={"epoch": "1"},
    )
    assert response.status_code == 422
    assert len(services.store.list_aliases(DEFAULT_TENANT, MODEL_NAMESPACE)) == 1
    after = DigitService(services.store, services.datasets, services.jobs, services.models).current_model(
        DEFAULT_TENANT
    )
    assert before is not None and after is not None and after.id == before.id
    assert services.store.get_job(DEFAULT_TENANT, attribute(trained["html"], "data-job-id")).status is (
        JobStatus.SUCCEEDED
    )


def test_a_training_still_running_answers_202_and_the_previous_model_keeps_answering(
    stack: tuple[TestClient, Services], trained: dict[str, Any]
) -> None:
    """With the wait setting at 0 the route answers at once with the job to follow; until the
    job succeeds /predict uses the model trained before, then the new one."""
    client, services = stack
    digits = DigitService(services.store, services.datasets, services.jobs, services.models)
    first = digits.current_model(DEFAULT_TENANT)
    assert first is not None
    patient = services.settings
    services.settings = patient.model_copy(update={"digits_training_wait_seconds": 0})
    try:
        response = client.post(
            "/seeds/004/training",
            files={
                "file1": ("train.csv", digits_csv(digit_rows(40, seed=21), header=False), "text/csv"),
                "file2": ("test.csv", digits_csv(digit_rows(10, seed=22), header=True), "text/csv"),
            },
            data={"epoch": "1"},
        )
    finally:
        services.settings = patient
    assert response.status_code == 202, response.text
    job_id = attribute(response.text, "data-job-id")
    assert f"GET /v1/jobs/{job_id}" in response.text
    current = digits.current_model(DEFAULT_TENANT)
    assert current is not None and current.id == first.id  # the new one is still training
    assert isinstance(
        client.post("/predict", json={"image": as_data_url(canvas_png(3, random.Random(4)))}).json()[
            "prediction"
        ],
        int,
    )
    outcome = digits.wait(DEFAULT_TENANT, job_id, timeout=240)
    assert outcome.finished and outcome.job.status is JobStatus.SUCCEEDED, outcome.job.error
    newest = digits.current_model(DEFAULT_TENANT)
    assert newest is not None and newest.id == attribute(response.text, "data-model-id") != first.id
    # deleting it through the core API falls back to the model before
    assert client.delete(f"/v1/models/{newest.id}").status_code == 204
    fallback = digits.current_model(DEFAULT_TENANT)
    assert fallback is not None and fallback.id == first.id
