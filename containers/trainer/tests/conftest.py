"""Shared fixtures: synthetic datasets and SageMaker-style job directories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainer.synthetic import write_shapes_dataset

TRAINER_ROOT = Path(__file__).resolve().parents[1]


def encode_hyperparameters(values: dict[str, Any]) -> dict[str, str]:
    """What the service writes: every value JSON-encoded into a string."""
    return {key: json.dumps(value) for key, value in values.items()}


@dataclass(frozen=True)
class JobDir:
    base: Path
    channel: Path
    model_dir: Path
    events_file: Path
    failure_file: Path

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            "SAGEMAKER_BASE_DIR": str(self.base),
            "SM_CHANNEL_TRAINING": str(self.channel),
            "SM_MODEL_DIR": str(self.model_dir),
            "TRAINYARD_EVENTS_FILE": str(self.events_file),
            **extra,
        }

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines()]


def make_job_dir(base: Path, hyperparameters: dict[str, Any], **dataset: Any) -> JobDir:
    """/opt/ml-style layout under `base`, with a synthetic shapes dataset in the channel."""
    config_dir = base / "input" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "hyperparameters.json").write_text(
        json.dumps(encode_hyperparameters(hyperparameters))
    )
    channel = base / "input" / "data" / "training"
    write_shapes_dataset(channel, **dataset)
    return JobDir(
        base=base,
        channel=channel,
        model_dir=base / "model",
        events_file=base / "events.jsonl",
        failure_file=base / "output" / "failure",
    )


@pytest.fixture
def shapes_channel(tmp_path: Path) -> Path:
    """40 images per class of 3 classes at 32 px, manifest layout, no explicit split."""
    channel = tmp_path / "training"
    write_shapes_dataset(channel, per_class=40, size=32, seed=0)
    return channel
