"""The detector: keras-hub's RetinaNetObjectDetector on a ResNet encoder with a feature
pyramid, and the export model that decodes its anchors inside the graph.

keras-hub (not keras.applications) provides the RetinaNet heads, its focal/Huber loss, the
anchor matching and NMS; the encoder is a keras-hub ResNetBackbone made from config (from
scratch) or loaded from a baked keras-hub preset directory (ImageNet weights).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_hub
import numpy as np

from .contract import DetectionConfig

log = logging.getLogger(__name__)

BOX_FORMAT = "xyxy"  # everywhere in this package: x_min, y_min, x_max, y_max in pixels
MIN_LEVEL = 3
ASPECT_RATIOS = (0.5, 1.0, 2.0)
SCALES_PER_OCTAVE = 3
# exp() of a box size delta above this would overflow float32 on a diverged model; a trained
# one predicts |delta| of about 1. Only the exported graph clamps (keras-hub does not).
MAX_SIZE_DELTA = 10.0
INPUT_NAME = "images"

# ResNet encoders as keras-hub configures them; resnet_small is ResNet-18 with one block per
# stage instead of two: half the depth, for CPU training.
_ENCODERS: dict[str, dict[str, Any]] = {
    "resnet_small": {"blocks": [1, 1, 1, 1], "block_type": "basic_block"},
    "resnet18": {"blocks": [2, 2, 2, 2], "block_type": "basic_block"},
    "resnet50": {"blocks": [3, 4, 6, 3], "block_type": "bottleneck_block"},
}
# Fewer convolutions before the logits in the small model's heads: the heads (256 filters on
# every pyramid level) cost more than its encoder.
_HEAD_CONV_LAYERS = {"resnet_small": 2, "resnet18": 4, "resnet50": 4}


@dataclass(frozen=True)
class AnchorSettings:
    """RetinaNet's anchors: 4 × the level's stride (32 px on level 3), three scales an octave
    apart and three aspect ratios per position; levels up to one whose anchors cover the
    image. Anchors of 2 × stride were tried at 128 px: with 8 px between them few reach IoU
    0.5 with an object, and the shapes set stalled at mAP@0.5 0.1 where these reach 0.56
    (bench/RESULTS.md)."""

    max_level: int
    anchor_size: float = 4.0

    @classmethod
    def for_image_size(cls, image_size: int) -> AnchorSettings:
        # 128 px: 32..~200 px anchors on levels 3..5; 256: up to ~400 on 3..6; 512+: 3..7.
        if image_size < 256:
            return cls(max_level=5)
        if image_size < 512:
            return cls(max_level=6)
        return cls(max_level=7)

    def generator(self) -> keras_hub.layers.AnchorGenerator:
        return keras_hub.layers.AnchorGenerator(
            BOX_FORMAT,
            min_level=MIN_LEVEL,
            max_level=self.max_level,
            num_scales=SCALES_PER_OCTAVE,
            aspect_ratios=list(ASPECT_RATIOS),
            anchor_size=self.anchor_size,
        )


def build_encoder(config: DetectionConfig, preset_dir: Path | None) -> keras.Model:
    shape = (config.image_size, config.image_size, 3)
    if preset_dir is not None:
        log.info("loading ImageNet weights from keras-hub preset %s", preset_dir)
        return keras_hub.models.ResNetBackbone.from_preset(str(preset_dir), image_shape=shape)
    encoder = _ENCODERS[config.backbone]
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=encoder["blocks"],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=encoder["block_type"],
        image_shape=shape,
    )


def build_detector(
    config: DetectionConfig, num_classes: int, preset_dir: Path | None = None
) -> keras_hub.models.RetinaNetObjectDetector:
    """A RetinaNet taking 0..255 RGB images: its preprocessor scales them to 0..1, the input
    the encoder is trained on (keras-hub's ResNet presets expect the same)."""
    anchors = AnchorSettings.for_image_size(config.image_size)
    shape = (config.image_size, config.image_size, 3)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=build_encoder(config, preset_dir),
        min_level=MIN_LEVEL,
        max_level=anchors.max_level,
        use_p5=False,
        image_shape=shape,
    )
    preprocessor = keras_hub.models.RetinaNetObjectDetectorPreprocessor(
        image_converter=keras_hub.layers.RetinaNetImageConverter(scale=1.0 / 255.0)
    )
    return keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=num_classes,
        bounding_box_format=BOX_FORMAT,
        anchor_generator=anchors.generator(),
        pre_logits_num_conv_layers=_HEAD_CONV_LAYERS[config.backbone],
        preprocessor=preprocessor,
    )


def anchor_centers_and_sizes(
    detector: keras_hub.models.RetinaNetObjectDetector, image_size: int
) -> np.ndarray:
    """Every anchor, in the order of the heads' outputs, as (cx, cy, w, h): (anchors, 4)."""
    probe = np.zeros((1, image_size, image_size, 3), dtype=np.float32)
    per_level = detector.anchor_generator(probe)
    boxes = np.concatenate([keras.ops.convert_to_numpy(b) for b in per_level.values()], axis=0)
    sizes = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + sizes / 2, sizes], axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="trainyard")
class AnchorBoxDecoder(keras.layers.Layer):
    """Box regression deltas (center_xywh encoding, keras-hub's RetinaNet default, variance
    1) to x_min, y_min, x_max, y_max pixels: center = delta_xy × anchor_wh + anchor_xy,
    size = exp(delta_wh) × anchor_wh."""

    def __init__(self, anchors: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._anchors = np.asarray(anchors, dtype=np.float32)

    def call(self, deltas: Any) -> Any:
        anchors = keras.ops.convert_to_tensor(self._anchors)
        centers = deltas[..., :2] * anchors[:, 2:] + anchors[:, :2]
        sizes = keras.ops.exp(keras.ops.minimum(deltas[..., 2:], MAX_SIZE_DELTA)) * anchors[:, 2:]
        return keras.ops.concatenate([centers - sizes / 2, centers + sizes / 2], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "anchors": self._anchors.tolist()}


def build_export_model(
    detector: keras_hub.models.RetinaNetObjectDetector, image_size: int
) -> keras.Model:
    """images (0..255) → {"boxes": (N, anchors, 4) xyxy input pixels, "scores": (N, anchors,
    classes) sigmoid}: the raw heads plus what keras-hub's predict does before NMS."""
    images = keras.Input((image_size, image_size, 3), name=INPUT_NAME)
    scaled = keras.layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(images)
    heads = detector(scaled)
    decoder = AnchorBoxDecoder(anchor_centers_and_sizes(detector, image_size), name="boxes")
    boxes = decoder(heads["bbox_regression"])
    scores = keras.layers.Activation("sigmoid", name="scores")(heads["cls_logits"])
    return keras.Model(images, {"boxes": boxes, "scores": scores}, name="detector_export")


def anchor_count(image_size: int) -> int:
    settings = AnchorSettings.for_image_size(image_size)
    per_position = len(ASPECT_RATIOS) * SCALES_PER_OCTAVE
    return sum(
        math.ceil(image_size / 2**level) ** 2 * per_position
        for level in range(MIN_LEVEL, settings.max_level + 1)
    )
