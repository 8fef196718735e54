"""The detection hyperparameters of the job contract (docs/job-contract.md, detection),
decoded into one typed, validated configuration. Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

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

from ..contract import DEFAULT_EXPORTS, parse_exports

BACKBONES = ("resnet_small", "resnet18", "resnet50")
# keras-hub presets of the backbones that have ImageNet weights (baked into the image).
IMAGENET_PRESETS = {"resnet18": "resnet_18_imagenet", "resnet50": "resnet_50_imagenet"}
IMAGE_SIZE_STEP = 32  # the coarsest feature level the heads use has stride 32


@dataclass(frozen=True)
class DetectionConfig:
    job_id: str
    task: str = "detection"
    backbone: str = "resnet_small"
    weights: str | None = None
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 0.001
    image_size: int = 256
    validation_split: float = 0.2
    seed: int | None = None
    shuffle: bool = True
    augment: bool = True
    lr_step_size: int = 10
    lr_gamma: float = 1.0
    exports: tuple[str, ...] = DEFAULT_EXPORTS

    @property
    def uses_imagenet_weights(self) -> bool:
        return self.weights == "imagenet"


_KNOWN_KEYS = frozenset(field.name for field in fields(DetectionConfig))


def parse_detection_config(values: Mapping[str, Any]) -> DetectionConfig:
    reject_unknown(values, _KNOWN_KEYS)
    if "job_id" not in values or not string(values, "job_id"):
        raise ConfigError("hyperparameter job_id is required")
    backbone = choice(values, "backbone", "resnet_small", BACKBONES)
    weights = optional_choice(values, "weights", ("imagenet",))
    if weights == "imagenet" and backbone not in IMAGENET_PRESETS:
        raise ConfigError(
            f"backbone {backbone} has no ImageNet weights; use weights null or backbone "
            f"{' or '.join(IMAGENET_PRESETS)}"
        )
    image_size = integer(values, "image_size", 256, minimum=64, maximum=768)
    if image_size % IMAGE_SIZE_STEP:
        raise ConfigError(
            f"hyperparameter image_size={image_size} must be a multiple of {IMAGE_SIZE_STEP}"
        )
    return DetectionConfig(
        job_id=string(values, "job_id"),
        task=choice(values, "task", "detection", ("detection",)),
        backbone=backbone,
        weights=weights,
        epochs=integer(values, "epochs", 20, minimum=1, maximum=500),
        batch_size=integer(values, "batch_size", 16, minimum=1, maximum=256),
        learning_rate=number(values, "learning_rate", 0.001, above=0.0, maximum=1.0),
        image_size=image_size,
        validation_split=number(values, "validation_split", 0.2, minimum=0.0, maximum=0.9),
        seed=optional_integer(values, "seed", minimum=0, maximum=MAX_SEED),
        shuffle=boolean(values, "shuffle", True),
        augment=boolean(values, "augment", True),
        lr_step_size=integer(values, "lr_step_size", 10, minimum=1),
        lr_gamma=number(values, "lr_gamma", 1.0, above=0.0, maximum=1.0),
        exports=parse_exports(values),
    )

