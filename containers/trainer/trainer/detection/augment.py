"""Augmentation that moves boxes with the image: horizontal flip, then a random scale and
translation (zoom in or out). Plain numpy and Pillow on uint8 images, seeded.

A box is kept when at least MIN_VISIBLE of its area stays inside the image (clipped to the
image), so an object pushed mostly out of view is not asked of the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MIN_VISIBLE = 0.5
MIN_SIDE = 2.0  # pixels
FILL = (114, 114, 114)  # the grey that pads a zoomed-out image


@dataclass(frozen=True)
class BoxAugmenter:
    flip_probability: float = 0.5
    min_scale: float = 0.75
    max_scale: float = 1.25

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        classes: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, boxes, classes) → augmented copies; image (h, w, 3) uint8, boxes (n, 4)
        xyxy pixels."""
        height, width = image.shape[:2]
        boxes = boxes.astype(np.float32).copy()
        if rng.random() < self.flip_probability:
            image = image[:, ::-1]
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
        scale = float(rng.uniform(self.min_scale, self.max_scale))
        new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
        # The offset of the scaled image's corner in the output: any placement that keeps the
        # output covered (zoom in) or the scaled image inside it (zoom out).
        dx = float(rng.uniform(min(0, width - new_width), max(0, width - new_width)))
        dy = float(rng.uniform(min(0, height - new_height), max(0, height - new_height)))
        resized = Image.fromarray(np.ascontiguousarray(image)).resize(
            (new_width, new_height), Image.Resampling.BILINEAR
        )
        canvas = Image.new("RGB", (width, height), FILL)
        canvas.paste(resized, (round(dx), round(dy)))
        dx, dy = round(dx), round(dy)
        moved = boxes * scale + np.array([dx, dy, dx, dy], dtype=np.float32)
        clipped = np.clip(moved, 0, [width, height, width, height]).astype(np.float32)
        area = np.prod(moved[:, 2:] - moved[:, :2], axis=1)
        visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
        sides = clipped[:, 2:] - clipped[:, :2]
        keep = (visible >= MIN_VISIBLE * area) & (sides >= MIN_SIDE).all(axis=1)
        return np.asarray(canvas, dtype=np.uint8), clipped[keep], classes[keep]
