"""The loss plot (train and validation loss per epoch) drawn with Pillow, as a PNG: small,
fast, and without matplotlib in the API's import path."""

from __future__ import annotations

import io
import math

from ..domain import EpochMetrics

WIDTH, HEIGHT = 640, 400
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 40, 50
SERIES = (("loss", (31, 119, 180)), ("val_loss", (255, 127, 14)))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def loss_plot_png(epochs: list[EpochMetrics]) -> bytes:
    from PIL import Image, ImageDraw  # here, not at import: see prediction.py

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM
    draw.text((left, 12), "Loss per epoch", fill="black")
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    values = [v for e in epochs for v in (e.loss, e.val_loss) if v is not None and math.isfinite(v)]
    if not epochs or not values:
        draw.text((left + 10, top + 10), "no completed epoch yet", fill=(90, 90, 90))
    else:
        low, high = min(values), max(values)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        first, last = epochs[0].epoch, epochs[-1].epoch
        span = max(last - first, 1)

        def point(epoch: int, value: float) -> tuple[float, float]:
            x = left + (epoch - first) / span * (right - left)
            y = bottom - (value - low) / (high - low) * (bottom - top)
            return x, y

        for tick in _ticks(low, high):
            _, y = point(first, tick)
            draw.line((left - 4, y, left, y), fill=(120, 120, 120))
            draw.text((6, y - 6), f"{tick:.3g}", fill="black")
        for e in (epochs[0], epochs[len(epochs) // 2], epochs[-1]):
            x, _ = point(e.epoch, low)
            draw.line((x, bottom, x, bottom + 4), fill=(120, 120, 120))
            draw.text((x - 4, bottom + 8), str(e.epoch), fill="black")
        draw.text(((left + right) // 2 - 15, HEIGHT - 20), "epoch", fill="black")
        for index, (name, colour) in enumerate(SERIES):
            points = [
                point(e.epoch, v) for e in epochs if (v := getattr(e, name)) is not None and math.isfinite(v)
            ]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
            legend_x = right - 150 + index * 75
            draw.line((legend_x, 20, legend_x + 16, 20), fill=colour, width=3)
            draw.text((legend_x + 20, 14), name, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
