"""Synthetic image datasets: coloured shapes on noisy backgrounds.

For the tests, the benchmarks and smoke-checking a container image without real data:
`python -m trainer.synthetic OUT_DIR [--per-class N] [--size S] [--layout ...]`.
Each class is one shape in one hue (red circles, green squares, blue triangles, ...), at a
random place and size on a grey noise background, so a small CNN separates them in a few
epochs while the task is not trivially solved by a single pixel.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

Layout = Literal["manifest", "class_folders", "split_folders"]


@dataclass(frozen=True)
class ShapeClass:
    name: str
    shape: str
    color: tuple[int, int, int]


SHAPE_CLASSES = (
    ShapeClass("red circle", "circle", (220, 40, 40)),
    ShapeClass("green square", "square", (40, 200, 60)),
    ShapeClass("blue triangle", "triangle", (50, 70, 230)),
    ShapeClass("yellow diamond", "diamond", (230, 210, 40)),
)


def draw_shape(shape_class: ShapeClass, size: int, rng: np.random.Generator) -> Image.Image:
    background = rng.normal(128, 30, (size, size, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    jitter = rng.integers(-25, 26, 3)
    color = tuple(int(c) for c in np.clip(np.array(shape_class.color) + jitter, 0, 255))
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape_class.shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape_class.shape == "square":
        draw.rectangle(box, fill=color)
    elif shape_class.shape == "triangle":
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=color
        )
    else:
        draw.polygon(
            [(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=color
        )
    return image


def write_shapes_dataset(
    root: Path,
    *,
    per_class: int = 30,
    size: int = 32,
    num_classes: int = 3,
    layout: Layout = "manifest",
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> list[dict[str, str | None]]:
    """Write PNGs under `root` in the given layout; returns the manifest records.

    `validation_fraction` > 0 marks that share of each class as validation (split "val" in
    the manifest, or the val/ folder in the split layout); 0 leaves the split to the trainer.
    """
    if layout == "split_folders" and validation_fraction <= 0:
        raise ValueError("the split_folders layout needs validation_fraction > 0")
    rng = np.random.default_rng(seed)
    records: list[dict[str, str | None]] = []
    for class_index, shape_class in enumerate(SHAPE_CLASSES[:num_classes]):
        validation_count = round(per_class * validation_fraction)
        for i in range(per_class):
            split = "val" if i < validation_count else ("train" if validation_fraction else None)
            folder = f"class_{class_index}"
            if layout == "class_folders":
                folder = shape_class.name
            elif layout == "split_folders":
                folder = f"{split}/{shape_class.name}"
            relative = f"{folder}/{i:04d}.png"
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            draw_shape(shape_class, size, rng).save(path)
            records.append({"path": relative, "label": shape_class.name, "split": split})
    if layout == "manifest":
        with (root / "manifest.jsonl").open("w") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=3, choices=range(2, 5))
    parser.add_argument(
        "--layout", default="manifest", choices=["manifest", "class_folders", "split_folders"]
    )
    parser.add_argument("--validation-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = write_shapes_dataset(
        args.root,
        per_class=args.per_class,
        size=args.size,
        num_classes=args.classes,
        layout=args.layout,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )
    print(f"wrote {len(records)} images to {args.root}")


if __name__ == "__main__":
    main()
