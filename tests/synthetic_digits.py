"""Digit-like images for seed 004's tests: digits rendered with Pillow's default (scalable)
font at random sizes, stroke widths, slants, rotations and positions.

`digit_rows` makes MNIST-style CSV rows (the digit cropped, scaled to 20 px and centred by
mass in 28x28, white on black, as MNIST was made) and `canvas_png` draws a digit as a browser
canvas sends it (280x280 RGBA, black strokes on a transparent or white background), so the
same digit can be fed to POST /training and to POST /predict.
"""

from __future__ import annotations

import base64
import io
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trainyard.services.digits import PIXELS, mnist_style


def render_digit(digit: int, rng: random.Random, side: int = 96) -> Image.Image:
    """A white-on-black digit, jittered: size, stroke thickness, slant, rotation, position."""
    font = ImageFont.load_default(size=rng.randint(44, 64))
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    x = (side - (right - left)) / 2 - left + rng.uniform(-8, 8)
    y = (side - (bottom - top)) / 2 - top + rng.uniform(-8, 8)
    draw.text((x, y), str(digit), fill=255, font=font, stroke_width=rng.randint(1, 4), stroke_fill=255)
    slant = rng.uniform(-0.25, 0.25)  # a shear, as handwriting leans
    image = image.transform(image.size, Image.Transform.AFFINE, (1, slant, -slant * side / 2, 0, 1, 0))
    return image.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR)


def digit_rows(count: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """`count` (label, 28x28 uint8) pairs, the digits 0-9 in turn."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        digit = index % 10
        frame = mnist_style(np.asarray(render_digit(digit, rng), dtype=np.float32))
        assert frame is not None
        rows.append((digit, frame))
    return rows


def digits_csv(rows: list[tuple[int, np.ndarray]], header: bool) -> bytes:
    lines = []
    if header:
        lines.append(",".join(["label", *(f"pixel{i}" for i in range(PIXELS))]))
    lines += [",".join([str(label), *map(str, pixels.reshape(-1).tolist())]) for label, pixels in rows]
    return ("\n".join(lines) + "\n").encode()


def canvas_png(
    digit: int | None, rng: random.Random, background: str = "transparent", side: int = 280
) -> bytes:
    """A canvas as a browser's toDataURL() gives it: RGBA, black strokes; the background left
    transparent (a canvas's default) or filled white. `digit` None: nothing drawn."""
    fill = (0, 0, 0, 0) if background == "transparent" else (255, 255, 255, 255)
    canvas = Image.new("RGBA", (side, side), fill)
    if digit is not None:
        ink = render_digit(digit, rng).resize((side, side), Image.Resampling.BILINEAR)
        black = Image.new("RGBA", (side, side), (0, 0, 0, 255))
        canvas = Image.composite(black, canvas, ink)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def as_data_url(png: bytes, prefix: bool = True) -> str:
    text = base64.b64encode(png).decode()
    return f"data:image/png;base64,{text}" if prefix else text
