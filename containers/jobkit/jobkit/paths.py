"""Where SageMaker puts things, with the environment overrides the contract allows."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_DIR = Path("/opt/ml")


@dataclass(frozen=True)
class JobPaths:
    base_dir: Path
    model_dir: Path
    channel_overrides: Mapping[str, Path] = field(default_factory=dict)

    def channel(self, name: str) -> Path:
        """The dir of input channel `name`: SM_CHANNEL_<NAME>, else <base>/input/data/<name>."""
        return self.channel_overrides.get(name, self.base_dir / "input" / "data" / name)

    @property
    def hyperparameters_file(self) -> Path:
        return self.base_dir / "input" / "config" / "hyperparameters.json"

    @property
    def failure_file(self) -> Path:
        return self.base_dir / "output" / "failure"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> JobPaths:
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR", str(DEFAULT_BASE_DIR)))
        overrides = {
            name[len("SM_CHANNEL_") :].lower(): Path(value)
            for name, value in env.items()
            if name.startswith("SM_CHANNEL_") and value
        }
        return cls(
            base_dir=base,
            model_dir=Path(env.get("SM_MODEL_DIR", str(base / "model"))),
            channel_overrides=overrides,
        )
