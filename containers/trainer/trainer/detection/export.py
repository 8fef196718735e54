"""Detection model dir outputs: model.onnx (always, checked against Keras), model.keras (the
keras-hub detector with its preprocessor and NMS), model.tflite, Core ML and PyTorch exports
(extra_exports.py), then trainyard_model.json.

ONNX, TFLite, Core ML and PyTorch are made from the export model (raw heads + anchor
decoding + sigmoid), not from the detector, whose own export gives undecoded per-anchor
deltas: every runtime then gets boxes in pixels and leaves only NMS to do
(docs/job-contract.md, detection).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..errors import ExportCheckError
from ..export import (
    EXPORT_FILES,
    MODEL_MANIFEST,
    ONNX_CHECK_MAX_IMAGES,
    export_keras,
    export_onnx,
    export_tflite,
    finite,
    input_spec,
    prepare_model_dir,
    write_json_atomically,
)
from ..extra_exports import export_extra_formats
from ..train import EpochMetrics
from .contract import DetectionConfig
from .model import INPUT_NAME
from .train import DEFAULT_SCORE_THRESHOLD, MAX_DETECTIONS, NMS_IOU_THRESHOLD

log = logging.getLogger(__name__)

OUTPUTS = ("boxes", "scores")
SCORE_TOLERANCE = 1e-4
# Box corners are exp() of a regression times the anchor size, so float32 rounding grows with
# the box: the limit is relative to the box's largest coordinate (or to the image for small
# boxes). An untrained detector proposes boxes thousands of pixels wide.
BOX_RELATIVE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DetectionOnnxCheck:
    images: int
    max_abs_diff_scores: float
    max_relative_diff_boxes: float
    input_name: str


def check_detection_onnx(
    export_model: keras.Model, onnx_path: Path, images: np.ndarray, image_size: int
) -> DetectionOnnxCheck:
    import onnxruntime  # noqa: PLC0415 - only the export step needs it

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = sorted(output.name for output in session.get_outputs())
    if names != sorted(OUTPUTS):
        raise ExportCheckError(f"the ONNX export has outputs {names}, expected {list(OUTPUTS)}")
    batch = images[:ONNX_CHECK_MAX_IMAGES].astype(np.float32)
    onnx_boxes, onnx_scores = session.run(list(OUTPUTS), {input_name: batch})
    keras_outputs = export_model(batch, training=False)
    keras_boxes = keras.ops.convert_to_numpy(keras_outputs["boxes"])
    keras_scores = keras.ops.convert_to_numpy(keras_outputs["scores"])
    arrays = (onnx_boxes, onnx_scores, keras_boxes, keras_scores)
    if not all(np.isfinite(array).all() for array in arrays):
        raise ExportCheckError(
            "the trained detector outputs NaN or infinite values (training diverged); "
            "try a lower learning_rate"
        )
    score_diff = float(np.max(np.abs(onnx_scores - keras_scores)))
    scale = np.maximum(np.abs(keras_boxes).max(axis=-1, keepdims=True), image_size)
    box_diff = float(np.max(np.abs(onnx_boxes - keras_boxes) / scale))
    log.info(
        "ONNX check on %d images: scores differ by up to %.3g, box corners by up to %.3g "
        "of the box's size",
        len(batch),
        score_diff,
        box_diff,
    )
    if score_diff >= SCORE_TOLERANCE or box_diff >= BOX_RELATIVE_TOLERANCE:
        raise ExportCheckError(
            f"ONNX export check failed on {len(batch)} images: scores differ from Keras by up "
            f"to {score_diff:.3g} (limit {SCORE_TOLERANCE:g}), box corners by up to "
            f"{box_diff:.3g} of their size (limit {BOX_RELATIVE_TOLERANCE:g})"
        )
    return DetectionOnnxCheck(len(batch), score_diff, box_diff, input_name)


def detection_manifest(
    config: DetectionConfig,
    classes: Sequence[str],
    check: DetectionOnnxCheck,
    final: EpochMetrics,
) -> dict[str, Any]:
    size = config.image_size
    return {
        "schema": "trainyard.model/1",
        "task": "detection",
        "classes": list(classes),
        "input": input_spec(check.input_name, size),
        "output": {
            "kind": "boxes",
            "boxes": "boxes",
            "scores": "scores",
            "box_format": "xyxy",
            "coordinates": "input_pixels",
        },
        "postprocess": {
            "nms_iou_threshold": NMS_IOU_THRESHOLD,
            "score_threshold": DEFAULT_SCORE_THRESHOLD,
            "max_detections": MAX_DETECTIONS,
        },
        "exports": {fmt: EXPORT_FILES[fmt] for fmt in config.exports},
        "onnx_check": {
            "images": check.images,
            "max_abs_diff": check.max_abs_diff_scores,
            "max_relative_diff_boxes": check.max_relative_diff_boxes,
        },
        "metrics": {
            "loss": final.loss,
            "val_loss": final.val_loss,
            "val_map_50": final.val_map_50,
            "val_map_50_95": final.val_map_50_95,
        },
        "backbone": config.backbone,
        "weights": config.weights,
        "image_size": size,
    }


def export_detection(
    detector: keras.Model,
    export_model: keras.Model,
    model_dir: Path,
    *,
    config: DetectionConfig,
    classes: Sequence[str],
    check_images: np.ndarray,
    final: EpochMetrics,
) -> dict[str, Any]:
    """Every requested export, ONNX first (its check can fail the job before the slower
    ones run), then the manifest. Returns the manifest."""
    prepare_model_dir(model_dir)
    onnx_path = model_dir / EXPORT_FILES["onnx"]
    export_onnx(export_model, onnx_path, config.image_size, INPUT_NAME)
    check = check_detection_onnx(export_model, onnx_path, check_images, config.image_size)
    if "keras" in config.exports:
        export_keras(detector, model_dir / EXPORT_FILES["keras"])
    if "tflite" in config.exports:
        export_tflite(
            export_model, model_dir / EXPORT_FILES["tflite"], config.image_size, INPUT_NAME
        )
    extra = export_extra_formats(
        export_model,
        model_dir,
        formats=config.exports,
        onnx_path=onnx_path,
        image_size=config.image_size,
        input_name=INPUT_NAME,
        onnx_output_names=OUTPUTS,
        output_names=OUTPUTS,
        classes=classes,
        check_images=check_images,
    )
    manifest: dict[str, Any] = finite(
        {**detection_manifest(config, classes, check, final), **extra}
    )
    write_json_atomically(model_dir / MODEL_MANIFEST, manifest)
    return manifest
