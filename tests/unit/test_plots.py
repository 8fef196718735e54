"""The loss plot: one panel of losses, and a detector's second panel of validation mAP."""

from __future__ import annotations

import io

from PIL import Image

from trainyard.domain import EpochMetrics
from trainyard.services.plots import MAP_SERIES, PANEL_HEIGHT, WIDTH, loss_plot_png


def epochs(with_map: bool) -> list[EpochMetrics]:
    return [
        EpochMetrics(
            job_id="job_1",
            epoch=n,
            loss=1 / n,
            val_loss=1.2 / n,
            val_map_50=0.1 * n if with_map else None,
            val_map_50_95=0.05 * n if with_map else None,
        )
        for n in range(1, 6)
    ]


def colours(png: bytes, top: int, bottom: int) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {image.getpixel((x, y)) for x in range(0, image.width, 2) for y in range(top, bottom)}


def test_a_classifier_plot_has_one_panel() -> None:
    png = loss_plot_png(epochs(with_map=False))
    assert Image.open(io.BytesIO(png)).size == (WIDTH, PANEL_HEIGHT)


def test_a_detector_plot_adds_a_map_panel_with_both_series() -> None:
    png = loss_plot_png(epochs(with_map=True))
    assert Image.open(io.BytesIO(png)).size == (WIDTH, 2 * PANEL_HEIGHT)
    lower = colours(png, PANEL_HEIGHT, 2 * PANEL_HEIGHT)
    assert all(colour in lower for _, colour in MAP_SERIES)
    assert not any(colour in colours(png, 0, PANEL_HEIGHT) for _, colour in MAP_SERIES)
