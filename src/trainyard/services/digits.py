"""Handwritten digits (seed 004): MNIST-style CSVs become a classification dataset and a
training job like any other; a browser canvas becomes an MNIST-style image for the model; the
tenant's digit model is the newest one trained this way that is ready. (The seed's questions
to a chat API go through services/assistant.py, which the console's assistant shares.)

Nothing here trains or predicts by itself: the dataset, job and model services do, so a digit
model is an ordinary Trainyard model (listed in /v1/models, its job in /v1/jobs).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain import TERMINAL_STATUSES, Alias, Job, Model, ModelStatus
from ..errors import InvalidInput
from ..params import ClassifierParams
from ..ports import JobStore
from .datasets import DatasetService, LabelledImage
from .images import CheckedImage, decode_base64_image, open_checked_image
from .jobs import JobService, TrainJobRequest
from .models import ModelService

if TYPE_CHECKING:
    import numpy as np

# numpy and Pillow are imported where they are used, as in prediction.py: a cold start that
# answers another route should not pay for them.

SIDE = 28  # MNIST's frame
PIXELS = SIDE * SIDE
COLUMNS = 1 + PIXELS  # the label, then the pixels row by row
DIGIT_BOX = 20  # MNIST scaled each digit to fit 20x20 before centring it in the 28x28 frame
CSV_HELP = f"each row: the label 0-9, then {PIXELS} pixels 0-255 ({COLUMNS} columns); a header row is allowed"
MAX_CSV_ROWS = 100_000  # MNIST's train CSV has 60,000
MODEL_NAMESPACE = "004.model"  # one alias per digit training, named by its number
TRAINING_COUNTER = "004.training"
# the digit model is trained at the classifier's smallest input: 28 px rows are resized to it
MODEL_IMAGE_SIZE = 32
INK_THRESHOLD = 40  # 0-255: fainter pixels (anti-aliasing, compression noise) are not ink
EMPTY_DRAWING = "The drawing is empty: draw a digit first."
INTEGER = re.compile(r"[+-]?[0-9]+")
INTEGER_ROW = re.compile(r"[+-]?[0-9]+(?:,[+-]?[0-9]+)*")
NO_MODEL = "No digit model is trained yet: train one with your CSV files first (POST /training)."


# --- CSV ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigitRows:
    labels: list[int]
    pixels: np.ndarray  # (rows, 28, 28) uint8
    had_header: bool


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _bad_cell(row: list[str], where: str) -> InvalidInput:
    """The first cell of `row` that is not an integer in its range, as an error naming it."""
    for column, cell in enumerate(row):
        text = cell.strip()
        if not INTEGER.fullmatch(text):
            what = "label" if column == 0 else f"pixel {column}"
            return InvalidInput(f"{where}, column {column + 1} ({what}): {cell!r} is not an integer")
        value = int(text)
        high = 9 if column == 0 else 255
        if not 0 <= value <= high:
            what = "label" if column == 0 else f"pixel {column}"
            return InvalidInput(f"{where}, column {column + 1} ({what}): {value} is outside 0-{high}")
    return InvalidInput(f"{where}: unreadable row")  # not reached: the caller saw a bad cell


def _rows(data: bytes, field: str) -> Iterator[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{field}: not a UTF-8 text CSV ({exc.reason} at byte {exc.start})") from exc
    try:
        for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if any(cell.strip() for cell in row):  # blank lines (a trailing newline) are not rows
                yield line, row
    except csv.Error as exc:
        raise InvalidInput(f"{field}: unreadable CSV ({exc})") from exc


def _delimiter_hint(row: list[str]) -> str:
    """Why a row has one column when it was written with another separator (Excel in many
    locales writes ';'), so the message says what to change."""
    if len(row) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if separator in row[0]:
                return f" (separated by {name}? columns must be separated by commas)"
    return ""


def parse_digit_csv(data: bytes, field: str, max_rows: int = MAX_CSV_ROWS) -> DigitRows:
    """Every row checked: 785 columns, integers, label 0-9, pixels 0-255. The first row is a
    header when its first cell is not a number (as `label,pixel0,…` or `label,1x1,…`)."""
    import numpy as np

    labels: list[int] = []
    images: list[np.ndarray] = []
    had_header = False
    for index, (line, row) in enumerate(_rows(data, field)):
        where = f"{field} line {line}"
        if len(row) != COLUMNS:
            raise InvalidInput(f"{where}: {len(row)} columns{_delimiter_hint(row)}; {CSV_HELP}")
        if index == 0 and not _is_number(row[0].strip()):
            had_header = True
            continue
        if len(labels) == max_rows:
            raise InvalidInput(f"{field}: more than {max_rows} rows")
        cells = [cell.strip() for cell in row]
        # numpy alone would also take "1_0" and non-ASCII digits: the row is matched first
        if not INTEGER_ROW.fullmatch(",".join(cells)):
            raise _bad_cell(row, where)
        try:
            values = np.array(cells, dtype=np.int64)
        except OverflowError:
            raise _bad_cell(row, where) from None
        if not (0 <= values[0] <= 9 and values[1:].min() >= 0 and values[1:].max() <= 255):
            raise _bad_cell(row, where)
        labels.append(int(values[0]))
        images.append(values[1:].astype(np.uint8).reshape(SIDE, SIDE))
    if not labels:
        raise InvalidInput(f"{field}: no data rows; {CSV_HELP}")
    return DigitRows(labels, np.stack(images), had_header)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def labelled_images(rows: DigitRows, split: str) -> list[LabelledImage]:
    """Each row as a 28x28 grayscale PNG labelled with its digit."""
    return [
        LabelledImage(str(label), split, CheckedImage(_png(pixels), "PNG", "png", SIDE, SIDE))
        for label, pixels in zip(rows.labels, rows.pixels, strict=True)
    ]


# --- the canvas -----------------------------------------------------------------------------


def _flatten_canvas(image: Any) -> np.ndarray:
    """Grayscale 0-255 of a canvas as a browser sends it. A transparent canvas (the default)
    carries the drawing in its alpha: it is composited onto the colour opposite to its strokes',
    so dark strokes land on white and light ones on black, whatever the page's CSS showed."""
    import numpy as np
    from PIL import Image as PILImage

    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() < 255:
        gray = np.asarray(rgba.convert("L"), dtype=np.float32)
        opaque = alpha > 127
        strokes_are_dark = bool(opaque.any()) and float(gray[opaque].mean()) < 128
        backdrop = PILImage.new(
            "RGBA", rgba.size, (255, 255, 255, 255) if strokes_are_dark else (0, 0, 0, 255)
        )
        rgba = PILImage.alpha_composite(backdrop, rgba)
    return np.asarray(rgba.convert("L"), dtype=np.float32)


def _ink(gray: np.ndarray) -> np.ndarray:
    """White ink on black, as MNIST: the background is what the border mostly is; ink is how far
    a pixel is from it."""
    import numpy as np

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    return np.abs(gray - background) * (255.0 / max(background, 255.0 - background, 1.0))


def mnist_style(gray: np.ndarray) -> np.ndarray | None:
    """A 28x28 uint8 image made as MNIST's were from white-on-black ink: cropped to the ink's
    bounding box, scaled to fit 20x20 (aspect kept), then placed in the 28x28 frame so that its
    centre of mass is the frame's centre. None when there is no ink."""
    import numpy as np
    from PIL import Image as PILImage

    rows, cols = np.nonzero(gray >= INK_THRESHOLD)
    if rows.size == 0:
        return None
    crop = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = crop.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = PILImage.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(
        size, PILImage.Resampling.LANCZOS
    )
    digit = np.asarray(resized, dtype=np.float32)
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    centre_y = float((ys * digit).sum()) / total if total else digit.shape[0] / 2
    centre_x = float((xs * digit).sum()) / total if total else digit.shape[1] / 2
    # the offset that puts the centre of mass at the frame's centre, kept inside the frame
    top = min(max(round(SIDE / 2 - centre_y), 0), SIDE - digit.shape[0])
    left = min(max(round(SIDE / 2 - centre_x), 0), SIDE - digit.shape[1])
    frame = np.zeros((SIDE, SIDE), dtype=np.float32)
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.clip(frame, 0, 255).astype(np.uint8)


def canvas_to_mnist(image_field: object, max_pixels: int) -> np.ndarray | None:
    """The base64 PNG a canvas sends (with or without its data: prefix) as a 28x28 MNIST-style
    image; None when nothing is drawn."""
    data = decode_base64_image(image_field, "image")
    image = open_checked_image(data, "image", max_pixels)
    return mnist_style(_ink(_flatten_canvas(image)))


# --- training and the tenant's digit model --------------------------------------------------


@dataclass(frozen=True)
class DigitTraining:
    job: Job
    finished: bool  # False: still running when the wait ran out


class DigitService:
    """Seed 004's use cases over the core services."""

    def __init__(
        self, store: JobStore, datasets: DatasetService, jobs: JobService, models: ModelService
    ) -> None:
        self._store = store
        self._datasets = datasets
        self._jobs = jobs
        self._models = models

    def start_training(self, tenant_id: str, train_csv: bytes, test_csv: bytes, epochs: int) -> Job:
        """Both CSVs checked whole, then one dataset (the test CSV as its val split, so the
        job's val_accuracy is the test accuracy) and one small_cnn training job."""
        try:
            params = ClassifierParams(backbone="small_cnn", epochs=epochs, image_size=MODEL_IMAGE_SIZE)
        except ValueError:
            raise InvalidInput(f"epoch: {epochs} is outside 1-500") from None
        train = parse_digit_csv(train_csv, "file1")
        test = parse_digit_csv(test_csv, "file2")
        classes = set(train.labels)
        if len(classes) < 2:
            raise InvalidInput(f"file1: a classifier needs at least 2 classes, found {len(classes)}")
        unknown = sorted(set(test.labels) - classes)
        if unknown:
            raise InvalidInput(
                f"file2: digits {', '.join(map(str, unknown))} are not in file1; the model only learns"
                " the digits of the training file"
            )
        number = self._store.next_number(tenant_id, TRAINING_COUNTER)
        name = f"digits-{number}"
        dataset = self._datasets.create_from_images(
            tenant_id, name, labelled_images(train, "train") + labelled_images(test, "val")
        )
        try:
            job = self._jobs.create_job(
                tenant_id,
                TrainJobRequest(
                    type="train",
                    dataset_id=dataset.id,
                    model_name=name,
                    description="seed 004: digits trained from CSV (POST /training)",
                    params=params,
                    exports=["keras", "onnx"],
                ),
            )
        except BaseException:
            self._datasets.delete(tenant_id, dataset.id)
            raise
        self._store.put_alias(
            Alias(tenant_id=tenant_id, namespace=MODEL_NAMESPACE, name=str(number), target=job.model_id)
        )
        return job

    def wait(self, tenant_id: str, job_id: str, timeout: float, poll_seconds: float = 0.5) -> DigitTraining:
        deadline = time.monotonic() + timeout
        while True:
            job = self._jobs.get(tenant_id, job_id)
            if job.status in TERMINAL_STATUSES:
                return DigitTraining(job, finished=True)
            if time.monotonic() >= deadline:
                return DigitTraining(job, finished=False)
            time.sleep(poll_seconds)

    def current_model(self, tenant_id: str) -> Model | None:
        """The newest digit model that is ready: a training that fails or is still running
        leaves the previous model answering."""
        for alias in reversed(self._store.list_aliases(tenant_id, MODEL_NAMESPACE)):
            model = self._store.get_model(tenant_id, alias.target)
            if model is not None and model.status is ModelStatus.READY:
                return model
        return None

    def predict(self, tenant_id: str, image_field: object, max_pixels: int) -> int | str:
        """The digit a canvas shows, or the message the page displays instead."""
        digit = canvas_to_mnist(image_field, max_pixels)  # checked first: bad input is refused
        if digit is None:
            return EMPTY_DRAWING
        model = self.current_model(tenant_id)
        if model is None:
            return NO_MODEL
        answer = self._models.predict(tenant_id, model.id, _png(digit), {"top_k": 1})
        return int(answer["predictions"][0]["label"])
