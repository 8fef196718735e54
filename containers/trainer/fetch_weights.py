"""Build-time only: download every ImageNet no-top weights file the trainer can ask for.

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

from trainer.weights import (
    MOBILENET_SIZES,
    MOBILENET_V2_SIZES,
    all_imagenet_weights_file_names,
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

    models_dir = Path(keras_home) / "models"
    missing = [name for name in all_imagenet_weights_file_names()
               if not (models_dir / name).is_file()]  # fmt: skip
    if missing:
        print(f"missing after download: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{len(all_imagenet_weights_file_names())} weights files in {models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
