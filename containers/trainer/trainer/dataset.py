"""Reading the `training` channel: manifest.jsonl or plain class folders, decoded to arrays.

Images are decoded exactly as the service prepares an image for prediction
(`Image.open(f).convert("RGB").resize((s, s), Image.BILINEAR)`), so the model is trained on
the pixels it will later be asked about. They are kept as uint8 (what Pillow produces; four
times smaller than float32) and cast to float32 0..255 in the input pipeline.

No TensorFlow here: listing, splitting and decoding are plain Python, numpy and Pillow.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np
from PIL import Image

from .errors import DataError

MANIFEST_NAME = "manifest.jsonl"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val")


class ImageFile(Protocol):
    """What decoding needs of an image: where it is, and its name for error messages."""

    @property
    def path(self) -> Path: ...

    @property
    def relative_path(self) -> str: ...


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    relative_path: str
    label: str
    split: str | None  # "train", "val" or None (not assigned)


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (n, size, size, 3) uint8, RGB
    labels: np.ndarray  # (n,) int32 class indices
    paths: tuple[str, ...]  # relative to the channel dir, for error messages and debugging

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    classes: tuple[str, ...]  # index i of the model's output is classes[i]
    train: ImageSet
    validation: ImageSet | None  # None when there is no validation data
    explicit_validation: bool  # True when the channel named its own validation images


def list_images(channel_dir: Path) -> list[LabelledImage]:
    """The labelled images of a channel: from manifest.jsonl when present, else from folders."""
    if not channel_dir.is_dir():
        raise DataError(f"training channel {channel_dir} does not exist or is not a directory")
    manifest = channel_dir / MANIFEST_NAME
    items = read_manifest(manifest) if manifest.is_file() else scan_class_folders(channel_dir)
    if not items:
        raise DataError(f"training channel {channel_dir} holds no images")
    return items


def channel_image_path(channel_dir: Path, relative: str, where: str) -> Path:
    """An image a channel document names: it may only point inside the channel, and must be
    there."""
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise DataError(f"{where}: path {relative!r} must be relative to the channel")
    path = channel_dir.joinpath(*parts)
    if not path.is_file():
        raise DataError(f"{where}: image file {relative!r} does not exist")
    return path


def read_manifest(manifest: Path) -> list[LabelledImage]:
    channel_dir = manifest.parent
    items: list[LabelledImage] = []
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{MANIFEST_NAME} line {number}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{where} is not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise DataError(f"{where} must be a JSON object")
            relative, label, split = record.get("path"), record.get("label"), record.get("split")
            if not isinstance(relative, str) or not relative:
                raise DataError(f"{where}: 'path' must be a non-empty string")
            if not isinstance(label, str) or not label:
                raise DataError(f"{where}: 'label' must be a non-empty string")
            if split is not None and split not in SPLITS:
                raise DataError(f'{where}: \'split\' must be "train", "val" or null, not {split!r}')
            path = channel_image_path(channel_dir, relative, where)
            items.append(LabelledImage(path, relative, label, split))
    return items


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(channel_dir: Path) -> list[LabelledImage]:
    """`<class>/<image>`, or `train/<class>/<image>` + optional `val/<class>/<image>`.

    The split layout is recognised when the only top-level folders are `train` and `val`
    and `train` itself holds class folders; otherwise every top-level folder is a class.
    """
    top = _class_dirs(channel_dir)
    names = {p.name for p in top}
    split_layout = (
        "train" in names and names <= set(SPLITS) and bool(_class_dirs(channel_dir / "train"))
    )
    items: list[LabelledImage] = []
    if split_layout:
        for split_dir in top:
            for class_dir in _class_dirs(split_dir):
                items += _folder_items(channel_dir, class_dir, split_dir.name)
    else:
        for class_dir in top:
            items += _folder_items(channel_dir, class_dir, None)
    return items


def _folder_items(channel_dir: Path, class_dir: Path, split: str | None) -> list[LabelledImage]:
    return [
        LabelledImage(path, path.relative_to(channel_dir).as_posix(), class_dir.name, split)
        for path in _image_files(class_dir)
    ]


def stratified_split(
    labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices (train, validation): `fraction` of each class, rounded, drawn with `seed`.

    Every class keeps at least one training image, so a class with a single image is never
    moved entirely into validation.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train: list[int] = []
    validation: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        count = min(math.floor(len(members) * fraction + 0.5), len(members) - 1)
        validation += shuffled[:count]
        train += shuffled[count:]
    return sorted(train), sorted(validation)


def load_image(path: Path, size: int, relative_path: str | None = None) -> np.ndarray:
    """Decode one image the way the service does for prediction; uint8 (size, size, 3) RGB."""
    try:
        with Image.open(path) as image:
            # Image.Resampling.BILINEAR is the same filter as the service's Image.BILINEAR.
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(resized, dtype=np.uint8)
    except Exception as exc:  # Pillow raises several types for corrupt or unknown files
        name = relative_path or str(path)
        raise DataError(f"cannot decode image {name!r}: {exc}") from None


def decode_images(items: Sequence[ImageFile], size: int) -> np.ndarray:
    if not items:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda item: load_image(item.path, size, item.relative_path), items))
    return np.stack(arrays)


def load_dataset(channel_dir: Path, image_size: int, validation_split: float, seed: int) -> Dataset:
    """List, split and decode the channel. Explicit `val` images win over validation_split."""
    items = list_images(channel_dir)
    classes = tuple(sorted({item.label for item in items}))
    if len(classes) < 2:
        raise DataError(
            f"a classifier needs at least 2 classes; the training channel has {len(classes)}"
        )
    explicit_validation = any(item.split == "val" for item in items)
    if explicit_validation:
        train_items = [item for item in items if item.split != "val"]
        validation_items = [item for item in items if item.split == "val"]
    else:
        train_index, validation_index = stratified_split(
            [item.label for item in items], validation_split, seed
        )
        train_items = [items[i] for i in train_index]
        validation_items = [items[i] for i in validation_index]

    missing = sorted(set(classes) - {item.label for item in train_items})
    if missing:
        raise DataError(f"class(es) {', '.join(map(repr, missing))} have no training images")

    class_index = {name: i for i, name in enumerate(classes)}

    def image_set(subset: list[LabelledImage]) -> ImageSet:
        return ImageSet(
            images=decode_images(subset, image_size),
            labels=np.array([class_index[item.label] for item in subset], dtype=np.int32),
            paths=tuple(item.relative_path for item in subset),
        )

    return Dataset(
        classes=classes,
        train=image_set(train_items),
        validation=image_set(validation_items) if validation_items else None,
        explicit_validation=explicit_validation,
    )
