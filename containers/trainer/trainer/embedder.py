"""Seed 003's embedder (`task=embedder`): the frozen backbone whose embeddings the custom tags
are fitted on, exported once to ONNX for the service (ONNX Runtime) to embed images with.

What it is depends on the weights installed under TRAINYARD_WEIGHTS_DIR (nothing is ever
downloaded):

- `imagenet`: MobileNetV2 at 224 px with its ImageNet classifier, when the with-top weights
  file and imagenet_class_index.json (both in the Keras cache layout) are there. Outputs the
  pooled 1280-d features and the 1000 ImageNet probabilities: the "base model" of the seed.
- `imagenet_features`: MobileNetV2 without its top (the no-top file the classifier backbones
  use): 1280-d features, no base-model labels.
- `random_conv` (the fallback, no weights installed): a fixed-seed, randomly initialised
  4-stage conv net at 128 px. He-normal kernels with ReLU keep each stage's activations at
  a steady scale (a random MobileNet's features vanish to ~1e-12 through its untrained
  BatchNormalization layers, see bench/frozen_backbone.py), and the embedding is the mean
  colour plus every stage's global average and the last stage's global max (739-d): colour,
  texture and shape statistics a linear tag classifier can separate. No base-model labels.

The ONNX file is checked against Keras on a few images before the job succeeds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobkit.errors import DataError
from jobkit.events import ProgressEmitter, Status
from jobkit.hyperparameters import integer, reject_unknown, string
from jobkit.paths import JobPaths

from .errors import ExportCheckError
from .weights import WEIGHTS_DIR_VARIABLE, imagenet_weights_file_name

log = logging.getLogger(__name__)

MODEL_MANIFEST = "trainyard_model.json"
ONNX_FILE = "model.onnx"
INPUT_NAME = "image"
IMAGENET_SIZE = 224
FALLBACK_SIZE = 128
FALLBACK_FILTERS = (32, 64, 128, 256)
WITH_TOP_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
CLASS_INDEX_FILE = "imagenet_class_index.json"
CHECK_TOLERANCE = 1e-3  # embeddings are O(1); ONNX and Keras agree to ~1e-5 in practice


def installed_weights(environ: Mapping[str, str]) -> tuple[str, Path | None, list[str]]:
    """(kind, weights file, ImageNet labels) for what is installed."""
    directory = environ.get(WEIGHTS_DIR_VARIABLE)
    if directory:
        models = Path(directory) / "models"
        with_top, class_index = models / WITH_TOP_FILE, models / CLASS_INDEX_FILE
        if with_top.is_file() and class_index.is_file():
            try:
                index = json.loads(class_index.read_text())
                labels = [str(index[str(i)][1]) for i in range(1000)]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise DataError(f"{class_index} is not Keras' ImageNet class index: {exc}") from exc
            return "imagenet", with_top, labels
        no_top = models / imagenet_weights_file_name("mobilenet_v2", 1.0, IMAGENET_SIZE)
        if no_top.is_file():
            return "imagenet_features", no_top, []
    return "random_conv", None, []


def build_embedder(kind: str, weights_file: Path | None, seed: int) -> Any:
    """A Keras model from 0-255 RGB images to [embedding] or [embedding, ImageNet probabilities]."""
    import keras  # noqa: PLC0415 - TensorFlow only once the configuration is known good

    layers = keras.layers
    if kind == "random_conv":
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((FALLBACK_SIZE, FALLBACK_SIZE, 3), name=INPUT_NAME)
        x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
        # mean and extreme colour, then each stage's mean (how much of a feature) and max
        # (whether a feature is anywhere: a small object is lost in a mean)
        pooled = [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
        for stage, filters in enumerate(FALLBACK_FILTERS):
            x = layers.Conv2D(
                filters,
                3,
                strides=2,
                padding="same",
                activation="relu",
                kernel_initializer=keras.initializers.HeNormal(seed=seed + stage),
            )(x)
            pooled += [layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)]
        return keras.Model(inputs, layers.Concatenate(name="embedding")(pooled), name="random_conv")
    inputs = keras.Input((IMAGENET_SIZE, IMAGENET_SIZE, 3), name=INPUT_NAME)
    scaled = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)  # MobileNetV2's preprocessing
    network = keras.applications.MobileNetV2(
        include_top=kind == "imagenet",
        weights=str(weights_file),  # a path: Keras must never try to download
        input_shape=(IMAGENET_SIZE, IMAGENET_SIZE, 3),
        pooling=None if kind == "imagenet" else "avg",
    )
    if kind == "imagenet":
        features = keras.Model(
            network.input, [network.get_layer("predictions").input, network.output]
        )
        embedding, probabilities = features(scaled)
        return keras.Model(inputs, [embedding, probabilities], name="mobilenet_v2_imagenet")
    return keras.Model(inputs, network(scaled), name="mobilenet_v2_features")


def check_onnx(model: Any, onnx_path: Path, size: int, seed: int) -> tuple[list[str], float]:
    """The ONNX outputs' names, and their largest difference from Keras on random images."""
    import numpy as np  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415

    images = np.random.default_rng(seed).uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    from_onnx = session.run(names, {session.get_inputs()[0].name: images})
    from_keras = model(images, training=False)
    from_keras = from_keras if isinstance(from_keras, (list, tuple)) else [from_keras]
    difference = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(from_onnx, from_keras, strict=True)
    )
    if not difference < CHECK_TOLERANCE:
        raise ExportCheckError(f"embedder ONNX export differs from Keras by {difference:.3g}")
    return names, difference


def run_embedder_job(
    values: Mapping[str, Any], paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> None:
    reject_unknown(values, ("job_id", "task", "seed"))
    string(values, "job_id")
    seed = integer(values, "seed", 0, minimum=0, maximum=2**31 - 1)
    emitter.status(Status.DOWNLOADING)
    kind, weights_file, labels = installed_weights(environ)
    size = FALLBACK_SIZE if kind == "random_conv" else IMAGENET_SIZE
    emitter.status(Status.DOWNLOADED, message=f"embedder {kind}")
    emitter.status(Status.RUNNING, message=f"building the {kind} embedder")
    from .export import export_onnx, input_spec, write_json_atomically  # noqa: PLC0415

    model = build_embedder(kind, weights_file, seed)
    emitter.status(Status.EXPORTING, message=ONNX_FILE)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    (paths.model_dir / MODEL_MANIFEST).unlink(missing_ok=True)
    export_onnx(model, paths.model_dir / ONNX_FILE, size, INPUT_NAME)
    names, difference = check_onnx(model, paths.model_dir / ONNX_FILE, size, seed)
    manifest = {
        "schema": "trainyard.model/1",
        "task": "embedder",
        "embedder": kind,
        "base_model": "mobilenet_v2 (ImageNet)" if kind == "imagenet" else None,
        "classes": labels,  # the base model's ImageNet labels, or none
        "input": input_spec(INPUT_NAME, size),
        "output": {
            "name": names[0],
            "kind": "embedding",
            "dimension": int(model.outputs[0].shape[-1]),
        },
        "labels_output": names[1] if kind == "imagenet" else None,
        "exports": {"onnx": ONNX_FILE},
        "onnx_check": {"images": 4, "max_abs_diff": difference},
        "metrics": {},
        "seed": seed,
    }
    write_json_atomically(paths.model_dir / MODEL_MANIFEST, manifest)
    log.info("embedder %s written (%s outputs, check %.3g)", kind, names, difference)
