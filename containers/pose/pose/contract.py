"""The pose hyperparameters (docs/job-contract.md, containers/pose/README.md): typed, bounded,
with the reasons a user sees when a value is wrong. Nothing heavy is imported here."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from jobkit.errors import ConfigError
from jobkit.hyperparameters import (
    MAX_SEED,
    boolean,
    choice,
    integer,
    number,
    optional_integer,
    optional_string,
    reject_unknown,
    string,
    string_list,
)

TRAINING_CHANNEL = "training"
MODEL_CHANNEL = "model"
VIDEO_CHANNEL = "video"

MODES = ("train", "infer")
MODEL_TYPES = ("single_instance", "topdown", "bottomup")
BACKBONES = ("unet", "unet_medium_rf", "unet_large_rf", "convnext", "swint")
OUTPUT_STRIDES = (1, 2, 4, 8, 16, 32)
PREVIEWS = ("video", "image", "both", "none")

COMMON_KEYS = ("job_id", "task", "mode")
TRAIN_KEYS = (
    *COMMON_KEYS,
    "model_type",
    "backbone",
    "epochs",
    "batch_size",
    "learning_rate",
    "validation_fraction",
    "sigma",
    "output_stride",
    "input_scale",
    "augmentation",
    "seed",
    "anchor_part",
    "max_instances",
)
INFER_KEYS = (
    *COMMON_KEYS,
    "frame_start",
    "frame_end",
    "frame_stride",
    "tracking",
    "batch_size",
    "peak_threshold",
    "max_instances",
    "preview",
    "nodes",
)


@dataclass(frozen=True)
class TrainConfig:
    job_id: str
    model_type: str = "single_instance"
    backbone: str = "unet"
    epochs: int = 50
    batch_size: int = 4
    learning_rate: float = 1e-4
    validation_fraction: float = 0.1
    sigma: float = 5.0
    output_stride: int = 2
    input_scale: float = 1.0
    augmentation: bool = False
    seed: int | None = None
    anchor_part: str | None = None
    max_instances: int | None = None

    def effective(self) -> dict[str, Any]:
        """The hyperparameters as the job used them (trainyard_model.json `config`)."""
        values = asdict(self)
        values.pop("job_id")
        return values


@dataclass(frozen=True)
class InferConfig:
    job_id: str
    frame_start: int = 0
    frame_end: int | None = None
    frame_stride: int = 1
    tracking: bool = False
    batch_size: int = 4
    peak_threshold: float = 0.2
    max_instances: int | None = None
    preview: str = "both"
    nodes: tuple[str, ...] | None = None

    @property
    def preview_video(self) -> bool:
        return self.preview in ("video", "both")

    @property
    def preview_image(self) -> bool:
        return self.preview in ("image", "both")


def parse_mode(values: dict[str, Any]) -> str:
    task = string(values, "task", "pose")
    if task != "pose":
        raise ConfigError(f"hyperparameter task={task!r} is not served here: must be pose")
    return choice(values, "mode", "train", MODES)


def parse_train_config(values: dict[str, Any]) -> TrainConfig:
    reject_unknown(values, TRAIN_KEYS)
    parse_mode(values)
    backbone = choice(values, "backbone", "unet", BACKBONES)
    output_stride = integer(values, "output_stride", 2)
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(
            f"hyperparameter output_stride={output_stride} is out of bounds: must be one of "
            + ", ".join(str(s) for s in OUTPUT_STRIDES)
        )
    return TrainConfig(
        job_id=string(values, "job_id"),
        model_type=choice(values, "model_type", "single_instance", MODEL_TYPES),
        backbone=backbone,
        epochs=integer(values, "epochs", 50, minimum=1, maximum=1000),
        batch_size=integer(values, "batch_size", 4, minimum=1, maximum=256),
        learning_rate=number(values, "learning_rate", 1e-4, above=0, maximum=1),
        validation_fraction=number(values, "validation_fraction", 0.1, minimum=0, maximum=0.9),
        sigma=number(values, "sigma", 5.0, above=0, maximum=50),
        output_stride=output_stride,
        input_scale=number(values, "input_scale", 1.0, above=0, maximum=4),
        augmentation=boolean(values, "augmentation", False),
        seed=optional_integer(values, "seed", minimum=0, maximum=MAX_SEED),
        anchor_part=optional_string(values, "anchor_part"),
        max_instances=optional_integer(values, "max_instances", minimum=1),
    )


def parse_infer_config(values: dict[str, Any]) -> InferConfig:
    reject_unknown(values, INFER_KEYS)
    parse_mode(values)
    frame_start = integer(values, "frame_start", 0, minimum=0)
    frame_end = optional_integer(values, "frame_end", minimum=frame_start + 1)
    nodes = None if values.get("nodes") is None else tuple(string_list(values, "nodes", []))
    return InferConfig(
        job_id=string(values, "job_id"),
        frame_start=frame_start,
        frame_end=frame_end,
        frame_stride=integer(values, "frame_stride", 1, minimum=1, maximum=10000),
        tracking=boolean(values, "tracking", False),
        batch_size=integer(values, "batch_size", 4, minimum=1, maximum=256),
        peak_threshold=number(values, "peak_threshold", 0.2, minimum=0, maximum=1),
        max_instances=optional_integer(values, "max_instances", minimum=1),
        preview=choice(values, "preview", "both", PREVIEWS),
        nodes=nodes,
    )


def with_resolved_seed(config: TrainConfig) -> TrainConfig:
    """A drawn seed when none was given, so that the run can be repeated from its log."""
    if config.seed is not None:
        return config
    return replace(config, seed=random.SystemRandom().randint(0, MAX_SEED))


def check_nodes(expected: tuple[str, ...] | None, model_nodes: list[str]) -> None:
    """The client's node list (infer `nodes`) must be the model's skeleton, in order."""
    if expected is None or list(expected) == list(model_nodes):
        return
    missing = [n for n in model_nodes if n not in expected]
    unknown = [n for n in expected if n not in model_nodes]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if unknown:
        parts.append(f"not in the model: {', '.join(unknown)}")
    if not parts:
        parts.append("same nodes in another order")
    raise ConfigError(
        f"hyperparameter nodes={list(expected)} does not match the model's skeleton nodes "
        f"{list(model_nodes)} ({'; '.join(parts)})"
    )
