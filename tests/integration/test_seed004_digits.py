"""Seed 004's pieces on their own (services/digits.py and the /training answer): CSV reading
as real files come (header or not, BOM, CRLF, quotes), MNIST-style canvas preprocessing, and
the HTML message for every way a training job ends."""

from __future__ import annotations

import base64
import io
import random

import numpy as np
import pytest
from PIL import Image

from tests.synthetic_digits import canvas_png, digit_rows, digits_csv, render_digit
from trainyard.api.seeds.seed004 import _training_page
from trainyard.domain import Job, JobStatus, JobType, Task
from trainyard.errors import InvalidInput
from trainyard.services.digits import (
    COLUMNS,
    DIGIT_BOX,
    SIDE,
    DigitTraining,
    canvas_to_mnist,
    labelled_images,
    mnist_style,
    parse_digit_csv,
)
from trainyard.settings import Settings

ROWS = digit_rows(12, seed=5)
MAX_PIXELS = 10_000_000


def canvas_field(png: bytes) -> str:
    return base64.b64encode(png).decode()


# --- CSV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "label," + ",".join(f"pixel{i}" for i in range(784)),
        "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)),
    ],
)
def test_a_header_row_is_recognised_and_skipped(header: str) -> None:
    body = digits_csv(ROWS, header=False)
    parsed = parse_digit_csv(header.encode() + b"\n" + body, "file1")
    assert parsed.had_header and parsed.labels == [label for label, _ in ROWS]


def test_rows_without_header_keep_every_pixel() -> None:
    parsed = parse_digit_csv(digits_csv(ROWS, header=False), "file1")
    assert not parsed.had_header
    assert parsed.labels == [label for label, _ in ROWS]
    assert parsed.pixels.dtype == np.uint8 and parsed.pixels.shape == (len(ROWS), SIDE, SIDE)
    for (_, expected), got in zip(ROWS, parsed.pixels, strict=True):
        assert np.array_equal(expected, got)


def test_bom_crlf_quotes_spaces_and_blank_lines_are_read() -> None:
    label, pixels = ROWS[0]
    cells = [f'"{label}"', *(f" {v}" for v in pixels.reshape(-1).tolist())]
    data = "\ufeff" + "\r\n\r\n".join([",".join(cells)] * 3) + "\r\n\r\n"
    parsed = parse_digit_csv(data.encode("utf-8"), "file2")
    assert parsed.labels == [label] * 3 and np.array_equal(parsed.pixels[2], pixels)


def test_a_second_non_numeric_row_is_an_error_not_a_header() -> None:
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    data = (header + "\n" + header + "\n").encode()
    with pytest.raises(InvalidInput, match=r"file1 line 2, column 1 \(label\): 'label' is not an integer"):
        parse_digit_csv(data, "file1")


def test_row_cap() -> None:
    with pytest.raises(InvalidInput, match="file1: more than 3 rows"):
        parse_digit_csv(digits_csv(ROWS[:4], header=True), "file1", max_rows=3)
    assert len(parse_digit_csv(digits_csv(ROWS[:3], header=True), "file1", max_rows=3).labels) == 3


def test_unbalanced_quote_names_the_file() -> None:
    data = digits_csv(ROWS[:1], header=False) + b'"' + b"1," * (COLUMNS - 1) + b"\n"
    with pytest.raises(InvalidInput, match="file1"):
        parse_digit_csv(data, "file1")


def test_rows_become_grayscale_pngs_with_the_same_pixels() -> None:
    parsed = parse_digit_csv(digits_csv(ROWS[:3], header=False), "file1")
    items = labelled_images(parsed, "val")
    assert [(i.label, i.split, i.image.format, i.image.width) for i in items] == [
        (str(label), "val", "PNG", SIDE) for label, _ in ROWS[:3]
    ]
    decoded = np.asarray(Image.open(io.BytesIO(items[1].image.data)))
    assert np.array_equal(decoded, ROWS[1][1])


# --- the canvas -----------------------------------------------------------------------------


def mass_centre(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    total = float(image.sum())
    return float((ys * image).sum()) / total, float((xs * image).sum()) / total


def test_mnist_style_fits_20_px_and_centres_the_mass() -> None:
    ink = np.zeros((300, 200), dtype=np.float32)
    ink[40:240, 150:190] = 255  # a tall bar far off-centre
    frame = mnist_style(ink)
    assert frame is not None and frame.shape == (SIDE, SIDE) and frame.dtype == np.uint8
    rows, cols = np.nonzero(frame >= 128)
    assert rows.max() - rows.min() + 1 == DIGIT_BOX  # the longer side is 20 px
    assert cols.max() - cols.min() + 1 == 4  # aspect kept: 40/200 of 20
    centre_y, centre_x = mass_centre(frame.astype(np.float64))
    assert abs(centre_y - SIDE / 2) <= 1 and abs(centre_x - SIDE / 2) <= 1


def test_no_ink_or_faint_noise_is_an_empty_drawing() -> None:
    assert mnist_style(np.zeros((50, 50), dtype=np.float32)) is None
    assert mnist_style(np.full((50, 50), 20, dtype=np.float32)) is None


@pytest.mark.parametrize("background", ["transparent", "white"])
def test_black_strokes_become_white_ink_on_black(background: str) -> None:
    frame = canvas_to_mnist(canvas_field(canvas_png(7, random.Random(3), background)), MAX_PIXELS)
    assert frame is not None
    assert frame[0].max() == 0 and frame[:, 0].max() == 0  # black border
    assert frame.max() >= 250  # white ink


def test_the_same_drawing_in_any_colours_gives_the_same_image() -> None:
    """Black on transparent (a canvas's default), black on white, white on transparent, white
    on black: all one MNIST image."""
    ink = render_digit(5, random.Random(8), side=140)
    mask = np.asarray(ink)
    frames = []
    for stroke, backdrop in [
        ((0, 0, 0), None),
        ((0, 0, 0), (255, 255, 255)),
        ((255, 255, 255), None),
        ((255, 255, 255), (0, 0, 0)),
    ]:
        rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
        if backdrop is not None:
            rgba[...] = (*backdrop, 255)
        drawn = mask > 0
        rgba[drawn, :3] = stroke
        if backdrop is None:
            rgba[..., 3] = mask  # the stroke's coverage is its alpha, as a canvas antialiases
        else:
            weight = (mask / 255.0)[..., None]
            rgba[..., :3] = (np.array(stroke) * weight + np.array(backdrop) * (1 - weight)).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
        frames.append(canvas_to_mnist(canvas_field(buffer.getvalue()), MAX_PIXELS))
    first = frames[0]
    assert first is not None
    for frame in frames[1:]:
        assert frame is not None and np.abs(frame.astype(int) - first.astype(int)).max() <= 2


def test_a_jpeg_data_url_is_accepted() -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(canvas_png(2, random.Random(1), "white"))).convert("RGB").save(
        buffer, format="JPEG"
    )
    frame = canvas_to_mnist("data:image/jpeg;base64," + canvas_field(buffer.getvalue()), MAX_PIXELS)
    assert frame is not None and frame.max() >= 200


def test_a_canvas_over_the_pixel_cap_is_refused() -> None:
    with pytest.raises(InvalidInput, match="image: image is 280x280, over the 1000-pixel limit"):
        canvas_to_mnist(canvas_field(canvas_png(2, random.Random(1))), 1000)


# --- the /training answer for each way a job ends ---------------------------------------------


def job(status: JobStatus, **fields: object) -> Job:
    return Job(
        id="job_1",
        tenant_id="default",
        type=JobType.TRAIN,
        task=Task.CLASSIFICATION,
        dataset_id="ds_1",
        model_id="mdl_1",
        params={},
        epochs=12,
        status=status,
        **fields,  # type: ignore[arg-type]
    )


def test_training_page_success_failure_cancel_and_pending() -> None:
    done = _training_page(
        DigitTraining(job(JobStatus.SUCCEEDED, val_accuracy=0.98765, current_epoch=12), True)
    )
    assert done.status_code == 200
    assert 'data-accuracy="0.9877"' in done.body.decode() and "98.77 %" in done.body.decode()
    failed = _training_page(DigitTraining(job(JobStatus.FAILED, error="worker killed by <SIGKILL>"), True))
    assert failed.status_code == 500
    assert (
        failed.body.decode()
        == '<p class="error">Training failed (job job_1): worker killed by &lt;SIGKILL&gt;</p>'
    )
    cancelled = _training_page(DigitTraining(job(JobStatus.CANCELLED), True))
    assert cancelled.status_code == 409 and "cancelled" in cancelled.body.decode()
    pending = _training_page(DigitTraining(job(JobStatus.RUNNING, current_epoch=3), False))
    assert pending.status_code == 202 and "epoch 3 of 12" in pending.body.decode()


def test_training_wait_defaults_to_fit_each_backend() -> None:
    assert Settings(backend="local").digits_training_wait == 1800
    assert Settings(backend="aws").digits_training_wait == 20  # API Gateway ends requests at 29 s
    assert Settings(backend="aws", digits_training_wait_seconds=5).digits_training_wait == 5
