"""The classifier: in-model preprocessing → backbone (pooled features) → Dropout + softmax.

The model takes RGB float32 pixels 0..255 (the contract's ONNX input) and normalises them
itself with ordinary Keras layers, so exports need no outside preprocessing code. It is
built from three pieces that share their layers:

- `feature_extractor`: image → pooled backbone features,
- `head`: features → class probabilities (the only part trained on cached features),
- `model`: head(feature_extractor(image)), the model that is trained end to end or exported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .contract import TrainingConfig
from .layers import CaffeImagenetPreprocessing

INPUT_NAME = "image"
HEAD_DROPOUT = 0.2
SMALL_CNN_FILTERS = (32, 64, 128, 128)
# keras.applications.efficientnet: ImageNet per-channel standard deviations (RGB).
EFFICIENTNET_IMAGENET_STDDEV = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Classifier:
    model: keras.Model
    feature_extractor: keras.Model
    head: keras.Model
    backbone: keras.Model


def effective_layers_to_retrain(config: TrainingConfig) -> int | None:
    """How many trailing backbone layers train; None means all of them.

    The contract's default (null) fine-tunes nothing on ImageNet weights and trains the
    whole backbone from scratch otherwise.
    """
    if config.layers_to_retrain is not None:
        return config.layers_to_retrain
    return 0 if config.uses_imagenet_weights else None


def build_classifier(
    config: TrainingConfig, num_classes: int, weights_file: Path | None = None
) -> Classifier:
    if config.uses_imagenet_weights and weights_file is None:
        raise ValueError("weights imagenet needs the weights file (see weights.py)")
    size = config.image_size
    inputs = keras.Input((size, size, 3), name=INPUT_NAME, dtype="float32")
    x = inputs
    for layer in preprocessing_layers(config.backbone):
        x = layer(x)
    backbone = build_backbone(config, weights_file)
    set_trainable_backbone_layers(backbone, effective_layers_to_retrain(config))
    features = backbone(x)
    feature_extractor = keras.Model(inputs, features, name="feature_extractor")

    head = keras.Sequential(
        [
            keras.Input((features.shape[-1],), name="features"),
            keras.layers.Dropout(HEAD_DROPOUT, name="head_dropout"),
            keras.layers.Dense(num_classes, activation="softmax", name="probabilities"),
        ],
        name="head",
    )
    model = keras.Model(inputs, head(features), name=f"trainyard_{config.backbone}")
    return Classifier(
        model=model, feature_extractor=feature_extractor, head=head, backbone=backbone
    )


def preprocessing_layers(backbone: str) -> list[keras.layers.Layer]:
    """Each backbone's keras.applications `preprocess_input`, as layers."""
    if backbone == "small_cnn":
        return [keras.layers.Rescaling(1.0 / 255.0, name="scale_to_unit")]
    if backbone in ("mobilenet", "mobilenet_v2"):
        # "tf" mode: x / 127.5 - 1, i.e. [-1, 1].
        return [keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_symmetric")]
    if backbone in ("resnet50", "vgg16"):
        return [CaffeImagenetPreprocessing(name="caffe_imagenet_preprocessing")]
    if backbone == "efficientnet_b0":
        # EfficientNet rescales and normalises inside the application model itself.
        return []
    raise ValueError(f"unknown backbone {backbone!r}")


def build_backbone(config: TrainingConfig, weights_file: Path | None) -> keras.Model:
    """The feature extractor without preprocessing, global-average pooled."""
    shape = (config.image_size, config.image_size, 3)
    if config.backbone == "small_cnn":
        return _small_cnn(shape)
    # A file path, never "imagenet": Keras must not try to download anything.
    common = {
        "include_top": False,
        "weights": str(weights_file) if weights_file is not None else None,
        "input_shape": shape,
        "pooling": "avg",
    }
    applications = keras.applications
    if config.backbone == "mobilenet":
        return applications.MobileNet(alpha=config.alpha, **common)
    if config.backbone == "mobilenet_v2":
        return applications.MobileNetV2(**common)
    if config.backbone == "resnet50":
        return applications.ResNet50(**common)
    if config.backbone == "vgg16":
        return applications.VGG16(**common)
    if config.backbone == "efficientnet_b0":
        backbone = applications.EfficientNetB0(**common)
        if weights_file is not None:
            fold_imagenet_stddev_into_normalization(backbone)
        return backbone
    raise ValueError(f"unknown backbone {config.backbone!r}")


def fold_imagenet_stddev_into_normalization(backbone: keras.Model) -> None:
    """Make an EfficientNet loaded from a weights *path* normalise as with weights="imagenet".

    keras.applications adds `Rescaling(1/sqrt(stddev))` after its Normalization layer only
    when called with the literal string "imagenet" (keras-team/keras, TF issue 49930); given
    the same file by path it leaves that layer out. Dividing by sqrt(stddev) after
    `(x - mean) / sqrt(variance)` equals using variance × stddev, so the factor is folded
    into the loaded variance instead of changing the graph.
    """
    normalization = next(
        layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)
    )
    variance = keras.ops.convert_to_numpy(normalization.adapt_variance)
    normalization.adapt_variance.assign(variance * np.array(EFFICIENTNET_IMAGENET_STDDEV))
    normalization.finalize_state()  # the layer snapshots its statistics; refresh them


def set_trainable_backbone_layers(backbone: keras.Model, count: int | None) -> None:
    """Train only the last `count` backbone layers (None: all). Frozen BatchNormalization
    layers run in inference mode, so a frozen backbone computes the same features in
    training as in prediction (what makes feature caching exact)."""
    backbone.trainable = True
    if count is None:
        return
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers[: max(len(layers) - count, 0)]:
        layer.trainable = False
    if count == 0:
        backbone.trainable = False


def _small_cnn(shape: tuple[int, int, int]) -> keras.Model:
    """A compact from-scratch CNN: four 3×3 conv layers with 2×2 max pooling between them.

    No BatchNormalization on purpose: small datasets give few steps per epoch, too few for
    moving statistics to settle, and validation would then run on unsettled statistics.
    """
    inputs = keras.Input(shape, name="small_cnn_input")
    x = inputs
    for block, filters in enumerate(SMALL_CNN_FILTERS, start=1):
        if block > 1:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"block{block}_conv"
        )(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name="small_cnn")


def count_backbone_layers(backbone: keras.Model) -> int:
    return sum(1 for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer))


def describe_trainable(classifier: Classifier) -> str:
    trainable = sum(math.prod(w.shape) for w in classifier.backbone.trainable_weights)
    total = sum(math.prod(w.shape) for w in classifier.backbone.weights)
    return f"{trainable:,} of {total:,} backbone parameters trainable"
