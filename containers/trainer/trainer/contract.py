"""The job contract (docs/job-contract.md) as the container sees it: where SageMaker puts
things, and the hyperparameters decoded into one typed, validated configuration.

This module imports nothing heavy, so a bad configuration fails in well under a second.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_BASE_DIR = Path("/opt/ml")
TRAINING_CHANNEL = "training"

BACKBONES = ("small_cnn", "mobilenet", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16")
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
EXPORT_FORMATS = ("keras", "onnx", "tflite")
# numpy and TensorFlow both accept seeds in this range; the service uses the same bound.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class JobPaths:
    """The SageMaker training layout, with the environment overrides the contract allows."""

    base_dir: Path
    training_channel: Path
    model_dir: Path

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
        channel_variable = f"SM_CHANNEL_{TRAINING_CHANNEL.upper()}"
        default_channel = base / "input" / "data" / TRAINING_CHANNEL
        return cls(
            base_dir=base,
            training_channel=Path(env.get(channel_variable, str(default_channel))),
            model_dir=Path(env.get("SM_MODEL_DIR", str(base / "model"))),
        )


@dataclass(frozen=True)
class TrainingConfig:
    """The classification hyperparameters of the contract, validated."""

    job_id: str
    task: str = "classification"
    backbone: str = "small_cnn"
    alpha: float = 1.0
    weights: str | None = None
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.001
    image_size: int = 224
    validation_split: float = 0.2
    layers_to_retrain: int | None = None
    seed: int | None = None
    shuffle: bool = True
    augment: bool = False
    lr_step_size: int = 10
    lr_gamma: float = 1.0
    exports: tuple[str, ...] = EXPORT_FORMATS

    @property
    def uses_imagenet_weights(self) -> bool:
        return self.weights == "imagenet"


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """Read hyperparameters.json and JSON-decode each value (SageMaker stores strings)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"hyperparameters file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"hyperparameters file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"hyperparameters file {path} must hold a JSON object")
    return decode_hyperparameters(raw)


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`json.loads` each string value, keeping the raw string when it is not JSON.

    Values that are not strings (a hand-written file with native JSON types) are kept as
    they are, so both forms mean the same thing.
    """
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                decoded[key] = value
        else:
            decoded[key] = value
    return decoded


def parse_config(values: Mapping[str, Any]) -> TrainingConfig:
    """Turn decoded hyperparameters into a TrainingConfig, enforcing the contract's bounds."""
    unknown = sorted(set(values) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
    if "job_id" not in values:
        raise ConfigError("hyperparameter job_id is required")
    job_id = _string(values, "job_id")
    if not job_id:
        raise ConfigError("hyperparameter job_id must not be empty")

    task = _string(values, "task", "classification")
    if task != "classification":
        raise ConfigError(f"hyperparameter task={task!r} is not supported by this container")
    backbone = _choice(values, "backbone", "small_cnn", BACKBONES)
    alpha = _number(values, "alpha", 1.0)
    if alpha not in MOBILENET_ALPHAS:
        raise ConfigError(
            f"hyperparameter alpha={alpha!r} is out of bounds: must be one of "
            f"{', '.join(map(str, MOBILENET_ALPHAS))}"
        )
    if alpha != 1.0 and backbone != "mobilenet":
        raise ConfigError(
            f"hyperparameter alpha applies only to backbone mobilenet, not {backbone}"
        )
    weights = _optional_choice(values, "weights", ("imagenet",))
    if weights == "imagenet" and backbone == "small_cnn":
        raise ConfigError("backbone small_cnn has no ImageNet weights; use weights null")

    return TrainingConfig(
        job_id=job_id,
        task=task,
        backbone=backbone,
        alpha=alpha,
        weights=weights,
        epochs=_integer(values, "epochs", 10, minimum=1, maximum=500),
        batch_size=_integer(values, "batch_size", 32, minimum=1, maximum=512),
        learning_rate=_number(values, "learning_rate", 0.001, above=0.0, maximum=1.0),
        image_size=_integer(values, "image_size", 224, minimum=32, maximum=768),
        validation_split=_number(values, "validation_split", 0.2, minimum=0.0, maximum=0.9),
        layers_to_retrain=_optional_integer(values, "layers_to_retrain", minimum=0),
        seed=_optional_integer(values, "seed", minimum=0, maximum=MAX_SEED),
        shuffle=_boolean(values, "shuffle", True),
        augment=_boolean(values, "augment", False),
        lr_step_size=_integer(values, "lr_step_size", 10, minimum=1),
        lr_gamma=_number(values, "lr_gamma", 1.0, above=0.0, maximum=1.0),
        exports=_exports(values),
    )


_KNOWN_KEYS = frozenset(field.name for field in fields(TrainingConfig))


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"hyperparameter {key}={json.dumps(value)} must be {expected}")


def _string(values: Mapping[str, Any], key: str, default: str = "") -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise _type_error(key, value, "a string")
    return value


def _choice(values: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _string(values, key, default)
    if value not in allowed:
        raise ConfigError(
            f"hyperparameter {key}={value!r} is out of bounds: must be one of {', '.join(allowed)}"
        )
    return value


def _optional_choice(values: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    if values.get(key) is None:
        return None
    value = _string(values, key)
    if value not in allowed:
        raise ConfigError(
            f"hyperparameter {key}={value!r} is out of bounds: must be null or one of "
            f"{', '.join(allowed)}"
        )
    return value


def _check_range(
    key: str,
    value: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> None:
    too_low = (minimum is not None and value < minimum) or (above is not None and value <= above)
    too_high = maximum is not None and value > maximum
    if not (too_low or too_high):
        return
    lower = f"[{minimum}" if minimum is not None else f"({above}" if above is not None else "(-inf"
    upper = f"{maximum}]" if maximum is not None else "inf)"
    raise ConfigError(
        f"hyperparameter {key}={value!r} is out of bounds: must be in {lower}, {upper}"
    )


def _integer(
    values: Mapping[str, Any],
    key: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = values.get(key, default)
    # bool is a subclass of int in Python, but `true` is no epoch count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, value, "an integer")
    _check_range(key, value, minimum=minimum, maximum=maximum)
    return value


def _optional_integer(
    values: Mapping[str, Any], key: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    if values.get(key) is None:
        return None
    return _integer(values, key, 0, minimum=minimum, maximum=maximum)


def _number(
    values: Mapping[str, Any],
    key: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _type_error(key, value, "a finite number")
    _check_range(key, float(value), minimum=minimum, maximum=maximum, above=above)
    return float(value)


def _boolean(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key, default)
    if not isinstance(value, bool):
        raise _type_error(key, value, "true or false")
    return value


def _exports(values: Mapping[str, Any]) -> tuple[str, ...]:
    requested = values.get("exports", list(EXPORT_FORMATS))
    if not isinstance(requested, list) or not all(isinstance(f, str) for f in requested):
        raise _type_error("exports", requested, "a list of strings")
    unknown = [f for f in requested if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(
            f"hyperparameter exports has unknown format(s) {', '.join(unknown)}: "
            f"must be a subset of {', '.join(EXPORT_FORMATS)}"
        )
    # ONNX is always produced: the service predicts with it. Canonical order, no repeats.
    chosen = set(requested) | {"onnx"}
    return tuple(f for f in EXPORT_FORMATS if f in chosen)


def with_resolved_seed(config: TrainingConfig) -> TrainingConfig:
    """The config with a concrete seed: the given one, or a fresh random one (logged by the
    caller) so that the split and the training of this run can still be reproduced."""
    if config.seed is not None:
        return config
    return replace(config, seed=secrets.randbelow(MAX_SEED + 1))
