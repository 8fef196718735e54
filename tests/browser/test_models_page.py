"""The Models pages in a real browser against the local stack, with models trained for real
(tiny, to keep the CPU free): a classifier made through seed 000 and fed once (two versions),
a detector and a pose model. The list, a model's metrics, loss plot, versions, an ONNX export
saved through the page, deletion with its confirmation, and "try it": an image dropped by a
real drop event (classifier: score bars; detector: boxes and their list; pose: keypoints),
and a video inference job launched from the page until its result video and frames show.

The three trainings start together when the module starts (fixture `submitted`), and each
test waits only for the model it needs."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any

import httpx
import onnxruntime
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Shot, sign_in
from tests.local_stack import LocalStack, wait_for_job
from tests.pose_data import pose_upload, run_in_pose_venv, synthetic_pose_data
from tests.synthetic import labelled_images, shape_image, zip_bytes
from tests.synthetic_detection import coco_archive, detection_samples

# Seed 000's parameters (tests/integration/test_seed000_feed.py): 32-px images, a small CNN,
# about 0.1 s an epoch; the feed repeats them to make version 2.
CLASSIFIER = {"epochs": 15, "image_height": 32, "image_width": 32, "batch_size": 8, "seed": 1,
              "learning_rate": 0.003, "nn_type": 0}  # fmt: skip
DETECTOR = {"epochs": 2, "image_size": 64, "batch_size": 8, "learning_rate": 0.001, "seed": 0}
POSE = {"model_type": "single_instance", "backbone": "unet", "epochs": 12, "batch_size": 4,
        "learning_rate": 1e-3, "sigma": 2.5, "output_stride": 2, "validation_fraction": 0.2,
        "seed": 0}  # fmt: skip
TRAINING_TIMEOUT = 900.0
JOB_TIMEOUT_MS = 300_000  # a pose inference job starts sleap-nn in a fresh process


@pytest.fixture(scope="module")
def api(console_stack: LocalStack) -> Any:
    with console_stack.client() as client:
        yield client


def wait_until(read: Any, done: Any, what: str, timeout: float = TRAINING_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        value: dict[str, Any] = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value}"
        time.sleep(1)


def wait_for_seed_model(api: httpx.Client, number: int) -> dict[str, Any]:
    view = wait_until(lambda: api.get(f"/models/{number}").json(), lambda v: v["status"] != "training",
                      f"seed 000 model {number}")  # fmt: skip
    assert view["status"] == "ready", view
    return view


def wait_for_training(api: httpx.Client, job_id: str) -> dict[str, Any]:
    job = wait_for_job(api, job_id, timeout=TRAINING_TIMEOUT)
    assert job["status"] == "SUCCEEDED", job
    return job


@pytest.fixture(scope="module")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_pose_data(
        tmp_path_factory.mktemp("animal"), "slp+video", frames=40, video_frames=8, seed=3
    )


@pytest.fixture(scope="module")
def submitted(api: httpx.Client, animal: Path) -> dict[str, Any]:
    """Every training of the module, started at once."""
    images = labelled_images(16, seed=3, size=32)
    archive = zip_bytes((f"{label}/{i}.png", data) for i, (label, data) in enumerate(images))
    created = api.post("/v1/datasets", data={"name": "console shapes"}, files={"file": ("d.zip", archive)})
    assert created.status_code == 201, created.text
    number = next(d["id"] for d in api.get("/datasets").json() if d["dataset_id"] == created.json()["id"])
    body = {"model_name": "console-shapes", "dataset_id": number, "parameters": CLASSIFIER}
    seed_model = api.post("/models/train", json=body)
    assert seed_model.status_code == 200, seed_model.text

    boxes = api.post(
        "/v1/datasets",
        data={"name": "console boxes", "task": "detection"},
        files={"file": ("boxes.zip", coco_archive(40, seed=5, split=True, width=64, height=64))},
    )
    assert boxes.status_code == 201, boxes.text
    detector = api.post(
        "/v1/jobs",
        json={"type": "train", "task": "detection", "dataset_id": boxes.json()["id"],
              "model_name": "console-boxes", "params": DETECTOR, "exports": ["onnx"]},
    )  # fmt: skip
    assert detector.status_code == 202, detector.text

    frames = api.post(
        "/v1/datasets",
        data={"name": "console animal", "task": "pose"},
        files=pose_upload(animal),
    )
    assert frames.status_code == 201, frames.text
    pose = api.post("/v1/jobs", json={"type": "train", "task": "pose", "dataset_id": frames.json()["id"],
                                      "model_name": "console-animal", "params": POSE})  # fmt: skip
    assert pose.status_code == 202, pose.text
    return {"seed_number": seed_model.json()["id"], "detector": detector.json(), "pose": pose.json()}


@pytest.fixture(scope="module")
def classifier(api: httpx.Client, submitted: dict[str, Any]) -> dict[str, Any]:
    """Seed 000's model: version 1 trained on circles, squares and triangles, then fed more
    circles, which makes version 2."""
    number = submitted["seed_number"]
    first = wait_for_seed_model(api, number)
    rng = random.Random(50)
    fed = api.put(f"/models/feed/{number}", json={"images": [
        {"image_b64": base64.b64encode(shape_image("circle", rng, 32)).decode(), "label": "circle"}
        for _ in range(4)
    ]})  # fmt: skip
    assert fed.status_code == 200, fed.text
    second = wait_for_seed_model(api, number)
    assert (first["version"], second["version"]) == (1, 2)
    return {"first": first["model_id"], "second": second["model_id"], "name": first["name"]}


@pytest.fixture(scope="module")
def detector(api: httpx.Client, submitted: dict[str, Any]) -> str:
    wait_for_training(api, submitted["detector"]["id"])
    return str(submitted["detector"]["model_id"])


@pytest.fixture(scope="module")
def pose_model(api: httpx.Client, submitted: dict[str, Any]) -> str:
    wait_for_training(api, submitted["pose"]["id"])
    return str(submitted["pose"]["model_id"])


def drop_file(page: Page, data: bytes, name: str, mime: str) -> None:
    """A real drop on the "try it" drop zone: a File in a DataTransfer, dragged over and dropped."""
    page.evaluate(
        """({ b64, name, mime }) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            const zone = document.querySelector('.model-try .dropzone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        {"b64": base64.b64encode(data).decode(), "name": name, "mime": mime},
    )


def open_model(page: Page, stack: LocalStack, model_id: str) -> None:
    page.goto(f"{stack.url}/console/#/models/{model_id}")
    expect(page.get_by_role("heading", name="Try it")).to_be_visible()


def test_the_list_links_each_model_with_its_status_and_metric(
    page: Page, console_stack: LocalStack, classifier: dict[str, Any], shot: Shot
) -> None:
    sign_in(page, console_stack)
    page.goto(f"{console_stack.url}/console/#/models")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=classifier["name"])).first
    expect(row).to_contain_text("Classification")
    expect(row).to_contain_text("Ready")
    expect(row).to_contain_text("val_accuracy")
    shot(page, "models-list")
    row.get_by_role("link", name=classifier["name"]).click()
    page.wait_for_url("**/#/models/mdl_*")
    expect(page.get_by_role("heading", name="Metrics")).to_be_visible()


def test_a_classifier_shows_metrics_plot_and_exports_and_names_a_dropped_image(
    page: Page, console_stack: LocalStack, api: httpx.Client, classifier: dict[str, Any], shot: Shot
) -> None:
    model = api.get(f"/v1/models/{classifier['first']}").json()
    sign_in(page, console_stack)
    open_model(page, console_stack, classifier["first"])
    metrics = page.locator("section", has=page.get_by_role("heading", name="Metrics"))
    for name in ("loss", "val_loss", "accuracy", "val_accuracy"):
        shown = f"{round(model['metrics'][name], 4):g}"  # as formatNumber shows it
        expect(metrics.locator(f"dt:text-is('{name}') + dd")).to_have_text(shown)
    plot = page.get_by_role("img", name="Loss per epoch of console-shapes")
    expect(plot).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
    classes = page.locator("section", has=page.get_by_role("heading", name="Classes"))
    expect(classes).to_contain_text("circle, square, triangle")
    job_link = page.get_by_role("link", name=model["job_id"])
    expect(job_link).to_have_attribute("href", f"#/jobs/{model['job_id']}")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download ONNX").click()
    download = download_info.value
    assert download.suggested_filename == f"console-shapes-{classifier['first']}-model.onnx"
    onnx_bytes = Path(download.path()).read_bytes()
    assert onnx_bytes == api.get(f"/v1/models/{classifier['first']}/exports/onnx").content
    session = onnxruntime.InferenceSession(onnx_bytes)  # a real ONNX model: it loads
    assert session.get_inputs()[0].shape[1:] == [32, 32, 3]
    expect(page.get_by_text("downloaded.")).to_be_visible()

    held_out = shape_image("triangle", random.Random(4242), 32)
    drop_file(page, held_out, "held-out-triangle.png", "image/png")
    bars = page.get_by_role("list", name="Scores")
    expect(bars).to_be_visible()
    expect(bars.locator("li").first.locator(".label")).to_have_text("triangle")
    expect(page.get_by_role("img", name="Your image: held-out-triangle.png")).to_be_visible()
    shot(page, "model-classifier-try")


def test_the_fed_model_shows_both_versions_and_leads_from_one_to_the_other(
    page: Page, console_stack: LocalStack, classifier: dict[str, Any], shot: Shot
) -> None:
    sign_in(page, console_stack)
    open_model(page, console_stack, classifier["second"])
    versions = page.locator("section", has=page.get_by_role("heading", name="Versions"))
    rows = versions.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text(classifier["first"])
    expect(rows.nth(1)).to_contain_text(f"{classifier['second']} (this one)")
    versions.get_by_role("link", name=classifier["first"]).click()
    page.wait_for_url(f"**/#/models/{classifier['first']}")
    expect(versions.locator("tbody tr").nth(0)).to_contain_text("(this one)")
    expect(versions.get_by_role("link", name=classifier["second"])).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than a phone
    shot(page, "model-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_detector_draws_the_boxes_it_lists_at_the_chosen_threshold(
    page: Page, console_stack: LocalStack, api: httpx.Client, detector: str, shot: Shot
) -> None:
    sample = detection_samples(1, seed=778, width=64, height=64)[0]
    threshold = "0.05"
    answer = api.post(f"/v1/models/{detector}/predict", files={"file": (sample.name, io.BytesIO(sample.png))},
                      data={"score_threshold": threshold}).json()  # fmt: skip
    assert answer["boxes"], f"the tiny detector found nothing at {threshold}: {answer}"
    sign_in(page, console_stack)
    open_model(page, console_stack, detector)
    page.get_by_label("Score threshold").fill(threshold)
    drop_file(page, sample.png, sample.name, "image/png")
    count = len(answer["boxes"])
    expect(page.get_by_role("img", name=f"{sample.name} with {count} detected box(es)")).to_be_visible()
    listed = page.locator("ol.detections li")
    expect(listed).to_have_count(count)
    for item, box in zip(listed.all(), answer["boxes"], strict=True):
        expect(item).to_contain_text(f"{box['label']} {box['score'] * 100:.1f} %")
    assert page.evaluate("document.querySelector('.model-try canvas').width") == 64
    shot(page, "model-detector-try")


def first_frame_png(animal: Path) -> bytes:
    out = animal / "frame0.png"
    video = animal / "test_video.mp4"
    frame = f"sleap_io.load_video({str(video)!r})[0][..., 0]"  # grayscale: one channel
    run_in_pose_venv("-c", f"import sleap_io, imageio.v3; imageio.v3.imwrite({str(out)!r}, {frame})")
    return out.read_bytes()


def test_a_pose_model_draws_keypoints_on_an_image_and_runs_on_a_video(
    page: Page, console_stack: LocalStack, api: httpx.Client, pose_model: str, animal: Path, shot: Shot
) -> None:
    sign_in(page, console_stack)
    open_model(page, console_stack, pose_model)
    expect(page.get_by_role("heading", name="Keypoints")).to_be_visible()

    drop_file(page, first_frame_png(animal), "frame0.png", "image/png")
    drawn = page.get_by_role(
        "img", name=re.compile(r"^frame0\.png with \d+ keypoint\(s\) of 1 instance\(s\)$")
    )
    expect(drawn).to_be_visible(timeout=JOB_TIMEOUT_MS)
    # what the page drew and listed is what the one-frame job predicted
    job_id = page.locator(".model-try .result").get_by_role("link").get_attribute("href").rsplit("/", 1)[1]
    predictions = api.get(f"/v1/jobs/{job_id}/results/json").json()
    points = predictions["frames"][0]["instances"][0]["points"]
    found = {node: xy for node, (*xy, _) in points.items() if xy[0] is not None}
    assert found, f"the tiny pose model found no keypoint at all: {points}"
    expect(drawn).to_have_attribute(
        "aria-label", f"frame0.png with {len(found)} keypoint(s) of 1 instance(s)"
    )
    for node in ("head", "body", "tail"):
        rounded = [str(math.floor(v + 0.5)) for v in found.get(node, [])]  # as Math.round rounds
        where = ", ".join(rounded) if rounded else "—"
        expect(page.locator(".model-try .result li", has_text=f"{node}: ")).to_have_text(f"{node}: {where}")

    page.get_by_label("Video").set_input_files(str(animal / "test_video.mp4"))
    page.get_by_role("button", name="Run on the video").click()
    status = page.locator("#video-status")
    expect(status).to_contain_text("Done: keypoints found in", timeout=JOB_TIMEOUT_MS)
    expect(status).to_contain_text("of 8 frames")
    preview = page.get_by_role("img", name="Frames of the result, with the keypoints drawn")
    expect(preview).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    video = page.locator("video")
    expect(video).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("(v) => v.readyState >= 1 && v.duration > 0", arg=video.element_handle())
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download predictions.json").click()
    predictions = json.loads(Path(download_info.value.path()).read_text())
    assert len(predictions["frames"]) == 8 and predictions["skeleton"]["nodes"] == ["head", "body", "tail"]
    shot(page, "model-pose")


def test_deleting_asks_first_and_then_removes_the_model(
    page: Page, console_stack: LocalStack, api: httpx.Client, classifier: dict[str, Any]
) -> None:
    sign_in(page, console_stack)
    open_model(page, console_stack, classifier["second"])
    page.get_by_role("button", name="Delete model").click()
    question = page.get_by_role("alertdialog")
    expect(question).to_contain_text("Delete console-shapes and its exports?")
    question.get_by_role("button", name="Keep it").click()
    expect(question).to_be_hidden()
    assert api.get(f"/v1/models/{classifier['second']}").status_code == 200
    page.get_by_role("button", name="Delete model").click()
    question.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/#/models")
    expect(page.get_by_role("status").filter(has_text="Model console-shapes deleted.")).to_be_visible()
    assert api.get(f"/v1/models/{classifier['second']}").status_code == 404


def test_the_list_speaks_french_when_asked(
    page: Page, console_stack: LocalStack, classifier: dict[str, Any]
) -> None:
    sign_in(page, console_stack)
    page.get_by_label("Language").select_option("fr")
    page.goto(f"{console_stack.url}/console/#/models")
    expect(page.get_by_role("heading", name="Modèles")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Métrique principale")).to_be_visible()
    page.get_by_role("link", name=classifier["name"]).first.click()
    expect(page.get_by_role("heading", name="Essayer")).to_be_visible()
    expect(page.get_by_text("Déposez une image ici, ou choisissez-en une :")).to_be_visible()
    page.get_by_label("Langue").select_option("en")
    expect(page.get_by_role("heading", name="Try it")).to_be_visible()
