"""Training parameters: one typed model with bounds, validated before any job is launched.

The same bounds are written in docs/job-contract.md; the container checks them again.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Backbone = Literal["small_cnn", "mobilenet", "mobilenet_v2", "efficientnet_b0", "resnet50", "vgg16"]
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
ExportFormat = Literal["keras", "onnx", "tflite"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("keras", "onnx", "tflite")


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


def normalise_exports(requested: list[str] | None) -> list[str]:
    """The export formats a job will produce: ONNX always, since prediction runs on it."""
    chosen: list[str] = list(EXPORT_FORMATS) if requested is None else list(dict.fromkeys(requested))
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; supported: {', '.join(EXPORT_FORMATS)}")
    if "onnx" not in chosen:
        chosen.append("onnx")
    return chosen


def to_hyperparameters(
    job_id: str, task: str, params: ClassifierParams, exports: list[str]
) -> dict[str, str]:
    """Encode per the contract: SageMaker keeps hyperparameters as strings, so each is JSON."""
    values: dict[str, object] = {"job_id": job_id, "task": task, **params.model_dump()}
    values["exports"] = exports
    return {key: json.dumps(value) for key, value in values.items()}
