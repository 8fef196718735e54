"""Model dir outputs: model.onnx (always, and checked), model.keras, model.tflite, the Core ML
and PyTorch exports of extra_exports.py, and last trainyard_model.json, whose presence tells
the launcher the model dir is complete."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .contract import TrainingConfig
from .errors import ExportCheckError
from .extra_exports import EXTRA_EXPORT_FILES, export_extra_formats
from .models import INPUT_NAME
from .train import EpochMetrics

log = logging.getLogger(__name__)

MODEL_MANIFEST = "trainyard_model.json"
EXPORT_FILES = {
    "keras": "model.keras",
    "onnx": "model.onnx",
    "tflite": "model.tflite",
    **EXTRA_EXPORT_FILES,
}
# The Core ML model's output (its ONNX name, tf2onnx's, says nothing to an app developer).
COREML_CLASSIFIER_OUTPUT = "probabilities"
ONNX_CHECK_MAX_IMAGES = 20
ONNX_CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxCheck:
    images: int
    max_abs_diff: float
    input_name: str
    output_name: str


def _input_signature(image_size: int, name: str = INPUT_NAME) -> list[tf.TensorSpec]:
    # Dynamic batch, fixed image size: the service sends one image, the check sends many.
    return [tf.TensorSpec((None, image_size, image_size, 3), tf.float32, name=name)]


def _all_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    yield layer
    for sublayer in getattr(layer, "layers", None) or []:
        yield from _all_layers(sublayer)


def freeze_normalization_statistics(model: keras.Model) -> None:
    """Turn adapted Normalization statistics into numpy constants.

    keras.layers.Normalization keeps `mean`/`variance` as eager tensors computed from its
    variables; traced for export they become captured tensors that tf2onnx leaves as
    graph inputs (EfficientNet's ONNX then demands `.../normalization/Sub/y:0` in the feed).
    As numpy arrays they are traced as constants. The values are unchanged, and the
    variables, which model.keras stores, are untouched.
    """
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.Normalization) and layer.input_mean is None:
            layer.mean = keras.ops.convert_to_numpy(layer.mean)
            layer.variance = keras.ops.convert_to_numpy(layer.variance)


def export_onnx(
    model: keras.Model, path: Path, image_size: int, input_name: str = INPUT_NAME
) -> None:
    freeze_normalization_statistics(model)
    # tf2onnx logs every conversion step at INFO; keep the job log readable.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # Keras' tf2onnx numpy-2 shim probes `np.object`, which numpy warns about.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*np.object.*")
        model.export(
            str(path),
            format="onnx",
            verbose=False,
            input_signature=_input_signature(image_size, input_name),
        )


def export_tflite(
    model: keras.Model, path: Path, image_size: int, input_name: str = INPUT_NAME
) -> None:
    model.export(
        str(path),
        format="litert",
        verbose=False,
        input_signature=_input_signature(image_size, input_name),
    )


def export_keras(model: keras.Model, path: Path) -> None:
    model.save(path)


def check_onnx(model: keras.Model, onnx_path: Path, images: np.ndarray) -> OnnxCheck:
    """Run the ONNX file with ONNX Runtime and the Keras model on the same images; fail
    unless every probability agrees to within ONNX_CHECK_TOLERANCE."""
    import onnxruntime  # noqa: PLC0415 - imported where used; only the export step needs it

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    batch = images[:ONNX_CHECK_MAX_IMAGES].astype(np.float32)
    onnx_probabilities = session.run([output_name], {input_name: batch})[0]
    keras_probabilities = keras.ops.convert_to_numpy(model(batch, training=False))
    if not (np.isfinite(keras_probabilities).all() and np.isfinite(onnx_probabilities).all()):
        raise ExportCheckError(
            "the trained model outputs NaN or infinite probabilities (training diverged); "
            "try a lower learning_rate"
        )
    max_abs_diff = float(np.max(np.abs(onnx_probabilities - keras_probabilities)))
    log.info("ONNX check on %d images: max abs difference %.3g", len(batch), max_abs_diff)
    if max_abs_diff >= ONNX_CHECK_TOLERANCE:
        raise ExportCheckError(
            f"ONNX export check failed: probabilities differ from Keras by up to "
            f"{max_abs_diff:.3g} on {len(batch)} images (limit {ONNX_CHECK_TOLERANCE:g})"
        )
    return OnnxCheck(len(batch), max_abs_diff, input_name, output_name)


def input_spec(name: str, size: int) -> dict[str, Any]:
    """The manifest's `input`: how the service turns an image into the model's input."""
    return {
        "name": name,
        "height": size,
        "width": size,
        "channels": 3,
        "dtype": "float32",
        "layout": "NHWC",
        "range": [0, 255],
        "color": "RGB",
        "resize": "bilinear",
    }


def model_manifest(
    config: TrainingConfig,
    classes: Sequence[str],
    check: OnnxCheck,
    final: EpochMetrics,
) -> dict[str, Any]:
    """trainyard_model.json, as in the contract."""
    size = config.image_size
    return {
        "schema": "trainyard.model/1",
        "task": config.task,
        "classes": list(classes),
        "input": input_spec(check.input_name, size),
        "output": {"name": check.output_name, "kind": "probabilities"},
        "exports": {fmt: EXPORT_FILES[fmt] for fmt in config.exports},
        "onnx_check": {"images": check.images, "max_abs_diff": check.max_abs_diff},
        "metrics": {
            "loss": final.loss,
            "val_loss": final.val_loss,
            "accuracy": final.accuracy,
            "val_accuracy": final.val_accuracy,
        },
        "backbone": config.backbone,
        "image_size": size,
    }


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    # Written under a temporary name and renamed, so a reader never sees half a manifest.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)


def export_all(
    model: keras.Model,
    model_dir: Path,
    *,
    config: TrainingConfig,
    classes: Sequence[str],
    check_images: np.ndarray,
    final: EpochMetrics,
) -> dict[str, Any]:
    """Write every requested export, ONNX first (its check can fail the job before the
    slower exports run), then the manifest. Returns the manifest."""
    prepare_model_dir(model_dir)
    onnx_path = model_dir / EXPORT_FILES["onnx"]
    export_onnx(model, onnx_path, config.image_size)
    check = check_onnx(model, onnx_path, check_images)
    if "keras" in config.exports:
        export_keras(model, model_dir / EXPORT_FILES["keras"])
    if "tflite" in config.exports:
        export_tflite(model, model_dir / EXPORT_FILES["tflite"], config.image_size)
    extra = export_extra_formats(
        model,
        model_dir,
        formats=config.exports,
        onnx_path=onnx_path,
        image_size=config.image_size,
        input_name=check.input_name,
        onnx_output_names=[check.output_name],
        output_names=[COREML_CLASSIFIER_OUTPUT],
        classes=classes,
        check_images=check_images,
    )

    manifest: dict[str, Any] = finite({**model_manifest(config, classes, check, final), **extra})
    write_json_atomically(model_dir / MODEL_MANIFEST, manifest)
    return manifest


def prepare_model_dir(model_dir: Path) -> None:
    """The model dir, without a manifest left from an earlier attempt: the manifest is
    written last and marks the dir complete."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (model_dir / MODEL_MANIFEST).unlink()


def finite(value: Any) -> Any:
    """JSON has no NaN: metrics of a diverged run are written as null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value
