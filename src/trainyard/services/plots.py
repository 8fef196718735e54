"""The loss plot (train and validation loss per epoch) drawn with Pillow, as a PNG: small,
fast, and without matplotlib in the API's import path. A detector's plot has a second panel
below, its validation mAP@0.5 and mAP@0.5:0.95 per epoch."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from ..domain import EpochMetrics

if TYPE_CHECKING:
    from PIL import ImageDraw

WIDTH, PANEL_HEIGHT = 640, 400
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 40, 50
Series = tuple[tuple[str, tuple[int, int, int]], ...]
LOSS_SERIES: Series = (("loss", (31, 119, 180)), ("val_loss", (255, 127, 14)))
MAP_SERIES: Series = (("val_map_50", (44, 160, 44)), ("val_map_50_95", (148, 103, 189)))
LEGEND_SPACING = 110


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _value(epoch: EpochMetrics, name: str) -> float | None:
    value: float | None = getattr(epoch, name)
    return value if value is not None and math.isfinite(value) else None


def _panel(
    draw: ImageDraw.ImageDraw,
    offset: int,
    epochs: list[EpochMetrics],
    title: str,
    series: Series,
    fixed_range: tuple[float, float] | None = None,
) -> None:
    """One plot of `series` per epoch in the band of the image starting `offset` pixels down;
    the value axis spans the values, or `fixed_range` (mAP: 0 to 1)."""
    left, top = MARGIN_LEFT, offset + MARGIN_TOP
    right, bottom = WIDTH - MARGIN_RIGHT, offset + PANEL_HEIGHT - MARGIN_BOTTOM
    draw.text((left, offset + 12), title, fill="black")
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    values = [v for e in epochs for name, _ in series if (v := _value(e, name)) is not None]
    if not epochs or not values:
        draw.text((left + 10, top + 10), "no completed epoch yet", fill=(90, 90, 90))
        return
    low, high = fixed_range or (min(values), max(values))
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
    draw.text(((left + right) // 2 - 15, offset + PANEL_HEIGHT - 20), "epoch", fill="black")
    for index, (name, colour) in enumerate(series):
        points = [point(e.epoch, v) for e in epochs if (v := _value(e, name)) is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        legend_x = right - LEGEND_SPACING * (len(series) - index)
        draw.line((legend_x, offset + 20, legend_x + 16, offset + 20), fill=colour, width=3)
        draw.text((legend_x + 20, offset + 14), name, fill="black")


def loss_plot_png(epochs: list[EpochMetrics]) -> bytes:
    from PIL import Image, ImageDraw  # here, not at import: see prediction.py

    with_map = any(e.val_map_50 is not None for e in epochs)
    image = Image.new("RGB", (WIDTH, PANEL_HEIGHT * (2 if with_map else 1)), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, epochs, "Loss per epoch", LOSS_SERIES)
    if with_map:
        _panel(draw, PANEL_HEIGHT, epochs, "Validation mAP per epoch", MAP_SERIES, fixed_range=(0.0, 1.0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
