"""Synthetic detection data: coloured shapes at random places and sizes on textured
backgrounds, written as a `training` channel (annotations.json + images/).

For the tests, the benchmark and smoke-checking an image without real data:
`python -m trainer.detection.synthetic OUT_DIR [--images N] [--size S] [--val-fraction F]`.
Backgrounds mix noise, stripes of random frequency and a colour gradient, so the detector has
to find the shapes' outlines and colours rather than any bright pixel.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..synthetic import SHAPE_CLASSES, ShapeClass


@dataclass(frozen=True)
class RenderedImage:
    image: Image.Image
    boxes: list[tuple[float, float, float, float]]  # x_min, y_min, x_max, y_max
    classes: list[int]


def textured_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    frequency = rng.uniform(0.05, 0.4)
    stripes = 35 * np.sin(frequency * (np.cos(angle) * xs + np.sin(angle) * ys))
    base = rng.uniform(70, 180, 3)
    gradient = rng.uniform(-40, 40, 3) * (xs / max(width, 1))[..., None]
    noise = rng.normal(0, 18, (height, width, 3))
    return np.clip(base + gradient + stripes[..., None] + noise, 0, 255).astype(np.uint8)


def render_image(
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    num_classes: int = 3,
    max_objects: int = 3,
    min_fraction: float = 0.15,
    max_fraction: float = 0.4,
) -> RenderedImage:
    """One image with 1..max_objects shapes whose sides are min..max_fraction of the image."""
    image = Image.fromarray(textured_background(width, height, rng), "RGB")
    draw = ImageDraw.Draw(image)
    boxes: list[tuple[float, float, float, float]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        class_index = int(rng.integers(0, num_classes))
        side = float(rng.uniform(min_fraction, max_fraction)) * min(width, height)
        x0 = float(rng.uniform(0, width - side))
        y0 = float(rng.uniform(0, height - side))
        box = (x0, y0, x0 + side, y0 + side)
        _draw(draw, SHAPE_CLASSES[class_index], box, rng)
        boxes.append(box)
        classes.append(class_index)
    return RenderedImage(image, boxes, classes)


def _draw(
    draw: ImageDraw.ImageDraw,
    shape_class: ShapeClass,
    box: tuple[float, float, float, float],
    rng: np.random.Generator,
) -> None:
    jitter = rng.integers(-25, 26, 3)
    color = tuple(int(c) for c in np.clip(np.array(shape_class.color) + jitter, 0, 255))
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape_class.shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape_class.shape == "square":
        draw.rectangle(box, fill=color)
    elif shape_class.shape == "triangle":
        draw.polygon([(cx, y0), (x0, y1), (x1, y1)], fill=color)
    else:
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)


def write_detection_channel(
    root: Path,
    *,
    images: int = 300,
    size: int = 128,
    num_classes: int = 3,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, object]:
    """Write `images` PNGs and annotations.json (schema trainyard.detection/1) under `root`;
    the first val_fraction of them are split "val". Returns the annotations document."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    validation_count = round(images * val_fraction)
    entries = []
    for index in range(images):
        rendered = render_image(size, size, rng, num_classes=num_classes)
        relative = f"images/{index:06d}.png"
        rendered.image.save(root / relative)
        entries.append(
            {
                "file": relative,
                "width": size,
                "height": size,
                "split": "val" if index < validation_count else "train",
                "boxes": [
                    {"class": c, "x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3]}
                    for b, c in zip(rendered.boxes, rendered.classes, strict=True)
                ],
            }
        )
    document: dict[str, object] = {
        "schema": "trainyard.detection/1",
        "classes": [c.name for c in SHAPE_CLASSES[:num_classes]],
        "images": entries,
    }
    (root / "annotations.json").write_text(json.dumps(document))
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=3, choices=range(1, 5))
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_detection_channel(
        args.root,
        images=args.images,
        size=args.size,
        num_classes=args.classes,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    print(f"wrote {args.images} images to {args.root}")


if __name__ == "__main__":
    main()
