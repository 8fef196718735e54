"""Job parameters: typed models with bounds, validated before any job is launched.

The same bounds are written in docs/job-contract.md; the container checks them again.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backbone = Literal["small_cnn", "mobilenet", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16"]
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
ExportFormat = Literal["keras", "onnx", "tflite", "coreml", "torch", "pytorchmobile"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("keras", "onnx", "tflite", "coreml", "torch", "pytorchmobile")
# Made when a job names no exports: the Core ML and PyTorch conversions add seconds to a minute
# to a job, so they are made only when asked for (docs/job-contract.md).
DEFAULT_EXPORTS: tuple[ExportFormat, ...] = ("keras", "onnx", "tflite")


class ClassifierParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backbone: Backbone = "small_cnn"
    alpha: float = Field(1.0, json_schema_extra={"enum": [0.25, 0.5, 0.75, 1.0]})
    weights: Literal["imagenet"] | None = None
    epochs: int = Field(10, ge=1, le=500)
    batch_size: int = Field(32, ge=1, le=512)
    learning_rate: float = Field(0.001, gt=0, le=1)
    image_size: int = Field(224, ge=32, le=768)
    validation_split: float = Field(0.2, ge=0, le=0.9)
    layers_to_retrain: int | None = Field(None, ge=0, le=1000)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    shuffle: bool = True
    augment: bool = False
    lr_step_size: int = Field(10, ge=1, le=500)
    lr_gamma: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _alpha_only_for_mobilenet(self) -> ClassifierParams:
        if self.alpha not in MOBILENET_ALPHAS:
            raise ValueError(f"alpha must be one of {', '.join(map(str, MOBILENET_ALPHAS))}")
        if self.alpha != 1.0 and self.backbone != "mobilenet":
            raise ValueError(f"alpha applies only to backbone 'mobilenet', not {self.backbone!r}")
        if self.weights == "imagenet" and self.backbone == "small_cnn":
            raise ValueError("backbone 'small_cnn' has no ImageNet weights; use weights null")
        return self


DetectionBackbone = Literal["resnet_small", "resnet18", "resnet50"]
DETECTION_IMAGENET_BACKBONES = ("resnet18", "resnet50")
DETECTION_IMAGE_SIZE_STEP = 32  # the coarsest feature level of the detector has stride 32


class DetectionParams(BaseModel):
    """RetinaNet training settings (docs/job-contract.md, detection)."""

    model_config = ConfigDict(extra="forbid")

    backbone: DetectionBackbone = "resnet_small"
    weights: Literal["imagenet"] | None = None
    epochs: int = Field(20, ge=1, le=500)
    batch_size: int = Field(16, ge=1, le=256)
    learning_rate: float = Field(0.001, gt=0, le=1)
    image_size: int = Field(256, ge=64, le=768, multiple_of=DETECTION_IMAGE_SIZE_STEP)
    validation_split: float = Field(0.2, ge=0, le=0.9)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    shuffle: bool = True
    augment: bool = True
    lr_step_size: int = Field(10, ge=1, le=500)
    lr_gamma: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _imagenet_only_for_resnets(self) -> DetectionParams:
        if self.weights == "imagenet" and self.backbone not in DETECTION_IMAGENET_BACKBONES:
            raise ValueError(
                f"backbone {self.backbone!r} has no ImageNet weights; use weights null or backbone"
                f" {' or '.join(DETECTION_IMAGENET_BACKBONES)}"
            )
        return self


PoseModelType = Literal["single_instance", "topdown", "bottomup"]
PoseBackbone = Literal["unet", "unet_medium_rf", "unet_large_rf", "convnext", "swint"]
POSE_BACKBONES: tuple[str, ...] = ("unet", "unet_medium_rf", "unet_large_rf", "convnext", "swint")
# The SLEAP microservice's (seed 001) backbone names and the sleap-nn backbone closest to each.
# LEAP and stacked hourglass are encoder-decoders with skip connections, which is what the UNet
# is; a ResNet encoder's modern descendant is ConvNeXt. Its "pretrained_encoder" needs ImageNet
# weights for a torch encoder, which are never downloaded here: it is refused (see below).
SEED_POSE_BACKBONES = {"unet": "unet", "leap": "unet", "hourglass": "unet", "resnet": "convnext"}


class PoseParams(BaseModel):
    """sleap-nn training settings (docs/job-contract.md, pose)."""

    model_config = ConfigDict(extra="forbid")

    model_type: PoseModelType = "single_instance"
    backbone: str = Field(
        "unet",
        description=f"one of {', '.join(POSE_BACKBONES)}; the seed's names "
        f"{', '.join(SEED_POSE_BACKBONES)} map to the closest of these",
    )
    epochs: int = Field(50, ge=1, le=1000)
    batch_size: int = Field(4, ge=1, le=256)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    validation_fraction: float = Field(0.1, ge=0, le=0.9)
    sigma: float = Field(5.0, gt=0, le=50)
    output_stride: Literal[1, 2, 4, 8, 16, 32] = 2
    input_scale: float = Field(1.0, gt=0, le=4)
    augmentation: bool = False
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    anchor_part: str | None = Field(None, min_length=1, max_length=200)
    max_instances: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _known_backbone(self) -> PoseParams:
        backbone = SEED_POSE_BACKBONES.get(self.backbone, self.backbone)
        if backbone not in POSE_BACKBONES:
            hint = (
                " (a pretrained encoder needs ImageNet weights, which this service does not download)"
                if self.backbone == "pretrained_encoder"
                else ""
            )
            raise ValueError(
                f"backbone {self.backbone!r} is not supported{hint}; supported: "
                f"{', '.join(POSE_BACKBONES)} (or the seed names {', '.join(SEED_POSE_BACKBONES)})"
            )
        self.backbone = backbone
        return self


class PoseInferParams(BaseModel):
    """Video inference settings for a pose model."""

    model_config = ConfigDict(extra="forbid")

    frame_start: int = Field(0, ge=0)
    frame_end: int | None = Field(None, ge=1, description="exclusive; null: to the last frame")
    frame_stride: int = Field(1, ge=1, le=10_000)
    tracking: bool = False
    batch_size: int = Field(4, ge=1, le=256)
    peak_threshold: float = Field(0.2, ge=0, le=1)
    max_instances: int | None = Field(None, ge=1, le=1000)
    preview: Literal["video", "image", "both", "none"] = "both"
    nodes: list[str] | None = Field(
        None, max_length=1000, description="the skeleton nodes the client expects; checked against the model"
    )

    @model_validator(mode="after")
    def _range_is_not_empty(self) -> PoseInferParams:
        if self.frame_end is not None and self.frame_end <= self.frame_start:
            raise ValueError(
                f"frame_end ({self.frame_end}) must be greater than frame_start ({self.frame_start})"
            )
        return self


def normalise_exports(requested: list[str] | None) -> list[str]:
    """The export formats a job will produce: ONNX always, since prediction runs on it."""
    chosen: list[str] = list(DEFAULT_EXPORTS) if requested is None else list(dict.fromkeys(requested))
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; supported: {', '.join(EXPORT_FORMATS)}")
    if "onnx" not in chosen:
        chosen.append("onnx")
    return chosen


def to_hyperparameters(
    job_id: str, task: str, params: ClassifierParams | DetectionParams, exports: list[str]
) -> dict[str, str]:
    """Encode per the contract: SageMaker keeps hyperparameters as strings, so each is JSON."""
    values: dict[str, object] = {"job_id": job_id, "task": task, **params.model_dump()}
    values["exports"] = exports
    return encode_hyperparameters(values)


def encode_hyperparameters(values: dict[str, object]) -> dict[str, str]:
    return {key: json.dumps(value) for key, value in values.items()}
