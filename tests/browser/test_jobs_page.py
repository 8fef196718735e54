"""The jobs pages in a real browser against the local stack: a job started from the form is
watched while it trains (the progress text advances, the ETA shows, the charts gain points),
then it succeeds and links its model; a running job is cancelled from its page; a job's
webhook deliveries to a loopback receiver are listed and one is redelivered from the page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Shot
from tests.helpers import webhook_receiver
from tests.local_stack import TERMINAL, LocalStack, wait_for_job
from tests.pose_data import pose_upload, synthetic_pose_data
from tests.synthetic import class_folder_zip

WATCHED_EPOCHS = 8
# Large images on few of them: an epoch of the smallest CNN then takes a second or two here,
# slow enough to watch the page follow it, and the whole job still ends in well under a minute.
WATCHED_PARAMS = {"epochs": WATCHED_EPOCHS, "image_size": 320, "batch_size": 4}
CLASSIFICATION_SERIES = 4  # loss, val_loss, accuracy, val_accuracy


@pytest.fixture(scope="module")
def api(console_stack: LocalStack) -> Iterator[httpx.Client]:
    with console_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def dataset(api: httpx.Client) -> dict[str, Any]:
    response = api.post(
        "/v1/datasets",
        data={"name": "jobs-page-shapes"},
        files={"file": ("shapes.zip", class_folder_zip(8, seed=21), "application/zip")},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def start_job(api: httpx.Client, dataset: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    body = {"type": "train", "dataset_id": dataset["id"], "model_name": name, "exports": ["onnx"], **fields}
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def job_status(page: Page) -> Any:
    return page.get_by_role("status").filter(has_text="Status:")


def chart_points(page: Page) -> int:
    return int(page.locator("svg.chart circle.point").count())


def test_a_job_started_from_the_form_is_watched_until_it_succeeds(
    signed_in: Page, console_stack: LocalStack, api: httpx.Client, dataset: dict[str, Any], shot: Shot
) -> None:
    page = signed_in
    form = page.get_by_role("region", name="Start a training job")
    form.get_by_label("Dataset").select_option(dataset["id"])
    form.get_by_label("Model name").fill("watched-cnn")
    expect(form.get_by_label("Backbone")).to_have_value("small_cnn")
    for label, value in (
        ("Epochs", "epochs"),
        ("Image size (pixels)", "image_size"),
        ("Batch size", "batch_size"),
    ):
        form.get_by_label(label).fill(str(WATCHED_PARAMS[value]))
    for export in ("keras", "tflite"):  # ONNX alone keeps the job short
        form.get_by_label(export, exact=True).uncheck()
    form.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r"#/jobs/job_\w+$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Job {job_id}")

    progress = page.locator(".progress-text")
    expect(progress).to_have_text(re.compile(rf"^Epoch [1-5] of {WATCHED_EPOCHS}$"), timeout=180_000)
    first_epoch = int(re.findall(r"\d+", progress.inner_text())[0])
    expect(job_status(page)).to_contain_text("Running")
    expect(page.get_by_text(re.compile(r"^Time left \(estimate\): \d+ s$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Last epoch took \d+ s$"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("^Loss per epoch"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("^Scores per epoch"))).to_be_visible()
    points_then = chart_points(page)
    assert points_then >= first_epoch * CLASSIFICATION_SERIES

    later = "|".join(str(k) for k in range(first_epoch + 1, WATCHED_EPOCHS + 1))
    expect(progress).to_have_text(re.compile(rf"^Epoch ({later}) of {WATCHED_EPOCHS}$"), timeout=60_000)
    page.wait_for_function(
        "then => document.querySelectorAll('svg.chart circle.point').length > then", arg=points_then
    )
    assert page.locator("svg.chart").count() == 2  # the same two charts, grown in place
    shot(page, "job-running")

    expect(job_status(page)).to_contain_text("Succeeded", timeout=180_000)
    expect(progress).to_have_text(f"Epoch {WATCHED_EPOCHS} of {WATCHED_EPOCHS}")
    assert chart_points(page) == WATCHED_EPOCHS * CLASSIFICATION_SERIES
    expect(page.get_by_text(re.compile(r"^Time left"))).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel the job")).to_be_hidden()
    model_link = page.get_by_role("link", name="Open the model")
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "SUCCEEDED" and job["params"]["image_size"] == WATCHED_PARAMS["image_size"]
    expect(model_link).to_have_attribute("href", f"#/models/{job['model_id']}")
    expect(page.get_by_role("link", name=f"watched-cnn ({job['model_id']})")).to_be_visible()
    shot(page, "job-finished")

    page.get_by_label("Language").select_option("fr")
    expect(progress).to_have_text(f"Époque {WATCHED_EPOCHS} sur {WATCHED_EPOCHS}")
    expect(page.get_by_role("link", name="Ouvrir le modèle")).to_be_visible()
    page.get_by_label("Langue").select_option("en")

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than a phone
    shot(page, "job-finished-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_form_shows_why_the_api_refused_a_job(
    signed_in: Page, dataset: dict[str, Any], expected_http_errors: set[int]
) -> None:
    expected_http_errors.add(422)
    page = signed_in
    form = page.get_by_role("region", name="Start a training job")
    form.get_by_label("Dataset").select_option(dataset["id"])
    form.get_by_label("Epochs").fill("0")
    form.get_by_role("button", name="Start training").click()
    expect(form.get_by_role("alert")).to_contain_text("epochs")
    expect(page).to_have_url(re.compile(r"#/jobs$"))  # still on the form


def test_a_running_job_is_cancelled_from_its_page(
    signed_in: Page, console_stack: LocalStack, api: httpx.Client, dataset: dict[str, Any]
) -> None:
    page = signed_in
    created = start_job(api, dataset, "to-cancel", params={"epochs": 500, "image_size": 64, "batch_size": 8})
    page.goto(f"{console_stack.url}/console/#/jobs/{created['id']}")
    cancel = page.get_by_role("button", name="Cancel the job")
    cancel.click()
    page.get_by_role("button", name="Keep it running").click()  # changing one's mind keeps it going
    expect(cancel).to_be_focused()
    assert api.get(f"/v1/jobs/{created['id']}").json()["status"] not in TERMINAL

    cancel.click()
    expect(page.get_by_text("Stop this job?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(job_status(page)).to_contain_text("Cancelled")
    expect(page.get_by_text("The job was cancelled.")).to_be_visible()
    expect(cancel).to_be_hidden()
    assert api.get(f"/v1/jobs/{created['id']}").json()["status"] == "CANCELLED"


def test_the_list_follows_a_job_and_its_page_shows_and_redelivers_its_webhooks(
    signed_in: Page, console_stack: LocalStack, api: httpx.Client, dataset: dict[str, Any], shot: Shot
) -> None:
    page = signed_in
    with webhook_receiver() as receiver:
        registered = api.post("/v1/webhook-endpoints", json={"url": receiver.url})
        assert registered.status_code in (200, 201), registered.text
        created = start_job(
            api, dataset, "hooked", params={"epochs": 1, "image_size": 32}, webhook_url=receiver.url
        )
        page.reload()  # the list as it is now, with the new job on it
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=created["id"]))
        expect(row).to_contain_text("hooked")  # the model's name, not only its id
        expect(row).to_contain_text("jobs-page-shapes")
        expect(row).to_contain_text("Succeeded", timeout=180_000)  # the list refreshed the row
        shot(page, "jobs-list")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls, not the page
        shot(page, "jobs-list-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        row.get_by_role("link", name=created["id"]).click()
        page.wait_for_url(f"**/#/jobs/{created['id']}")
        delivery = page.locator("li.delivery").filter(has_text="job.succeeded")
        expect(delivery).to_contain_text("Delivered", timeout=30_000)
        expect(delivery).to_contain_text(receiver.url)
        expect(delivery.get_by_role("listitem")).to_have_text(
            re.compile(r"^Series 1, attempt 1: HTTP 200 at ")
        )

        delivery.get_by_role("button", name="Redeliver job.succeeded").click()
        expect(page.get_by_text("Sent again: a new series of attempts.")).to_be_visible()
        expect(delivery.get_by_role("listitem")).to_have_count(2, timeout=30_000)
        expect(delivery.get_by_role("listitem").nth(1)).to_have_text(
            re.compile(r"^Series 2, attempt 1: HTTP 200 at ")
        )
        expect(delivery).to_contain_text("Delivered")
        shot(page, "job-webhooks")

    sent = [request["headers"]["webhook-id"] for request in receiver.requests]
    assert len(sent) == 2 and sent[0] == sent[1]  # the same message, sent again


@pytest.fixture(scope="module")
def pose_model(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A one-epoch pose model (its keypoints need not be good: the page only shows results)."""
    animal = synthetic_pose_data(tmp_path_factory.mktemp("animal"), "slp+video", frames=16, video_frames=6)
    created = api.post(
        "/v1/datasets",
        data={"name": "animal", "task": "pose"},
        files=pose_upload(animal),
    )
    assert created.status_code == 201, created.text
    params = {"epochs": 1, "batch_size": 4, "validation_fraction": 0.2, "seed": 0}
    job = api.post(
        "/v1/jobs",
        json={
            "type": "train",
            "task": "pose",
            "dataset_id": created.json()["id"],
            "model_name": "animal",
            "params": params,
        },
    )
    assert job.status_code == 202, job.text
    assert wait_for_job(api, job.json()["id"], timeout=600)["status"] == "SUCCEEDED"
    return {"id": job.json()["model_id"], "video": (animal / "test_video.mp4").read_bytes()}


def test_a_video_inference_job_shows_its_results_and_preview(
    signed_in: Page, console_stack: LocalStack, api: httpx.Client, pose_model: dict[str, Any], shot: Shot
) -> None:
    page = signed_in
    response = api.post(
        "/v1/jobs",
        data={"type": "infer", "task": "pose", "model_id": pose_model["id"], "params": '{"preview": "both"}'},
        files={"video": ("walk.mp4", pose_model["video"])},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    page.goto(f"{console_stack.url}/console/#/jobs/{job_id}")
    expect(job_status(page)).to_contain_text("Succeeded", timeout=300_000)
    expect(page.locator(".progress-text")).to_have_text("6 of 6 frames")
    results = page.get_by_role("region", name="Results")
    expect(results).to_contain_text("total 6")
    expect(page.locator("main")).not_to_contain_text("null")  # nothing missing shown as JavaScript's null
    expect(page.get_by_role("link", name=re.compile(r"^animal \(mdl_"))).to_be_visible()
    video = results.locator("video[controls]")
    expect(video).to_have_attribute("src", re.compile(r"^blob:"))
    # the preview was fetched with the key and the browser decodes it: duration and frame size
    page.wait_for_function(
        "v => v.readyState >= 1 && v.duration > 0 && v.videoWidth > 0", arg=video.element_handle()
    )
    expect(results.get_by_role("img", name="Preview frame with the predicted poses")).to_be_visible()
    with page.expect_download() as download:
        results.get_by_role("button", name="Download json").click()
    saved = download.value.path()
    assert json.loads(Path(saved).read_text())["frames"]
    shot(page, "job-inference-results")
