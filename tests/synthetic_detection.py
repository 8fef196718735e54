"""Synthetic object detection data for tests: coloured shapes (circle, square, triangle) at
random positions and sizes on textured backgrounds (a gradient, stripes and noise), with
their boxes, and the archives a user would upload: COCO JSON or YOLO txt, with or without a
train/val split, as .zip, .tar.gz or .tar.

    samples = detection_samples(12, seed=0)         # images and their boxes
    coco_archive(12, seed=0, split=True)            # bytes of a .zip in the COCO layout
    yolo_archive(12, seed=0, archive="tar.gz")      # bytes of a .tar.gz in the YOLO layout
    coco_files(samples) / yolo_files(samples)       # {path: bytes}, to alter before archiving
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from tests.synthetic import CLASSES, COLOURS, tar_bytes, zip_bytes

SPLIT_EVERY = 4  # with a split, every 4th image is a validation image


@dataclass(frozen=True)
class ShapeBox:
    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def class_index(self) -> int:
        return CLASSES.index(self.label)


@dataclass(frozen=True)
class DetectionSample:
    name: str  # the image's file name, e.g. "shapes_0003.png"
    png: bytes
    width: int
    height: int
    boxes: tuple[ShapeBox, ...]
    split: str | None = None


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    """A gradient between two dull colours, faint stripes at a random angle, and noise: enough
    texture that a detector must look at the shapes' outlines and colours."""
    generator = np.random.default_rng(rng.randrange(2**32))
    start, end = (np.array([rng.randint(70, 170) for _ in range(3)], dtype=np.float64) for _ in range(2))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = xs / max(width - 1, 1) if rng.random() < 0.5 else ys / max(height - 1, 1)
    pixels = start + (end - start) * along[..., None]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period)
    pixels += rng.uniform(8, 20) * stripes[..., None]
    pixels += generator.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """IoU of two squares (x0, y0, extent)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    intersection = ix * iy
    return intersection / (a[2] ** 2 + b[2] ** 2 - intersection)


def render_detection_image(
    rng: random.Random, width: int = 128, height: int = 128, max_shapes: int = 3
) -> tuple[bytes, list[ShapeBox]]:
    """One PNG with 1..max_shapes shapes (each 15-45% of the shorter side, overlapping little)
    and their boxes in pixels: x_min, y_min inclusive, x_max, y_max exclusive edges."""
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    placed: list[tuple[int, int, int]] = []
    boxes = []
    short = min(width, height)
    for _ in range(rng.randint(1, max_shapes)):
        for _attempt in range(20):
            extent = rng.randint(max(4, int(short * 0.15)), max(5, int(short * 0.45)))
            square = (rng.randint(0, width - extent), rng.randint(0, height - extent), extent)
            if all(_overlap(square, other) < 0.2 for other in placed):
                break
        else:
            continue
        placed.append(square)
        x0, y0, extent = square
        label = rng.choice(CLASSES)
        colour = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[label])
        x1, y1 = x0 + extent - 1, y0 + extent - 1  # Pillow's corners are inclusive
        if label == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif label == "square":
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.polygon([(x0 + (extent - 1) / 2, y0), (x0, y1), (x1, y1)], fill=colour)
        boxes.append(ShapeBox(label, float(x0), float(y0), float(x0 + extent), float(y0 + extent)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), boxes


def detection_samples(
    count: int,
    seed: int,
    width: int = 128,
    height: int = 128,
    split: bool = False,
    max_shapes: int = 3,
) -> list[DetectionSample]:
    """`count` images; with split, every SPLIT_EVERY-th is "val" and the others "train"."""
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        png, boxes = render_detection_image(rng, width, height, max_shapes)
        chosen = ("val" if index % SPLIT_EVERY == SPLIT_EVERY - 1 else "train") if split else None
        samples.append(DetectionSample(f"shapes_{index:04d}.png", png, width, height, tuple(boxes), chosen))
    return samples


def coco_document(samples: list[DetectionSample], category_ids: tuple[int, ...] = (1, 2, 3)) -> dict:
    """A COCO annotation file for the samples; category_ids[i] is the id of CLASSES[i]."""
    images, annotations = [], []
    for image_id, sample in enumerate(samples, 1):
        size = {"width": sample.width, "height": sample.height}
        images.append({"id": image_id, "file_name": sample.name, **size})
        for box in sample.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[box.class_index],
                    "bbox": [box.x_min, box.y_min, box.x_max - box.x_min, box.y_max - box.y_min],
                    "area": (box.x_max - box.x_min) * (box.y_max - box.y_min),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": category_ids[i], "name": name} for i, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_files(samples: list[DetectionSample], category_ids: tuple[int, ...] = (1, 2, 3)) -> dict[str, bytes]:
    """The COCO layout: images/<name> and annotations.json beside images/, or with a split
    annotations/instances_train.json and annotations/instances_val.json (file names are then
    found under images/ at the top)."""
    files = {f"images/{s.name}": s.png for s in samples}
    if any(s.split for s in samples):
        for split in ("train", "val"):
            document = coco_document([s for s in samples if s.split == split], category_ids)
            files[f"annotations/instances_{split}.json"] = json.dumps(document).encode()
    else:
        files["annotations.json"] = json.dumps(coco_document(samples, category_ids)).encode()
    return files


def yolo_label(sample: DetectionSample) -> bytes:
    """The YOLO label file of a sample: `class x_center y_center width height`, normalised."""
    lines = [
        f"{box.class_index} {(box.x_min + box.x_max) / 2 / sample.width:.6f}"
        f" {(box.y_min + box.y_max) / 2 / sample.height:.6f}"
        f" {(box.x_max - box.x_min) / sample.width:.6f} {(box.y_max - box.y_min) / sample.height:.6f}"
        for box in sample.boxes
    ]
    return ("\n".join(lines) + "\n").encode()


def yolo_files(samples: list[DetectionSample], names: str = "classes.txt") -> dict[str, bytes]:
    """The YOLO layout: images/[split/]<name>, labels/[split/]<stem>.txt, and the class names
    in `names`: "classes.txt" (one a line) or "data.yaml" (names: [...])."""
    files: dict[str, bytes] = {}
    for sample in samples:
        folder = f"{sample.split}/" if sample.split else ""
        stem = sample.name.rsplit(".", 1)[0]
        files[f"images/{folder}{sample.name}"] = sample.png
        files[f"labels/{folder}{stem}.txt"] = yolo_label(sample)
    if names == "data.yaml":
        files["data.yaml"] = f"nc: {len(CLASSES)}\nnames: [{', '.join(CLASSES)}]\n".encode()
    else:
        files[names] = ("\n".join(CLASSES) + "\n").encode()
    return files


def archive_bytes(files: dict[str, bytes], archive: str = "zip") -> bytes:
    """The files as a .zip, a .tar.gz or a plain .tar."""
    entries = sorted(files.items())
    if archive == "zip":
        return zip_bytes(entries)
    if archive in ("tar.gz", "tar"):
        return tar_bytes(entries, "gz" if archive == "tar.gz" else "")
    raise ValueError(f"archive must be zip, tar.gz or tar, not {archive!r}")


def coco_archive(
    count: int = 12,
    seed: int = 0,
    *,
    split: bool = False,
    archive: str = "zip",
    width: int = 128,
    height: int = 128,
) -> bytes:
    """A COCO dataset of `count` synthetic images as upload bytes (archive: zip, tar.gz, tar)."""
    return archive_bytes(coco_files(detection_samples(count, seed, width, height, split)), archive)


def yolo_archive(
    count: int = 12,
    seed: int = 0,
    *,
    split: bool = False,
    archive: str = "zip",
    width: int = 128,
    height: int = 128,
    names: str = "classes.txt",
) -> bytes:
    """A YOLO dataset of `count` synthetic images as upload bytes (archive: zip, tar.gz, tar)."""
    return archive_bytes(yolo_files(detection_samples(count, seed, width, height, split), names), archive)
