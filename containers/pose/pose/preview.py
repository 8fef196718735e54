"""Previews of predictions: keypoints and skeleton edges drawn on the predicted frames.

- preview.mp4: the predicted frames in order (at most PREVIEW_MAX_FRAMES of them), H.264 in
  MP4 through the ffmpeg binary that imageio-ffmpeg ships (nothing is downloaded).
- preview.png: up to 8 predicted frames, evenly spread, in a grid of 4 columns.

Small frames are enlarged (nearest neighbour) so that the markers stay readable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

PREVIEW_MAX_FRAMES = 600
PREVIEW_IMAGE_FRAMES = 8
MIN_PREVIEW_SIDE = 384
# BGR-free: colours are RGB, one per node, cycling.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
]
EDGE_COLOUR = (255, 255, 255)


def _enlargement(height: int, width: int) -> int:
    return max(1, math.ceil(MIN_PREVIEW_SIDE / max(1, min(height, width))))


def draw(image: np.ndarray, lf: Any, nodes: list[str], edges: list[tuple[str, str]]) -> np.ndarray:
    """An RGB uint8 copy of `image`, enlarged for small frames, with the instances of `lf`."""
    import cv2  # noqa: PLC0415

    frame = np.asarray(image)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    k = _enlargement(*frame.shape[:2])
    if k > 1:
        frame = cv2.resize(
            frame, (frame.shape[1] * k, frame.shape[0] * k), interpolation=cv2.INTER_NEAREST
        )
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if lf is None:
        return frame
    index = {n: i for i, n in enumerate(nodes)}
    radius = max(2, round(1.5 * k))
    thickness = max(1, round(0.6 * k))

    def at(xy: np.ndarray) -> tuple[int, int]:
        # SLEAP's coordinates put pixel centres on integers; enlarged pixel i spans
        # [i*k, (i+1)*k), so its centre is at (i + 0.5) * k.
        return round((xy[0] + 0.5) * k), round((xy[1] + 0.5) * k)

    for instance in lf.instances:
        points = instance.numpy()
        found = np.isfinite(points).all(axis=1)
        for source, target in edges:
            a, b = index.get(source), index.get(target)
            if a is not None and b is not None and found[a] and found[b]:
                cv2.line(frame, at(points[a]), at(points[b]), EDGE_COLOUR, thickness, cv2.LINE_AA)
        for i, ok in enumerate(found):
            if ok:
                cv2.circle(frame, at(points[i]), radius, PALETTE[i % len(PALETTE)], -1, cv2.LINE_AA)
    return frame


def write_preview_video(
    video: Any,
    *,
    frames: list[int],
    by_frame: dict[int, Any],
    nodes: list[str],
    edges: list[tuple[str, str]],
    path: Path,
    fps: float | None,
) -> Path:
    import sleap_io as sio  # noqa: PLC0415

    shown = frames[:PREVIEW_MAX_FRAMES]
    with sio.VideoWriter(str(path), fps=float(fps or 15.0)) as writer:
        for index in shown:
            writer.write_frame(draw(video[index], by_frame.get(index), nodes, edges))
    return path


def write_preview_image(
    video: Any,
    *,
    frames: list[int],
    by_frame: dict[int, Any],
    nodes: list[str],
    edges: list[tuple[str, str]],
    path: Path,
) -> Path:
    import cv2  # noqa: PLC0415

    with_instances = [i for i in frames if by_frame.get(i) is not None and by_frame[i].instances]
    pool = with_instances or frames
    count = min(PREVIEW_IMAGE_FRAMES, len(pool))
    picks = [pool[round(j * (len(pool) - 1) / max(1, count - 1))] for j in range(count)]
    tiles = [draw(video[i], by_frame.get(i), nodes, edges) for i in picks]
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    columns = min(4, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, columns)
        grid[r * height : r * height + tile.shape[0], c * width : c * width + tile.shape[1]] = tile
        cv2.putText(
            grid,
            str(picks[n]),
            (c * width + 4, r * height + 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (255, 255, 0),
            1,
            cv2.LINE_AA,
        )
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
