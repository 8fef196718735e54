"""Shared fixtures: the synthetic animal, SageMaker-style job dirs, and one trained model (a
session fixture: the entrypoint trains it once, as the local launcher runs it) that the
training, ONNX, accuracy and inference tests all read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pose.synthetic import write_dataset

POSE_DIR = Path(__file__).resolve().parents[1]
JOBKIT_DIR = POSE_DIR.parent / "jobkit"

# The model the accuracy tests judge: a single-instance UNet, 12 epochs on 48 of the 60
# labelled 96-px frames (12 validate). Its training takes about 15 s on 2 CPU cores.
TRAIN_HYPERPARAMETERS = {
    "model_type": "single_instance",
    "backbone": "unet",
    "epochs": 12,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "sigma": 2.5,
    "output_stride": 2,
    "validation_fraction": 0.2,
    "seed": 0,
}


@dataclass
class JobRun:
    base: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def events(self) -> list[dict[str, Any]]:
        path = self.base / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @property
    def failure(self) -> str | None:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else None

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def statuses(self) -> list[str]:
        return [e["status"] for e in self.kinds("status")]

    def manifest(self, name: str) -> dict[str, Any]:
        return json.loads((self.model_dir / name).read_text())


def job_dir(
    base: Path, hyperparameters: Mapping[str, Any], channels: Mapping[str, list[Path] | Path]
) -> Path:
    """A SageMaker layout under `base`: hyperparameters JSON-encoded as the service sends
    them, each channel filled with copies of its files (or of a whole directory)."""
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    encoded = {k: json.dumps(v) for k, v in hyperparameters.items()}
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(encoded))
    for name, source in channels.items():
        target = base / "input" / "data" / name
        if isinstance(source, Path) and source.is_dir():
            shutil.copytree(source, target)
            continue
        target.mkdir(parents=True, exist_ok=True)
        for path in source if isinstance(source, list) else [source]:
            shutil.copy(path, target / path.name)
    return base


def run_entrypoint(base: Path, *args: str) -> JobRun:
    """`python -m pose [train]` in a subprocess with cwd containers/pose, as the local launcher
    runs it; events go to base/events.jsonl."""
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "TRAINYARD_EVENTS_FILE": str(base / "events.jsonl"),
        "PYTHONPATH": str(JOBKIT_DIR),
    }
    for key in [k for k in env if k.startswith(("SM_", "TRAINYARD_EVENT_BUS", "TRAINYARD_INPUT"))]:
        env.pop(key)
    finished = subprocess.run(
        [sys.executable, "-m", "pose", *args],
        cwd=POSE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return JobRun(base, finished.returncode, finished.stdout, finished.stderr)


def training_channel(
    data: Path, labels: str = "labels.slp", videos: tuple[str, ...] = ("video.mp4",)
) -> list[Path]:
    """The files of an upload plus the dataset.json the service writes next to them."""
    manifest = data / "dataset.json"
    manifest.write_text(json.dumps({"labels": labels, "videos": list(videos)}))
    return [data / labels, *(data / v for v in videos), manifest]


@pytest.fixture(scope="session")
def animal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 labelled frames (labels.slp + video.mp4) and a 20-frame test video."""
    out = tmp_path_factory.mktemp("animal")
    write_dataset(out, frames=60, size=96, seed=3, video_frames=20, layout="slp+video")
    return out


@pytest.fixture(scope="session")
def truth(animal: Path) -> dict[str, Any]:
    return json.loads((animal / "truth.json").read_text())


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, animal: Path) -> JobRun:
    base = job_dir(
        tmp_path_factory.mktemp("train-job"),
        {"job_id": "job-train", "task": "pose", "mode": "train", **TRAIN_HYPERPARAMETERS},
        {"training": training_channel(animal)},
    )
    run = run_entrypoint(base, "train")
    assert run.returncode == 0, run.stderr[-4000:] + (run.failure or "")
    return run


@pytest.fixture(scope="session")
def inferred(tmp_path_factory: pytest.TempPathFactory, trained: JobRun, animal: Path) -> JobRun:
    """The trained model on the test video, all frames, both previews."""
    base = job_dir(
        tmp_path_factory.mktemp("infer-job"),
        {"job_id": "job-infer", "task": "pose", "mode": "infer", "nodes": ["head", "body", "tail"]},
        {"model": trained.model_dir, "video": animal / "test_video.mp4"},
    )
    run = run_entrypoint(base)
    assert run.returncode == 0, run.stderr[-4000:] + (run.failure or "")
    return run
