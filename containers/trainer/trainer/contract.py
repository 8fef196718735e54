"""The job contract (docs/job-contract.md) as the container sees it: where SageMaker puts
things, and the hyperparameters decoded into one typed, validated configuration.

This module imports nothing heavy, so a bad configuration fails in well under a second.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol, TypeVar

from jobkit.errors import ConfigError
from jobkit.hyperparameters import (
    MAX_SEED,
    boolean,
    choice,
    integer,
    number,
    optional_choice,
    optional_integer,
    reject_unknown,
    string,
)

TRAINING_CHANNEL = "training"

BACKBONES = ("small_cnn", "mobilenet", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16")
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
EXPORT_FORMATS = ("keras", "onnx", "tflite", "coreml", "torch", "pytorchmobile")
# What a job makes when `exports` is not given: the formats that need no torch or coremltools
# (those add seconds to a minute to a job and are made only when asked for).
DEFAULT_EXPORTS = ("keras", "onnx", "tflite")


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
    exports: tuple[str, ...] = DEFAULT_EXPORTS
    # Fine-tune from the earlier model in channel `initial_model` (initial_model.py).
    initial_model: bool = False

    @property
    def uses_imagenet_weights(self) -> bool:
        return self.weights == "imagenet"


def parse_config(values: Mapping[str, Any]) -> TrainingConfig:
    """Turn decoded hyperparameters into a TrainingConfig, enforcing the contract's bounds."""
    reject_unknown(values, _KNOWN_KEYS)
    if "job_id" not in values:
        raise ConfigError("hyperparameter job_id is required")
    job_id = string(values, "job_id")
    if not job_id:
        raise ConfigError("hyperparameter job_id must not be empty")

    task = choice(values, "task", "classification", ("classification",))
    backbone = choice(values, "backbone", "small_cnn", BACKBONES)
    alpha = number(values, "alpha", 1.0)
    if alpha not in MOBILENET_ALPHAS:
        raise ConfigError(
            f"hyperparameter alpha={alpha!r} is out of bounds: must be one of "
            f"{', '.join(map(str, MOBILENET_ALPHAS))}"
        )
    if alpha != 1.0 and backbone != "mobilenet":
        raise ConfigError(
            f"hyperparameter alpha applies only to backbone mobilenet, not {backbone}"
        )
    weights = optional_choice(values, "weights", ("imagenet",))
    if weights == "imagenet" and backbone == "small_cnn":
        raise ConfigError("backbone small_cnn has no ImageNet weights; use weights null")

    return TrainingConfig(
        job_id=job_id,
        task=task,
        backbone=backbone,
        alpha=alpha,
        weights=weights,
        epochs=integer(values, "epochs", 10, minimum=1, maximum=500),
        batch_size=integer(values, "batch_size", 32, minimum=1, maximum=512),
        learning_rate=number(values, "learning_rate", 0.001, above=0.0, maximum=1.0),
        image_size=integer(values, "image_size", 224, minimum=32, maximum=768),
        validation_split=number(values, "validation_split", 0.2, minimum=0.0, maximum=0.9),
        layers_to_retrain=optional_integer(values, "layers_to_retrain", minimum=0),
        seed=optional_integer(values, "seed", minimum=0, maximum=MAX_SEED),
        shuffle=boolean(values, "shuffle", True),
        augment=boolean(values, "augment", False),
        lr_step_size=integer(values, "lr_step_size", 10, minimum=1),
        lr_gamma=number(values, "lr_gamma", 1.0, above=0.0, maximum=1.0),
        exports=parse_exports(values),
        initial_model=boolean(values, "initial_model", False),
    )


_KNOWN_KEYS = frozenset(field.name for field in fields(TrainingConfig))


def parse_exports(values: Mapping[str, Any]) -> tuple[str, ...]:
    """The `exports` hyperparameter (both tasks): a subset of EXPORT_FORMATS, onnx always in."""
    requested = values.get("exports", list(DEFAULT_EXPORTS))
    if not isinstance(requested, list) or not all(isinstance(f, str) for f in requested):
        raise ConfigError(
            f"hyperparameter exports={json.dumps(requested)} must be a list of strings"
        )
    unknown = [f for f in requested if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(
            f"hyperparameter exports has unknown format(s) {', '.join(unknown)}: "
            f"must be a subset of {', '.join(EXPORT_FORMATS)}"
        )
    # ONNX is always produced: the service predicts with it. Canonical order, no repeats.
    chosen = set(requested) | {"onnx"}
    return tuple(f for f in EXPORT_FORMATS if f in chosen)


class Seeded(Protocol):
    """A task's config (TrainingConfig, DetectionConfig): a frozen dataclass with a seed."""

    @property
    def seed(self) -> int | None: ...


SeededConfig = TypeVar("SeededConfig", bound=Seeded)


def with_resolved_seed(config: SeededConfig) -> SeededConfig:
    """The config with a concrete seed: the given one, or a fresh random one (logged by the
    caller) so that the split and the training of this run can still be reproduced."""
    if config.seed is not None:
        return config
    return replace(config, seed=secrets.randbelow(MAX_SEED + 1))
