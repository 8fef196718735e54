"""Benchmark: object-detection training throughput and one-image predict latency (ONNX
Runtime vs Keras), through the trainer's own detection code.

Training: for each image size, writes the synthetic shapes channel (`write_detection_channel`,
20 % of the images split "val"), loads it as the container does and trains the default
detector (resnet_small RetinaNet, augmentation on) with `train_detector`. Training
images/second per epoch come from the EpochMetrics that the `on_epoch` callback receives: its
duration_seconds runs from Keras' on_epoch_begin to the trainer's EpochReporter.on_epoch_end,
so it holds the training pass, fit's validation loss pass (`detector.evaluate`) AND the
per-epoch mAP evaluation (`trainer.detection.train.evaluate`: eager export model + keras-hub
NMS on the validation images, then numpy mAP). To split them, this process wraps those two
functions in timers (they still run as they would; nothing else changes), so each epoch's
training pass is its duration minus its validation loss pass and its mAP evaluation. Epoch 1
holds the tracing and is left out of the medians.

Predict latency: the trained detector (the weights do not change the graph's cost) is
exported with `export_detection` (ONNX and model.keras); then one image at a time (batch 1,
as the API predicts) goes through
  (a) ONNX Runtime `session.run` on model.onnx + the service's numpy `postprocess`
      (src/trainyard/services/detection.py, loaded by file path; NMS across classes at 0.5,
      scores from 0.5 (the default), max 100 detections, called as prediction.py calls it), with
      intra_op_num_threads=1 (as the service's Predictor) and with ONNX Runtime's default
      threads; the two sessions alternate image by image, and run and postprocess are timed
      apart within each call;
  (b) the Keras export model, eager, + keras-hub's NMS (`trainer.detection.train.detect`,
      score threshold 0.5); and (b') the export model's call alone, to show what NMS costs;
  (c) model.keras loaded with `keras.saving.load_model`, then
      `detector.decode_predictions(detector(x / 255.0), x)` eagerly.
The images are synthetic ones already at the model's input size (validation images first), so
decoding and resizing are excluded from every path; postprocessing/NMS is included in all.

    containers/trainer/.venv/bin/python bench/detection.py [--sizes 128 256] [--epochs 3] ...
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers" / "trainer"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers" / "jobkit"))

import keras
import keras_hub
import numpy as np
import onnxruntime
import tensorflow as tf
import trainer.detection.train as detection_train
from trainer.detection.contract import parse_detection_config
from trainer.detection.dataset import load_detection_dataset
from trainer.detection.export import export_detection
from trainer.detection.synthetic import write_detection_channel
from trainer.detection.train import (
    DEFAULT_SCORE_THRESHOLD,
    MAX_DETECTIONS,
    NMS_IOU_THRESHOLD,
    detect,
    train_detector,
)
from trainer.train import EpochMetrics

REPO = Path(__file__).resolve().parents[1]


def load_service_detection() -> ModuleType:
    """src/trainyard/services/detection.py by file path (it imports nothing from trainyard)."""
    path = REPO / "src" / "trainyard" / "services" / "detection.py"
    spec = importlib.util.spec_from_file_location("trainyard_service_detection", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


@contextmanager
def timing(owner: Any, name: str, durations: list[float]) -> Iterator[None]:
    """Replace owner.name by a wrapper that appends each call's duration; restore it after."""
    original = getattr(owner, name)
    own = name in vars(owner)  # else inherited (a method of a base class)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - started)

    setattr(owner, name, timed)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


def ms(seconds: list[float]) -> dict[str, float]:
    milliseconds = np.asarray(seconds) * 1000
    return {"median": float(np.median(milliseconds)), "p90": float(np.percentile(milliseconds, 90))}


def bench_training(args: argparse.Namespace, size: int, root: Path) -> dict[str, Any]:
    write_detection_channel(root / "channel", images=args.images, size=size, val_fraction=0.2,
                            seed=args.seed)  # fmt: skip
    dataset = load_detection_dataset(root / "channel", size, 0.2, args.seed)
    assert dataset.validation is not None
    config = parse_detection_config(
        {
            "job_id": "bench",
            "backbone": args.backbone,
            "image_size": size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "augment": True,
            "exports": ["keras", "onnx"],
        }
    )
    epochs: list[EpochMetrics] = []
    val_loss_seconds: list[float] = []
    map_seconds: list[float] = []

    def on_epoch(metrics: EpochMetrics) -> None:
        epochs.append(metrics)
        i = metrics.epoch - 1
        print(f"  {size} px epoch {metrics.epoch}/{metrics.epochs}: "
              f"{metrics.duration_seconds:6.2f} s (val loss pass {val_loss_seconds[i]:.2f} s, "
              f"mAP evaluation {map_seconds[i]:.2f} s), loss {metrics.loss:.3f} val_loss "
              f"{metrics.val_loss:.3f} val_map_50 {metrics.val_map_50:.3f}; load "
              f"{load_average()}", flush=True)  # fmt: skip

    started = time.perf_counter()
    # fit's validation pass calls detector.evaluate; EpochReporter's evaluate= lambda looks
    # `evaluate` up in trainer.detection.train when it runs.
    with (
        timing(keras_hub.models.RetinaNetObjectDetector, "evaluate", val_loss_seconds),
        timing(detection_train, "evaluate", map_seconds),
    ):
        result = train_detector(config, dataset, on_epoch=on_epoch)
    wall = time.perf_counter() - started
    assert len(val_loss_seconds) == len(map_seconds) == len(epochs)

    per_epoch = [
        {
            "epoch": m.duration_seconds,
            "val_loss": v,
            "map": e,
            "train_pass": m.duration_seconds - v - e,
        }
        for m, v, e in zip(epochs, val_loss_seconds, map_seconds, strict=True)
    ]
    later = per_epoch[1:] or per_epoch
    medians = {key: statistics.median(row[key] for row in later) for key in per_epoch[0]}
    train_count = len(dataset.train)
    return {
        "size": size,
        "config": config,
        "dataset": dataset,
        "result": result,
        "train": train_count,
        "validation": len(dataset.validation),
        "first_epoch": per_epoch[0]["epoch"],
        "medians": medians,
        "epoch_images_per_second": train_count / medians["epoch"],
        "train_pass_images_per_second": train_count / medians["train_pass"],
        "wall": wall,
        "final": result.final,
    }


def bench_latency(args: argparse.Namespace, trained: dict[str, Any], root: Path,
                  service: ModuleType) -> dict[str, dict[str, Any]]:  # fmt: skip
    size, dataset, result = trained["size"], trained["dataset"], trained["result"]
    model_dir = root / "model"
    export_detection(result.detector, result.export_model, model_dir, config=trained["config"],
                     classes=dataset.classes, check_images=dataset.validation.images,
                     final=result.final)  # fmt: skip
    pool = np.concatenate([dataset.validation.images, dataset.train.images]).astype(np.float32)
    images = pool[: args.predict_images]

    onnx_path = str(model_dir / "model.onnx")
    one_thread = onnxruntime.SessionOptions()
    one_thread.intra_op_num_threads = 1  # as the service's Predictor
    sessions = {
        "1 thread (as the service)": onnxruntime.InferenceSession(
            onnx_path, one_thread, providers=["CPUExecutionProvider"]
        ),
        "default threads": onnxruntime.InferenceSession(
            onnx_path, providers=["CPUExecutionProvider"]
        ),
    }

    def onnx_predict(
        session: onnxruntime.InferenceSession, x: np.ndarray
    ) -> tuple[float, float, int]:
        started = time.perf_counter()
        boxes, scores = session.run(["boxes", "scores"], {"images": x})
        ran = time.perf_counter()
        found = service.postprocess(
            boxes[0], scores[0], iou_threshold=NMS_IOU_THRESHOLD,
            score_threshold=DEFAULT_SCORE_THRESHOLD, max_detections=MAX_DETECTIONS,
            input_size=(size, size), image_size=(size, size),
        )  # fmt: skip
        return ran - started, time.perf_counter() - ran, len(found)

    for i in range(args.warmup):
        for session in sessions.values():
            onnx_predict(session, images[i % len(images)][None])
    onnx_times: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sessions}
    for image in images:  # the two sessions alternate, image by image
        for name, session in sessions.items():
            onnx_times[name].append(onnx_predict(session, image[None]))

    rows: dict[str, dict[str, Any]] = {}
    for name, times in onnx_times.items():
        run, post, found = (list(column) for column in zip(*times, strict=True))
        rows[f"(a) ONNX Runtime {name} + service postprocess"] = {
            **ms([r + p for r, p in zip(run, post, strict=True)]),
            "run": ms(run),
            "postprocess": ms(post),
            "detections": statistics.fmean(found),
            "images": len(images),
        }

    def keras_export_call(x: np.ndarray) -> int:
        (found,) = detect(result.export_model, x, score_threshold=DEFAULT_SCORE_THRESHOLD)
        return len(found.boxes)

    loaded = keras.saving.load_model(model_dir / "model.keras")

    def keras_file_call(x: np.ndarray) -> int:
        decoded = loaded.decode_predictions(loaded(x / 255.0), x)
        return int(keras.ops.convert_to_numpy(decoded["num_detections"])[0])

    def keras_model_only_call(x: np.ndarray) -> int:
        keras.ops.convert_to_numpy(result.export_model(x, training=False)["scores"])
        return 0

    keras_paths = {
        "(b) Keras export model (eager) + keras-hub NMS": keras_export_call,
        "(b') Keras export model (eager) alone, no NMS": keras_model_only_call,
        "(c) model.keras: decode_predictions(detector(x / 255))": keras_file_call,
    }
    keras_images = images[: args.keras_images]
    for name, call in keras_paths.items():
        for i in range(args.keras_warmup):
            call(images[i % len(images)][None])
        durations, found = [], []
        for image in keras_images:
            started = time.perf_counter()
            found.append(call(image[None]))
            durations.append(time.perf_counter() - started)
        rows[name] = {**ms(durations), "detections": statistics.fmean(found),
                      "images": len(keras_images)}  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--images", type=int, default=200, help="synthetic images (20%% val)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--backbone", default="resnet_small")
    parser.add_argument("--predict-images", type=int, default=100, help="timed, ONNX Runtime")
    parser.add_argument("--warmup", type=int, default=10, help="ONNX Runtime warm-up calls")
    parser.add_argument("--keras-images", type=int, default=30, help="timed, each Keras path")
    parser.add_argument("--keras-warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-latency", action="store_true", help="training throughput only")
    args = parser.parse_args()

    service = load_service_detection()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"keras-hub {keras_hub.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"GPUs seen by TensorFlow: {len(tf.config.list_physical_devices('GPU'))}")  # fmt: skip
    print(f"load average at start: {load_average()}")
    trainings, latencies = [], {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as directory:
            print(f"training {args.backbone} at {size} px ...", flush=True)
            trained = bench_training(args, size, Path(directory))
            trainings.append(trained)
            if not args.no_latency:
                print(f"predict latency at {size} px ...", flush=True)
                latencies[size] = bench_latency(args, trained, Path(directory), service)
                print(f"  done; load {load_average()}", flush=True)
            del trained["result"], trained["dataset"]  # free the model and images
            keras.backend.clear_session()

    print(f"\ntraining: {args.backbone}, {args.images} synthetic images (20% val), batch "
          f"{args.batch_size}, augment on, {args.epochs} epochs; median of epochs 2+")  # fmt: skip
    for t in trainings:
        m = t["medians"]
        print(f"{t['size']:4d} px: {t['train']} train / {t['validation']} val images; epoch 1 "
              f"{t['first_epoch']:.2f} s; epoch {m['epoch']:.2f} s = "
              f"{t['epoch_images_per_second']:.1f} train images/s (whole epoch), of which val "
              f"loss pass {m['val_loss']:.2f} s, mAP evaluation {m['map']:.2f} s, training pass "
              f"{m['train_pass']:.2f} s = {t['train_pass_images_per_second']:.1f} images/s; "
              f"train_detector wall {t['wall']:.1f} s; final val_map_50 "
              f"{t['final'].val_map_50:.3f}")  # fmt: skip
    print(f"load average at the end: {load_average()}")
    for size, rows in latencies.items():
        print(f"\npredict latency, {size} px, batch 1 (decode/resize excluded; ONNX Runtime "
              f"{args.warmup} warm-up, Keras {args.keras_warmup}):")  # fmt: skip
        for name, row in rows.items():
            parts = "".join(f"; {key} median {row[key]['median']:.2f} ms p90 "
                            f"{row[key]['p90']:.2f} ms" for key in ("run", "postprocess")
                            if key in row)  # fmt: skip
            print(f"  {name:<58} n={row['images']:3d} median {row['median']:8.2f} ms  p90 "
                  f"{row['p90']:8.2f} ms  detections/image {row['detections']:.2f}"
                  f"{parts}")  # fmt: skip


if __name__ == "__main__":
    main()
