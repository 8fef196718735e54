"""The Datasets pages in a real browser against the local stack: a classification zip dropped
on the drop zone (a real drop event) goes up with a progress bar to 100 % and lands on its
page with thumbnails per class; a bad zip's refusal is shown under that file; a file over the
page's inline limit goes through POST /v1/uploads + PUT + POST /v1/datasets {upload_id}; the
list pages and deletes after a confirmation; detection boxes and pose skeletons are drawn."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import Shot
from tests.local_stack import LocalStack
from tests.pose_data import synthetic_pose_data
from tests.synthetic import labelled_images, zip_bytes
from tests.synthetic_detection import archive_bytes, coco_files, detection_samples

INLINE_LIMIT_BYTES = 4 * 1024 * 1024  # pages/datasets.js INLINE_LIMIT_BYTES
# draw.js: the colours of successive boxes and instances, and the height of a box's label tag
# on a picture under 200 px (a 1-px line: a 10-px font + 4)
PALETTE = [[0xE6, 0x19, 0x4B], [0x3C, 0xB4, 0x4B], [0x43, 0x63, 0xD8], [0xF5, 0x82, 0x31]]
TAG_HEIGHT = 14

# Every `value` the upload progress bars take, recorded as the page sets them (the page moves
# on to the new dataset as soon as it exists, so the bar is not there to be looked at after).
RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  new MutationObserver((changes) => {
    for (const { target } of changes) {
      if (target.tagName === 'PROGRESS') window.progressSeen.push(Number(target.getAttribute('value')));
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['value'] });
}"""

# A real drop: File objects in a DataTransfer, dispatched as dragenter, dragover and drop.
DROP_FILES = """([selector, files]) => {
  const transfer = new DataTransfer();
  for (const { name, b64 } of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: 'application/zip' }));
  }
  const zone = document.querySelector(selector);
  for (const type of ['dragenter', 'dragover', 'drop']) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  }
}"""


def class_zip(per_class: int = 2, seed: int = 1) -> bytes:
    return zip_bytes(
        [(f"{label}/{i}.png", data) for i, (label, data) in enumerate(labelled_images(per_class, seed))]
    )


def noise_png(size: int, rng: random.Random) -> bytes:
    """An image PNG cannot compress, to make archives of a chosen size."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def open_datasets(page: Page, stack: LocalStack) -> None:
    page.goto(f"{stack.url}/console/#/datasets")
    expect(page.get_by_role("heading", name="Upload a dataset")).to_be_visible()


def create_dataset(
    stack: LocalStack, name: str, data: bytes, task: str = "classification", filename: str = "d.zip"
) -> Any:
    with stack.client() as client:
        response = client.post(
            "/v1/datasets", data={"name": name, "task": task}, files={"file": (filename, data)}
        )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_dropped_zip_goes_up_with_a_progress_bar_and_opens_its_page(
    signed_in: Page, console_stack: LocalStack, shot: Shot
) -> None:
    page = signed_in
    open_datasets(page, console_stack)
    page.evaluate(RECORD_PROGRESS)
    page.get_by_label("Name").fill("dropped shapes")
    page.evaluate(
        DROP_FILES, [".dropzone", [{"name": "shapes.zip", "b64": base64.b64encode(class_zip(3)).decode()}]]
    )
    expect(page.get_by_text("shapes.zip (")).to_be_visible()
    page.get_by_role("button", name="Upload", exact=True).click()

    page.wait_for_url("**/#/datasets/ds_*")
    expect(page.get_by_role("heading", name="dropped shapes")).to_be_visible()
    seen = page.evaluate("window.progressSeen")
    assert seen and seen[-1] == 100 and seen == sorted(seen), seen
    expect(page.get_by_role("img", name="circle,")).to_have_count(3)  # thumbnails, with their class
    expect(page.get_by_role("img", name="square,")).to_have_count(3)
    expect(page.get_by_role("row", name="circle 3 3")).to_be_visible()  # counts per class and split
    for image in page.get_by_role("img", name="triangle,").all():
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") == 48  # the picture itself, not a broken one
    page.get_by_label("Show").select_option("square")
    expect(page.get_by_role("img", name="circle,")).to_have_count(0)
    expect(page.get_by_role("img", name="square,")).to_have_count(3)
    page.get_by_label("Show").select_option("")
    expect(page.get_by_role("img", name="circle,")).to_have_count(3)
    shot(page, "datasets-classification")


def test_a_refused_zip_shows_the_reason_under_that_file(
    signed_in: Page, console_stack: LocalStack, expected_http_errors: set[int], shot: Shot, tmp_path: Path
) -> None:
    expected_http_errors.add(422)
    page = signed_in
    open_datasets(page, console_stack)
    only_circles = zip_bytes(
        [(f"circle/{i}.png", data) for i, (_, data) in enumerate(labelled_images(2, 3)[:2])]
    )
    (tmp_path / "one-class.zip").write_bytes(only_circles)
    (tmp_path / "fine.zip").write_bytes(class_zip(1, seed=4))
    page.get_by_label("or choose files").set_input_files([tmp_path / "one-class.zip", tmp_path / "fine.zip"])
    page.get_by_role("button", name="Upload", exact=True).click()

    rows = page.get_by_role("list", name="Upload a dataset").get_by_role("listitem")
    refused, accepted = rows.nth(0), rows.nth(1)
    expect(refused.get_by_role("alert")).to_have_text(
        "one-class.zip: a classifier needs at least 2 classes, found 1"
    )
    expect(refused.get_by_role("progressbar", name="Upload of one-class.zip")).to_have_attribute(
        "value", "100"
    )
    expect(accepted.get_by_role("link", name="Open fine")).to_be_visible()  # two files: two datasets
    expect(accepted.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("link", name="fine", exact=True)).to_be_visible()  # the list was reloaded
    shot(page, "datasets-upload-done")


def test_a_file_over_the_inline_limit_goes_through_the_upload_flow(
    signed_in: Page, console_stack: LocalStack, tmp_path: Path
) -> None:
    rng = random.Random(5)
    large = zip_bytes(
        [(f"{label}/{i}.png", noise_png(512, rng)) for label in ("noise", "static") for i in range(3)]
    )
    assert len(large) > INLINE_LIMIT_BYTES
    (tmp_path / "large.zip").write_bytes(large)
    page = signed_in
    open_datasets(page, console_stack)
    page.evaluate(RECORD_PROGRESS)
    requests: list[tuple[str, str, str | None]] = []

    def record(request: Request) -> None:
        if "/v1/" in request.url:
            requests.append(
                (
                    request.method,
                    request.url.split("/v1/")[1].split("?")[0],
                    request.headers.get("content-type"),
                )
            )

    page.on("request", record)
    page.get_by_label("or choose files").set_input_files(tmp_path / "large.zip")
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url("**/#/datasets/ds_*")
    expect(page.get_by_role("img", name="noise,")).to_have_count(3)

    sends = [
        (method, path.split("/")[0] + ("/id" if "/" in path else ""), kind)
        for method, path, kind in requests[:3]
    ]
    assert sends == [
        ("POST", "uploads", "application/json"),
        ("PUT", "uploads/id", "application/octet-stream"),
        ("POST", "datasets", "application/json"),
    ], requests
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100 and seen == sorted(seen), seen


def test_the_list_pages_through_and_deletes_after_a_confirmation(
    signed_in: Page, console_stack: LocalStack, shot: Shot
) -> None:
    for number in range(21):  # more than a page of 20, whatever other tests made
        create_dataset(console_stack, f"listed {number:02d}", class_zip(1, seed=number))
    page = signed_in
    open_datasets(page, console_stack)
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(21)  # the header and one page
    page.get_by_role("button", name="Load more").click()
    expect(page.get_by_role("link", name="listed 00")).to_be_visible()
    assert rows.count() > 22
    expect(page.get_by_role("row", name="listed 20")).to_contain_text("circle, square, triangle")
    shot(page, "datasets-list")

    page.get_by_role("button", name="Delete listed 20").click()
    expect(page.get_by_text("Delete listed 20 for good?")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()  # nothing happens
    expect(page.get_by_role("link", name="listed 20")).to_be_visible()
    page.get_by_role("button", name="Delete listed 20").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_role("status").filter(has_text="Deleted listed 20.")).to_be_visible()
    expect(page.get_by_role("link", name="listed 20")).to_have_count(0)
    with console_stack.client() as client:
        names = [d["name"] for d in client.get("/v1/datasets", params={"limit": 100}).json()["items"]]
    assert "listed 20" not in names and "listed 19" in names

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "datasets-list-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_detection_dataset_shows_its_boxes(signed_in: Page, console_stack: LocalStack, shot: Shot) -> None:
    samples = detection_samples(4, seed=21, width=160, height=120)
    dataset = create_dataset(
        console_stack, "shapes with boxes", archive_bytes(coco_files(samples)), task="detection"
    )
    page = signed_in
    page.goto(f"{console_stack.url}/console/#/datasets/{dataset['id']}")
    expect(page.get_by_role("heading", name="shapes with boxes")).to_be_visible()
    for sample in samples:
        labels = ", ".join(dict.fromkeys(b.label for b in sample.boxes))
        name = f"Image images/{sample.name} with {len(sample.boxes)} box(es): {labels}"
        expect(page.get_by_role("img", name=name)).to_be_visible()
    boxes = samples[0].boxes
    last = boxes[-1]  # drawn last, so its label tag is on top: draw.js fills it in the box's colour
    tag_top = max(0, int(last.y_min) - TAG_HEIGHT)
    colour = page.get_by_role("img", name=f"Image images/{samples[0].name}").evaluate(
        "(canvas, [x, y]) => Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data)",
        [int(last.x_min) + 1, tag_top + 1],
    )
    assert colour[:3] == PALETTE[(len(boxes) - 1) % len(PALETTE)]
    shot(page, "datasets-detection")


@pytest.fixture(scope="module")
def pose_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return (
        synthetic_pose_data(tmp_path_factory.mktemp("pose"), "pkg", frames=8, video_frames=4)
        / "labels.pkg.slp"
    )


def test_a_pose_dataset_shows_its_skeleton_on_sample_frames(
    signed_in: Page, console_stack: LocalStack, shot: Shot, pose_package: Path
) -> None:
    dataset = create_dataset(
        console_stack, "animals", pose_package.read_bytes(), task="pose", filename="labels.pkg.slp"
    )
    page = signed_in
    page.goto(f"{console_stack.url}/console/#/datasets/{dataset['id']}")
    expect(page.get_by_role("heading", name="Sample frames")).to_be_visible()
    frames = page.get_by_role("img", name="keypoints joined by the skeleton")
    expect(frames).to_have_count(len(dataset["samples"]))
    expect(page.get_by_text(", ".join(dataset["skeletons"][0]["nodes"]), exact=True)).to_be_visible()
    point = next(p for p in dataset["samples"][0]["instances"][0]["points"] if p is not None)
    colour = frames.first.evaluate(
        "(canvas, [x, y]) => Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data)",
        [int(point[0]), int(point[1])],
    )
    assert colour[:3] == PALETTE[0]  # the middle of a keypoint's dot, in the first instance's colour
    assert page.get_by_label("Show").count() == 0  # frames have no class to filter by
    shot(page, "datasets-pose")
