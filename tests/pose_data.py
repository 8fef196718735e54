"""Pose test data, made in the pose container's virtualenv (sleap-io lives there, never in the
service's): the synthetic animal of containers/pose/pose/synthetic.py, and broken inputs."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from trainyard.settings import Settings

SETTINGS = Settings()
POSE_PYTHON = SETTINGS.resolved_pose_python


def run_in_pose_venv(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(SETTINGS.jobkit_dir)}
    finished = subprocess.run(
        [str(POSE_PYTHON), *args],
        cwd=cwd or SETTINGS.pose_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]


def synthetic_pose_data(
    out: Path, layout: str, frames: int = 24, size: int = 96, video_frames: int = 12, seed: int = 0
) -> Path:
    """`python -m pose.synthetic`: labels (layout pkg | slp+video | zip | 7z), test_video.mp4
    and truth.json under `out`."""
    run_in_pose_venv(
        "-m", "pose.synthetic", "--out", str(out), "--layout", layout, "--frames", str(frames),
        "--size", str(size), "--video-frames", str(video_frames), "--seed", str(seed),
    )  # fmt: skip
    return out


def write_labels(
    out: Path, *, frames: int, video_name: str | None = "clip.mp4", write_video: bool = True
) -> Path:
    """A small .slp (skeleton head→tail) with `frames` labelled frames of an external video
    named `video_name` (written next to it when `write_video`). Returns the .slp path."""
    script = textwrap.dedent(
        f"""
        import numpy as np, sleap_io as sio
        pixels = np.zeros((4, 32, 32, 1), np.uint8)
        pixels[:, 8:20, 8:20] = 200
        if {write_video!r}:
            sio.save_video(pixels, {str(out / (video_name or "clip.mp4"))!r}, fps=10)
        skeleton = sio.Skeleton(nodes=["head", "tail"], edges=[("head", "tail")], name="worm")
        video = sio.Video.from_filename("/labeller/machine/{video_name}", open_backend=False)
        points = np.array([[10.0, 10.0], [18.0, 18.0]])
        labelled = [
            sio.LabeledFrame(video=video, frame_idx=i,
                             instances=[sio.Instance.from_numpy(points, skeleton=skeleton)])
            for i in range({frames})
        ]
        sio.save_slp(sio.Labels(labeled_frames=labelled, videos=[video], skeletons=[skeleton]),
                     {str(out / "labels.slp")!r})
        """
    )
    out.mkdir(parents=True, exist_ok=True)
    run_in_pose_venv("-c", script)
    return out / "labels.slp"


def pose_upload(folder: Path, video: str = "video.mp4") -> list[tuple[str, tuple[str, bytes]]]:
    """The `files` of a POST /v1/datasets (task pose) sending the folder's labels.slp and video."""
    return [
        ("file", ("labels.slp", (folder / "labels.slp").read_bytes())),
        ("file", (video, (folder / video).read_bytes())),
    ]
