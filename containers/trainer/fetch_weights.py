"""Build-time only: download every ImageNet no-top weights file the trainer can ask for,
and the keras-hub ResNet presets of the detection backbones.

Run with KERAS_HOME=<TRAINYARD_WEIGHTS_DIR> (the Dockerfile does): each keras.applications
model is instantiated with weights="imagenet", so Keras itself downloads, hash-checks where it
has hashes, and caches the files as <KERAS_HOME>/models/<keras file name>, the layout the
trainer reads at run time. Then every name the trainer computes is checked to be present, so
an image can never be built that lacks a file a job may need.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainer.detection.contract import IMAGENET_PRESETS
from trainer.embedder import CLASS_INDEX_FILE, WITH_TOP_FILE
from trainer.weights import (
    KERAS_HUB_PRESETS_DIR,
    MOBILENET_SIZES,
    MOBILENET_V2_SIZES,
    WEIGHTS_DIR_VARIABLE,
    all_imagenet_weights_file_names,
    resolve_keras_hub_preset,
)


def main() -> int:
    keras_home = os.environ.get("KERAS_HOME")
    if not keras_home:
        print("set KERAS_HOME to the weights directory (TRAINYARD_WEIGHTS_DIR)", file=sys.stderr)
        return 2
    import keras  # noqa: PLC0415 - after checking KERAS_HOME, which Keras reads at import

    applications = keras.applications
    builds: list[tuple[Callable[..., Any], dict[str, Any]]] = [
        *[(applications.MobileNet, {"alpha": alpha, "input_shape": (size, size, 3)})
          for alpha in (0.25, 0.5, 0.75, 1.0) for size in MOBILENET_SIZES],
        *[(applications.MobileNetV2, {"input_shape": (size, size, 3)})
          for size in MOBILENET_V2_SIZES],
        (applications.EfficientNetB0, {}),
        (applications.ResNet50, {}),
        (applications.VGG16, {}),
    ]  # fmt: skip
    for build, options in builds:
        print(f"fetching {build.__name__} {options}", flush=True)
        build(include_top=False, weights="imagenet", **options)
        keras.backend.clear_session()

    # Seed 003's base model: MobileNetV2 with its ImageNet classifier, and the class names,
    # which decode_predictions caches as models/imagenet_class_index.json (trainer/embedder.py)
    print("fetching MobileNetV2 with its ImageNet top and the class index", flush=True)
    applications.MobileNetV2(include_top=True, weights="imagenet")
    applications.imagenet_utils.decode_predictions(np.zeros((1, 1000)))
    keras.backend.clear_session()

    # Detection encoders: keras-hub presets (Kaggle), saved as plain preset directories that
    # the trainer loads with from_preset(<dir>) and no network.
    import keras_hub  # noqa: PLC0415

    for preset in IMAGENET_PRESETS.values():
        print(f"fetching keras-hub preset {preset}", flush=True)
        backbone = keras_hub.models.ResNetBackbone.from_preset(preset)
        backbone.save_to_preset(str(Path(keras_home) / KERAS_HUB_PRESETS_DIR / preset))
        keras.backend.clear_session()

    models_dir = Path(keras_home) / "models"
    expected = [*all_imagenet_weights_file_names(), WITH_TOP_FILE, CLASS_INDEX_FILE]
    missing = [name for name in expected if not (models_dir / name).is_file()]
    if missing:
        print(f"missing after download: {', '.join(missing)}", file=sys.stderr)
        return 1
    for preset in IMAGENET_PRESETS.values():
        resolve_keras_hub_preset(preset, {WEIGHTS_DIR_VARIABLE: keras_home})  # raises if absent
    print(f"{len(all_imagenet_weights_file_names())} weights files in {models_dir}, "
          f"{len(IMAGENET_PRESETS)} keras-hub presets")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
