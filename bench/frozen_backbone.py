"""Benchmark: frozen-backbone training, cached backbone features vs recomputing them.

Same data, same frozen backbone, same seed, same number of epochs, run through the trainer's
own `train_classifier` twice: once as the container runs it (features computed once, only the
head trained) and once forced to run the backbone every epoch (the end-to-end path with the
backbone frozen). Prints wall times, the speedup and both final validation accuracies.

ImageNet weights cannot be downloaded here, and a randomly initialised MobileNet's features
are vanishingly small (about 1e-12), so no head could learn from them. The benchmark therefore
writes a stand-in "ImageNet" weights file: random weights whose BatchNormalization statistics
are calibrated on a separate synthetic set, saved in the Keras file layout under a temporary
TRAINYARD_WEIGHTS_DIR. Both runs load it through the production path (weights "imagenet",
layers_to_retrain null = frozen backbone).

    containers/trainer/.venv/bin/python bench/frozen_backbone.py [--image-size 224] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "containers" / "trainer"))

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format
from trainer.contract import TrainingConfig, parse_config
from trainer.dataset import Dataset, load_dataset
from trainer.models import build_backbone, preprocessing_layers
from trainer.synthetic import write_shapes_dataset
from trainer.train import TrainingResult, train_classifier
from trainer.weights import imagenet_weights_file_name, resolve_imagenet_weights


def write_standin_imagenet_weights(config: TrainingConfig, weights_dir: Path) -> Path:
    """Random backbone weights with BatchNormalization statistics calibrated on synthetic
    images (not the benchmark's), saved where the trainer looks for ImageNet weights."""
    calibration_dir = weights_dir / "calibration-images"
    write_shapes_dataset(calibration_dir, per_class=24, size=config.image_size, seed=99)
    images = load_dataset(calibration_dir, config.image_size, 0.0, 0).train.images
    x = images.astype(np.float32)
    for layer in preprocessing_layers(config.backbone):
        x = layer(x)

    keras.utils.set_random_seed(12345)
    backbone = build_backbone(replace(config, weights=None), None)
    batch_norms = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.momentum = 0.0  # the moving statistics become exactly this batch's
    backbone(x, training=True)

    name = imagenet_weights_file_name(config.backbone, config.alpha, config.image_size)
    path = weights_dir / "models" / name
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, backbone)
    return path


def timed(run: Callable[[], TrainingResult]) -> tuple[TrainingResult, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--per-class", type=int, default=134, help="images per class (3 classes)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    config = parse_config(
        {
            "job_id": "bench",
            "backbone": args.backbone,
            "weights": "imagenet",  # layers_to_retrain null: the backbone is frozen
            "image_size": args.image_size,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "validation_split": 0.25,
            "seed": args.seed,
        }
    )
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_shapes_dataset(root / "data", per_class=args.per_class, size=args.image_size, seed=0)
        dataset: Dataset = load_dataset(root / "data", args.image_size, 0.25, args.seed)
        write_standin_imagenet_weights(config, root / "weights")
        weights_file = resolve_imagenet_weights(config, {"TRAINYARD_WEIGHTS_DIR": str(root / "weights")})

        # Warm-up, not timed: the first TensorFlow run in a process pays one-off start costs.
        train_classifier(replace(config, epochs=1), dataset, weights_file)

        cached, cached_seconds = timed(lambda: train_classifier(config, dataset, weights_file))
        recomputed, recomputed_seconds = timed(
            lambda: train_classifier(config, dataset, weights_file, use_feature_cache=False)
        )

    assert cached.used_feature_cache and not recomputed.used_feature_cache
    validation_count = len(dataset.validation) if dataset.validation else 0
    cached_accuracy = cached.final.val_accuracy or 0.0
    recomputed_accuracy = recomputed.final.val_accuracy or 0.0
    print(
        f"data: {len(dataset.train)} training + {validation_count} validation synthetic images, "
        f"{len(dataset.classes)} classes, {args.image_size}x{args.image_size}"
    )
    print(
        f"model: {args.backbone} frozen (stand-in ImageNet weights file), head Dropout+Dense, "
        f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.learning_rate}, seed {args.seed}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}"
    )
    print(
        f"cached features:   {cached_seconds:7.2f} s wall "
        f"(of which backbone features {cached.feature_seconds:.2f} s), "
        f"final val_accuracy {cached_accuracy:.4f}"
    )
    print(
        f"recompute backbone: {recomputed_seconds:7.2f} s wall, final val_accuracy {recomputed_accuracy:.4f}"
    )
    print(f"speedup: {recomputed_seconds / cached_seconds:.1f}x")
    print(
        f"val_accuracy difference: {100 * (cached_accuracy - recomputed_accuracy):+.2f} points "
        f"(val_loss {cached.final.val_loss:.4f} cached vs {recomputed.final.val_loss:.4f})"
    )


if __name__ == "__main__":
    main()
