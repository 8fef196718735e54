"""A synthetic "animal" for tests, benchmarks and the service's upload fixtures: nothing is
downloaded, and every keypoint is known exactly.

    python -m pose.synthetic --out DIR [--frames 60] [--size 96] [--seed 0]
                             [--video-frames 30] [--layout pkg|slp+video|zip|7z]

The animal is an elongated mid-grey ellipse (the body), a smaller, brighter disc in front of
it (the head) and a thin, dimmer tail ending in a small knob behind it, at random positions
and angles on a noisy, unevenly lit background; edges are anti-aliased, so sub-pixel
positions show. Its skeleton is `animal`: nodes head, body, tail; edges head→body,
body→tail. The keypoints are the head disc's centre, the body ellipse's centre and the
centre of the tail's knob. Frames are grayscale, size × size pixels; the animal's length
scales with the size (about 0.4 × size).

Written under DIR (a stable layout: the service's tests rely on it; other files are left):

- `--layout pkg` (the default): `labels.pkg.slp`, `--frames` labelled frames (one instance
  each) embedded in the labels file.
- `--layout slp+video`: `labels.slp` and `video.mp4`, the frames it labels. The labels store
  the path `/labeller/videos/video.mp4`, as an upload from the labeller's machine would.
- `--layout zip` / `7z`: the slp+video files, plus `dataset.zip` / `dataset.7z` holding them
  as `dataset/labels.slp` and `dataset/video.mp4`.
- Always: `test_video.mp4`, `--video-frames` frames of the animal walking and turning along a
  smooth path (none of them labelled), and `truth.json`:
  `{"skeleton": {"name", "nodes", "edges"}, "nodes": [...], "edges": [...], "size": S,
    "fps": F, "labels": [{"frame_idx", "points": {"head": [x, y], ...}}, ...],
    "video": [{"frame_idx", "points": {...}}, ...]}`
  with the rendered keypoints of the labelled frames and of every test video frame, in SLEAP's
  pixel coordinates (x right, y down, pixel centres on integers).

Videos are H.264 at crf 0 (lossless luma): the labels are exact whatever the frame size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NODES = ("head", "body", "tail")
EDGES = (("head", "body"), ("body", "tail"))
SKELETON_NAME = "animal"
LAYOUTS = ("pkg", "slp+video", "zip", "7z")
LABELLER_VIDEO_PATH = "/labeller/videos/video.mp4"
FPS = 15.0

# The animal's shape for a 96-pixel frame; everything scales with size / 96.
BODY_HALF_LENGTH = 8.0
BODY_HALF_WIDTH = 4.5
HEAD_RADIUS = 3.5
HEAD_OFFSET = 12.0  # body centre → head centre
TAIL_LENGTH = 17.0  # body centre → tail tip
TAIL_WIDTH = 1.5  # half width of the tail
TIP_RADIUS = 2.5  # a small knob at the tail's tip


@dataclass(frozen=True)
class Pose:
    """Where the animal is: its body centre (x, y) and heading (radians, towards the head)."""

    x: float
    y: float
    angle: float

    def keypoints(self, size: int) -> dict[str, tuple[float, float]]:
        scale = size / 96.0
        dx, dy = math.cos(self.angle), math.sin(self.angle)
        return {
            "head": (self.x + HEAD_OFFSET * scale * dx, self.y + HEAD_OFFSET * scale * dy),
            "body": (self.x, self.y),
            "tail": (self.x - TAIL_LENGTH * scale * dx, self.y - TAIL_LENGTH * scale * dy),
        }


def _coverage(distance: np.ndarray) -> np.ndarray:
    """How much of a pixel a shape covers, from the signed distance (pixels) of the pixel's
    centre to the shape's edge (negative inside): a one-pixel anti-aliased edge."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def render(pose: Pose, size: int, rng: np.random.Generator) -> np.ndarray:
    """One grayscale frame, (size, size, 1) uint8, of the animal at `pose`."""
    scale = size / 96.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    # Background: a smooth illumination gradient, plus pixel noise added at the end.
    gx, gy = rng.uniform(-0.3, 0.3, size=2)
    image = 45.0 + 50.0 * (gx * (xs / size - 0.5) + gy * (ys / size - 0.5))
    dx, dy = math.cos(pose.angle), math.sin(pose.angle)
    # Coordinates along (u, towards the head) and across (v) the animal, from the body centre.
    u = (xs - pose.x) * dx + (ys - pose.y) * dy
    v = -(xs - pose.x) * dy + (ys - pose.y) * dx

    a, b = BODY_HALF_LENGTH * scale, BODY_HALF_WIDTH * scale
    body = _coverage((np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b)
    tail = _coverage(
        np.minimum(
            np.maximum.reduce([np.abs(v) - TAIL_WIDTH * scale, -u - TAIL_LENGTH * scale, u]),
            np.hypot(u + TAIL_LENGTH * scale, v) - TIP_RADIUS * scale,
        )
    )
    head = _coverage(np.hypot(u - HEAD_OFFSET * scale, v) - HEAD_RADIUS * scale)

    image = image * (1 - tail) + 135.0 * tail
    image = image * (1 - body) + 160.0 * body
    image = image * (1 - head) + 235.0 * head
    image = image + rng.normal(0.0, 8.0, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None]


def _margin(size: int) -> float:
    return (TAIL_LENGTH + 3.0) * size / 96.0


def random_poses(count: int, size: int, rng: np.random.Generator) -> list[Pose]:
    margin = _margin(size)
    return [
        Pose(
            x=float(rng.uniform(margin, size - 1 - margin)),
            y=float(rng.uniform(margin, size - 1 - margin)),
            angle=float(rng.uniform(-math.pi, math.pi)),
        )
        for _ in range(count)
    ]


def walking_poses(count: int, size: int, rng: np.random.Generator) -> list[Pose]:
    """A closed figure-of-eight through the frame; the animal faces where it is going."""
    margin = _margin(size)
    centre, amplitude = (size - 1) / 2.0, (size - 1) / 2.0 - margin
    phase = float(rng.uniform(0, 2 * math.pi))
    poses = []
    for i in range(count):
        s = 2 * math.pi * i / max(count, 1) + phase
        heading = math.atan2(2 * math.cos(2 * s), math.cos(s))
        poses.append(
            Pose(centre + amplitude * math.sin(s), centre + amplitude * math.sin(2 * s), heading)
        )
    return poses


def _points_json(poses: list[Pose], size: int) -> list[dict[str, Any]]:
    return [
        {
            "frame_idx": i,
            "points": {n: [round(c, 4) for c in xy] for n, xy in pose.keypoints(size).items()},
        }
        for i, pose in enumerate(poses)
    ]


def write_dataset(
    out: Path,
    *,
    frames: int = 60,
    size: int = 96,
    seed: int = 0,
    video_frames: int = 30,
    layout: str = "pkg",
) -> dict[str, Any]:
    """Write the synthetic dataset under `out` (see the module docstring); returns truth."""
    import sleap_io as sio  # noqa: PLC0415 - the CLI's argument errors come first

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    poses = random_poses(frames, size, rng)
    video_path = out / "video.mp4"
    sio.save_video(np.stack([render(p, size, rng) for p in poses]), str(video_path), fps=FPS, crf=0)
    video = sio.Video.from_filename(str(video_path))
    skeleton = sio.Skeleton(nodes=list(NODES), edges=[list(e) for e in EDGES], name=SKELETON_NAME)
    labelled = [
        sio.LabeledFrame(
            video=video,
            frame_idx=i,
            instances=[
                sio.Instance.from_numpy(
                    np.array([pose.keypoints(size)[n] for n in NODES]), skeleton=skeleton
                )
            ],
        )
        for i, pose in enumerate(poses)
    ]
    labels = sio.Labels(labeled_frames=labelled, videos=[video], skeletons=[skeleton])
    if layout == "pkg":
        sio.save_slp(labels, str(out / "labels.pkg.slp"), embed="user", verbose=False)
        video.close()
        video_path.unlink()
    else:
        video.close()
        labels.replace_filenames(
            filename_map={str(video_path): LABELLER_VIDEO_PATH}, open_videos=False
        )
        sio.save_slp(labels, str(out / "labels.slp"), verbose=False)
    if layout == "zip":
        with zipfile.ZipFile(out / "dataset.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(out / "labels.slp", "dataset/labels.slp")
            archive.write(video_path, "dataset/video.mp4")
    elif layout == "7z":
        import py7zr  # noqa: PLC0415

        with py7zr.SevenZipFile(out / "dataset.7z", "w") as archive:
            archive.write(out / "labels.slp", "dataset/labels.slp")
            archive.write(video_path, "dataset/video.mp4")

    walk = walking_poses(video_frames, size, rng)
    sio.save_video(
        np.stack([render(p, size, rng) for p in walk]), str(out / "test_video.mp4"), fps=FPS, crf=0
    )
    truth = {
        "skeleton": {
            "name": SKELETON_NAME,
            "nodes": list(NODES),
            "edges": [list(e) for e in EDGES],
        },
        "nodes": list(NODES),
        "edges": [list(e) for e in EDGES],
        "size": size,
        "fps": FPS,
        "labels": _points_json(poses, size),
        "video": _points_json(walk, size),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pose.synthetic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--frames", type=int, default=60, help="labelled frames (60)")
    parser.add_argument("--size", type=int, default=96, help="frame size in pixels (96)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video-frames", type=int, default=30, help="test_video.mp4 frames (30)")
    parser.add_argument("--layout", choices=LAYOUTS, default="pkg")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.video_frames < 1:
        parser.error("--frames and --video-frames must be at least 1")
    if args.size < 48:
        parser.error("--size must be at least 48 pixels")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is not a directory")
    write_dataset(
        args.out,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        video_frames=args.video_frames,
        layout=args.layout,
    )
    print(json.dumps({"out": str(args.out), "layout": args.layout, "frames": args.frames}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
