"""Reading the detection `training` channel: annotations.json (schema trainyard.detection/1)
and its images, decoded and resized to image_size × image_size with their boxes scaled.

The service has validated the upload already; this checks again what would otherwise fail
deep inside training (a missing file, a box outside its image, an unknown class), naming
the image. No TensorFlow here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import channel_image_path, decode_images
from ..errors import DataError

ANNOTATIONS_NAME = "annotations.json"
SCHEMA = "trainyard.detection/1"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class AnnotatedImage:
    path: Path
    relative_path: str
    width: int
    height: int
    split: str | None
    boxes: np.ndarray  # (n, 4) float32 x_min, y_min, x_max, y_max in original pixels
    classes: np.ndarray  # (n,) int32


@dataclass(frozen=True)
class DetectionSet:
    images: np.ndarray  # (n, size, size, 3) uint8
    boxes: tuple[np.ndarray, ...]  # per image (k, 4) float32 xyxy in resized pixels
    classes: tuple[np.ndarray, ...]  # per image (k,) int32
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def box_count(self) -> int:
        return sum(len(b) for b in self.boxes)


@dataclass(frozen=True)
class DetectionDataset:
    classes: tuple[str, ...]
    train: DetectionSet
    validation: DetectionSet | None
    explicit_validation: bool

    @property
    def max_boxes_per_image(self) -> int:
        sets = [self.train] + ([self.validation] if self.validation is not None else [])
        return max(1, *(len(b) for s in sets for b in s.boxes))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where} must be a finite number, not {json.dumps(value)}")
    return float(value)


def _read_image_entry(
    channel_dir: Path, entry: Any, index: int, class_count: int
) -> AnnotatedImage:
    where = f"{ANNOTATIONS_NAME} images[{index}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where} must be an object")
    relative = entry.get("file")
    if not isinstance(relative, str) or not relative:
        raise DataError(f"{where}: 'file' must be a non-empty string")
    path = channel_image_path(channel_dir, relative, where)
    width = entry.get("width")
    height = entry.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise DataError(f"{where} ({relative}): width and height must be positive integers")
    split = entry.get("split")
    if split is not None and split not in SPLITS:
        raise DataError(f'{where} ({relative}): split must be "train", "val" or null')
    raw_boxes = entry.get("boxes", [])
    if not isinstance(raw_boxes, list):
        raise DataError(f"{where} ({relative}): boxes must be a list")
    boxes = np.zeros((len(raw_boxes), 4), dtype=np.float32)
    classes = np.zeros(len(raw_boxes), dtype=np.int32)
    for k, box in enumerate(raw_boxes):
        box_where = f"{where} ({relative}) boxes[{k}]"
        if not isinstance(box, dict):
            raise DataError(f"{box_where} must be an object")
        cls = box.get("class")
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < class_count:
            raise DataError(f"{box_where}: class {json.dumps(cls)} is not a known class index")
        coords = [
            _number(box.get(n), f"{box_where} {n}") for n in ("x_min", "y_min", "x_max", "y_max")
        ]
        x_min, y_min, x_max, y_max = coords
        if not (0 <= x_min < x_max <= width and 0 <= y_min < y_max <= height):
            raise DataError(
                f"{box_where}: box {coords} is empty or outside the {width}×{height} image"
            )
        boxes[k] = coords
        classes[k] = cls
    return AnnotatedImage(path, relative, width, height, split, boxes, classes)


def read_annotations(channel_dir: Path) -> tuple[tuple[str, ...], list[AnnotatedImage]]:
    if not channel_dir.is_dir():
        raise DataError(f"training channel {channel_dir} does not exist or is not a directory")
    path = channel_dir / ANNOTATIONS_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"training channel has no {ANNOTATIONS_NAME}") from None
    except ValueError as exc:
        raise DataError(f"{ANNOTATIONS_NAME} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise DataError(f"{ANNOTATIONS_NAME} must be an object with schema {SCHEMA!r}")
    classes = document.get("classes")
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise DataError(f"{ANNOTATIONS_NAME}: classes must be a list of distinct class names")
    entries = document.get("images")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{ANNOTATIONS_NAME}: images must be a non-empty list")
    images = [_read_image_entry(channel_dir, e, i, len(classes)) for i, e in enumerate(entries)]
    if not any(len(image.boxes) for image in images):
        raise DataError(f"{ANNOTATIONS_NAME} has no boxes: a detector needs annotated objects")
    return tuple(classes), images


def split_images(
    images: Sequence[AnnotatedImage], validation_split: float, seed: int
) -> tuple[list[AnnotatedImage], list[AnnotatedImage], bool]:
    """(train, validation, explicit): images marked `val` when there are any, else a seeded
    random `validation_split` share (at least one training image is kept)."""
    if any(image.split == "val" for image in images):
        return (
            [i for i in images if i.split != "val"],
            [i for i in images if i.split == "val"],
            True,
        )
    order = np.random.default_rng(seed).permutation(len(images))
    count = min(math.floor(len(images) * validation_split + 0.5), len(images) - 1)
    validation = sorted(order[:count].tolist())
    chosen = set(validation)
    return (
        [image for i, image in enumerate(images) if i not in chosen],
        [images[i] for i in validation],
        False,
    )


def _detection_set(images: Sequence[AnnotatedImage], size: int) -> DetectionSet:
    pixels = decode_images(images, size)
    boxes = []
    for image in images:
        scale = np.array(
            [size / image.width, size / image.height, size / image.width, size / image.height],
            dtype=np.float32,
        )
        boxes.append(image.boxes * scale)
    return DetectionSet(
        images=pixels,
        boxes=tuple(boxes),
        classes=tuple(image.classes for image in images),
        paths=tuple(image.relative_path for image in images),
    )


def load_detection_dataset(
    channel_dir: Path, image_size: int, validation_split: float, seed: int
) -> DetectionDataset:
    classes, images = read_annotations(channel_dir)
    train, validation, explicit = split_images(images, validation_split, seed)
    if not any(len(image.boxes) for image in train):
        raise DataError("the training images have no boxes (all annotated images are in val)")
    return DetectionDataset(
        classes=classes,
        train=_detection_set(train, image_size),
        validation=_detection_set(validation, image_size) if validation else None,
        explicit_validation=explicit,
    )
