"""Seed 004 as its pages use it, against `python -m trainyard serve` over HTTP and without a
key (the seed had none; the local stack acts for the default tenant): the assistant
unconfigured, a training from CSVs of rendered digits that waits for its job, then canvases
predicted at the bare /predict; the job and model are the default tenant's, seen with its key."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import LocalStack
from tests.synthetic_digits import as_data_url, canvas_png, digit_rows, digits_csv

pytestmark = pytest.mark.e2e

EPOCHS = 15
MIN_TEST_ACCURACY = 0.85  # as tests/integration/test_seed004_training.py, same data sizes
MIN_CANVAS_ACCURACY = 0.8


@pytest.fixture(scope="module")
def page(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=300) as client:  # /training waits for the job
        yield client


def attribute(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name} in {html}"
    return match.group(1)


def test_assistant_unconfigured_says_how_to_configure_it(page: httpx.Client) -> None:
    response = page.get("/model", params={"question": "Qu'est-ce que MNIST ?"})
    assert response.status_code == 503
    assert "TRAINYARD_CHAT_API_URL" in response.text


def test_train_from_csv_then_predict_canvases(page: httpx.Client, api: httpx.Client) -> None:
    response = page.post(
        "/training",
        files={
            "file1": ("mnist_train.csv", digits_csv(digit_rows(400, seed=31), header=True), "text/csv"),
            "file2": ("mnist_test.csv", digits_csv(digit_rows(100, seed=32), header=False), "text/csv"),
        },
        data={"epoch": str(EPOCHS)},
    )
    assert response.status_code == 200, response.text
    accuracy = float(attribute(response.text, "data-accuracy"))
    assert accuracy >= MIN_TEST_ACCURACY
    job_id = attribute(response.text, "data-job-id")
    job = api.get(f"/v1/jobs/{job_id}").json()  # the default tenant's, as the key's holder sees it
    assert job["status"] == "SUCCEEDED" and job["val_accuracy"] == pytest.approx(accuracy, abs=1e-4)

    rng = random.Random(77)
    right = 0
    for index in range(20):
        digit = index % 10
        canvas = canvas_png(digit, rng, "transparent" if index % 2 else "white")
        answer = page.post("/predict", json={"image": as_data_url(canvas, prefix=index % 4 < 2)})
        assert answer.status_code == 200
        right += answer.json()["prediction"] == digit
    assert right / 20 >= MIN_CANVAS_ACCURACY
    empty = page.post("/seeds/004/predict", json={"image": as_data_url(canvas_png(None, rng))})
    assert empty.json() == {"prediction": "The drawing is empty: draw a digit first."}
