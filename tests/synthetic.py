"""Synthetic labelled images for tests: each class is a shape with its own colour, drawn at a
random position and size on a noisy background, so a small CNN must look at the picture."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from collections.abc import Iterable

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
COLOURS = {"circle": (220, 40, 40), "square": (40, 180, 60), "triangle": (40, 80, 220)}


def shape_image(label: str, rng: random.Random, size: int = 48) -> bytes:
    background = tuple(rng.randint(90, 160) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    pixels = image.load()
    for _ in range(size * size // 6):  # speckle noise
        x, y = rng.randrange(size), rng.randrange(size)
        pixels[x, y] = tuple(rng.randint(60, 200) for _ in range(3))
    draw = ImageDraw.Draw(image)
    extent = rng.randint(size // 3, size // 2)
    x0, y0 = rng.randint(1, size - extent - 1), rng.randint(1, size - extent - 1)
    colour = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[label])
    if label == "circle":
        draw.ellipse((x0, y0, x0 + extent, y0 + extent), fill=colour)
    elif label == "square":
        draw.rectangle((x0, y0, x0 + extent, y0 + extent), fill=colour)
    else:
        draw.polygon([(x0 + extent / 2, y0), (x0, y0 + extent), (x0 + extent, y0 + extent)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def labelled_images(per_class: int, seed: int, size: int = 48) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [(label, shape_image(label, rng, size)) for label in CLASSES for _ in range(per_class)]


def zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(files: Iterable[tuple[str, bytes]], compression: str = "") -> bytes:
    """A tar archive of the files; compression "gz" makes it a .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    return tar_bytes(files, "gz")


def class_folder_zip(per_class: int, seed: int, size: int = 48) -> bytes:
    images = labelled_images(per_class, seed, size)
    return zip_bytes((f"{label}/{i:04d}.png", data) for i, (label, data) in enumerate(images))
