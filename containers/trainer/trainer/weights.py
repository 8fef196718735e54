"""Where ImageNet weights live: the Keras cache layout under TRAINYARD_WEIGHTS_DIR.

The file names are the ones keras.applications itself downloads (and caches as
`<KERAS_HOME>/models/<name>`), so the Docker build can fill the directory by simply
instantiating each application with weights="imagenet". Nothing here downloads anything.
No TensorFlow import, so a missing file fails the job in well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .contract import TrainingConfig
from .detection.contract import IMAGENET_PRESETS, DetectionConfig
from .errors import ConfigError, WeightsNotFoundError

WEIGHTS_DIR_VARIABLE = "TRAINYARD_WEIGHTS_DIR"

# Input sizes keras.applications has ImageNet weights for; any other size gets the 224 file
# (the convolution kernels do not depend on the input size, only the training resolution).
MOBILENET_SIZES = (128, 160, 192, 224)
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)
_MOBILENET_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def imagenet_weights_file_name(backbone: str, alpha: float, image_size: int) -> str:
    """The no-top weights file keras.applications would download for this configuration."""
    if backbone == "mobilenet":
        rows = image_size if image_size in MOBILENET_SIZES else 224
        return f"mobilenet_{_MOBILENET_ALPHA_TEXT[alpha]}_{rows}_tf_no_top.h5"
    if backbone == "mobilenet_v2":
        rows = image_size if image_size in MOBILENET_V2_SIZES else 224
        # Our mobilenet_v2 is always alpha 1.0 (the contract's alpha is MobileNet v1 only).
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    if backbone == "efficientnet_b0":
        return "efficientnetb0_notop.h5"
    if backbone == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if backbone == "vgg16":
        return "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    raise ConfigError(f"backbone {backbone} has no ImageNet weights")


def all_imagenet_weights_file_names() -> list[str]:
    """Every file a job can ask for: what the container image must hold."""
    names = {
        imagenet_weights_file_name("mobilenet", a, s)
        for a in _MOBILENET_ALPHA_TEXT
        for s in MOBILENET_SIZES
    }
    names |= {imagenet_weights_file_name("mobilenet_v2", 1.0, s) for s in MOBILENET_V2_SIZES}
    names |= {
        imagenet_weights_file_name(b, 1.0, 224) for b in ("efficientnet_b0", "resnet50", "vgg16")
    }
    return sorted(names)


def resolve_imagenet_weights(config: TrainingConfig, environ: Mapping[str, str]) -> Path | None:
    """The weights file for the job, None when it trains from scratch.

    Raises WeightsNotFoundError naming the file and the setting when it is absent.
    """
    if not config.uses_imagenet_weights:
        return None
    name = imagenet_weights_file_name(config.backbone, config.alpha, config.image_size)
    weights_dir = environ.get(WEIGHTS_DIR_VARIABLE)
    if not weights_dir:
        raise WeightsNotFoundError(
            f"ImageNet weights file {name} not found: {WEIGHTS_DIR_VARIABLE} is not set "
            f"(it must name a directory holding models/{name}); use weights null to train "
            "from scratch"
        )
    path = Path(weights_dir) / "models" / name
    if not path.is_file():
        raise WeightsNotFoundError(
            f"ImageNet weights file {name} not found: {path} does not exist "
            f"({WEIGHTS_DIR_VARIABLE}={weights_dir}); use weights null to train from scratch"
        )
    return path


KERAS_HUB_PRESETS_DIR = "keras_hub"


def resolve_detection_weights(config: DetectionConfig, environ: Mapping[str, str]) -> Path | None:
    """The baked keras-hub preset of a detection job's encoder, None when it trains from
    scratch (resolve_imagenet_weights' counterpart)."""
    if not config.uses_imagenet_weights:
        return None
    return resolve_keras_hub_preset(IMAGENET_PRESETS[config.backbone], environ)


def resolve_keras_hub_preset(preset: str, environ: Mapping[str, str]) -> Path:
    """The baked keras-hub preset directory `<TRAINYARD_WEIGHTS_DIR>/keras_hub/<preset>/`
    (config.json + weights, as `save_to_preset` writes it). Raises WeightsNotFoundError
    naming the directory and the setting when it is absent; nothing is downloaded."""
    weights_dir = environ.get(WEIGHTS_DIR_VARIABLE)
    where = f"{KERAS_HUB_PRESETS_DIR}/{preset}"
    if not weights_dir:
        raise WeightsNotFoundError(
            f"ImageNet weights (keras-hub preset {preset}) not found: {WEIGHTS_DIR_VARIABLE} "
            f"is not set (it must name a directory holding {where}/); use weights null to "
            "train from scratch"
        )
    path = Path(weights_dir) / KERAS_HUB_PRESETS_DIR / preset
    if not (path / "config.json").is_file():
        raise WeightsNotFoundError(
            f"ImageNet weights (keras-hub preset {preset}) not found: {path}/config.json does "
            f"not exist ({WEIGHTS_DIR_VARIABLE}={weights_dir}); use weights null to train from "
            "scratch"
        )
    return path
