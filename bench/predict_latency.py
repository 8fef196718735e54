"""Benchmark: one-image prediction latency, ONNX Runtime vs Keras, on the same model.

Builds a trainer classifier (default MobileNetV2, random weights, 224 px, 3 classes), exports
it to ONNX with the trainer's own export code (which also checks that ONNX Runtime and Keras
agree), then times ONE image through `session.run` and through the eager Keras call
`model(x, training=False)`, warm, in the same process. Weights do not affect the latency,
so the model is built rather than trained; its BatchNormalization statistics are calibrated
on random images so that its outputs are not the near-uniform probabilities of a fresh
MobileNet (which would make the ONNX agreement check trivially exact). A tf.function-compiled
Keras call is timed too, for context.

    containers/trainer/.venv/bin/python bench/predict_latency.py [--backbone small_cnn] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers" / "trainer"))

import keras
import numpy as np
import onnxruntime
import tensorflow as tf
from trainer.contract import parse_config
from trainer.export import check_onnx, export_onnx
from trainer.models import build_classifier


def calibrate_batch_norm(model: keras.Model, images: np.ndarray) -> None:
    """Set every BatchNormalization's moving statistics to those of `images` (one forward
    pass in training mode with momentum 0), so activations keep a sensible scale."""
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]  # fmt: skip
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def time_calls(call: Callable[[], object], warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def summary(durations: list[float]) -> dict[str, float]:
    milliseconds = sorted(d * 1000 for d in durations)
    return {
        "p50": statistics.median(milliseconds),
        "p95": milliseconds[int(0.95 * (len(milliseconds) - 1))],
        "mean": statistics.fmean(milliseconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    config = parse_config(
        {"job_id": "bench", "backbone": args.backbone, "image_size": args.image_size, "seed": 0}
    )
    keras.utils.set_random_seed(0)
    model = build_classifier(config, num_classes=3).model
    rng = np.random.default_rng(0)
    size = args.image_size
    calibrate_batch_norm(model, rng.uniform(0, 255, (16, size, size, 3)).astype(np.float32))
    image = rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)

    with tempfile.TemporaryDirectory() as directory:
        onnx_path = Path(directory) / "model.onnx"
        export_onnx(model, onnx_path, size)
        check = check_onnx(model, onnx_path, rng.uniform(0, 255, (8, size, size, 3)))
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def keras_call() -> np.ndarray:
        return model(image, training=False).numpy()

    def onnx_call() -> np.ndarray:
        return session.run([check.output_name], {check.input_name: image})[0]

    compiled = tf.function(lambda x: model(x, training=False))

    def keras_compiled_call() -> np.ndarray:
        return compiled(image).numpy()

    assert np.abs(keras_call() - onnx_call()).max() < 1e-4
    keras_ms = summary(time_calls(keras_call, args.warmup, args.iterations))
    onnx_ms = summary(time_calls(onnx_call, args.warmup, args.iterations))
    compiled_ms = summary(time_calls(keras_compiled_call, args.warmup, args.iterations))

    print(f"model: {args.backbone}, {size}x{size}x3 float32, 1 image per call, "
          f"{args.warmup} warm-up + {args.iterations} timed calls each")  # fmt: skip
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")  # fmt: skip
    print(f"ONNX check: max abs diff {check.max_abs_diff:.3g} on {check.images} images")
    rows = (("Keras model(x)", keras_ms), ("ONNX Runtime", onnx_ms),
            ("Keras tf.function", compiled_ms))  # fmt: skip
    for name, figures in rows:
        print(f"{name:>17}: p50 {figures['p50']:7.2f} ms  p95 {figures['p95']:7.2f} ms  "
              f"mean {figures['mean']:7.2f} ms")  # fmt: skip
    print(f"ONNX Runtime vs Keras model(x): {keras_ms['p50'] / onnx_ms['p50']:.1f}x faster at p50, "
          f"{keras_ms['p95'] / onnx_ms['p95']:.1f}x at p95")  # fmt: skip
    print(f"ONNX Runtime vs Keras tf.function: {compiled_ms['p50'] / onnx_ms['p50']:.1f}x faster at p50")


if __name__ == "__main__":
    main()
