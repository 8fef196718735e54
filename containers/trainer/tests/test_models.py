from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils

from trainer.contract import parse_config
from trainer.layers import CaffeImagenetPreprocessing
from trainer.models import (
    EFFICIENTNET_IMAGENET_STDDEV,
    build_backbone,
    build_classifier,
    count_backbone_layers,
    preprocessing_layers,
)
from trainer.weights import imagenet_weights_file_name


class _Requested(Exception):
    pass


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
@pytest.mark.parametrize(
    ("backbone", "alpha", "size", "application", "options"),
    [
        ("mobilenet", 0.25, 32, "MobileNet", {"alpha": 0.25}),
        ("mobilenet", 0.5, 128, "MobileNet", {"alpha": 0.5}),
        ("mobilenet_v2", 1.0, 96, "MobileNetV2", {}),
        ("mobilenet_v2", 1.0, 50, "MobileNetV2", {}),
        ("efficientnet_b0", 1.0, 32, "EfficientNetB0", {}),
        ("resnet50", 1.0, 32, "ResNet50", {}),
        ("vgg16", 1.0, 32, "VGG16", {}),
    ],
)
def test_weights_file_name_is_the_one_keras_applications_downloads(
    monkeypatch: pytest.MonkeyPatch,
    backbone: str,
    alpha: float,
    size: int,
    application: str,
    options: dict[str, Any],
) -> None:
    requested: list[str] = []

    def capture_instead_of_downloading(fname: str, *args: object, **kwargs: object) -> str:
        requested.append(fname)
        raise _Requested

    monkeypatch.setattr(file_utils, "get_file", capture_instead_of_downloading)
    build = getattr(keras.applications, application)
    with pytest.raises(_Requested):  # weights="imagenet" is the applications' default
        build(input_shape=(size, size, 3), include_top=False, **options)
    assert requested == [imagenet_weights_file_name(backbone, alpha, size)]


def _pixels(shape: tuple[int, ...] = (2, 16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)


@pytest.mark.parametrize(
    ("backbone", "reference"),
    [
        ("mobilenet", keras.applications.mobilenet.preprocess_input),
        ("mobilenet_v2", keras.applications.mobilenet_v2.preprocess_input),
        ("resnet50", keras.applications.resnet50.preprocess_input),
        ("vgg16", keras.applications.vgg16.preprocess_input),
    ],
)
def test_in_model_preprocessing_equals_keras_preprocess_input(
    backbone: str, reference: Any
) -> None:
    pixels = _pixels()
    expected = reference(pixels.copy())
    actual = pixels
    for layer in preprocessing_layers(backbone):
        actual = keras.ops.convert_to_numpy(layer(actual))
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_caffe_layer_round_trips_through_keras_file_and_onnx(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 3), name="image")
    x = CaffeImagenetPreprocessing()(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    pixels = _pixels((3, 8, 8, 3))
    expected = model.predict(pixels, verbose=0)

    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert any(isinstance(layer, CaffeImagenetPreprocessing) for layer in reloaded.layers)
    np.testing.assert_allclose(reloaded.predict(pixels, verbose=0), expected, atol=1e-6)

    spec = [tf.TensorSpec((None, 8, 8, 3), tf.float32, name="image")]
    model.export(str(tmp_path / "m.onnx"), format="onnx", verbose=False, input_signature=spec)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    # ONNX Runtime and TensorFlow pick their own float32 kernels (which TensorFlow picks can
    # depend on what ran before in the process): a few 1e-6 apart is the same model. The
    # contract's export check allows 1e-4.
    np.testing.assert_allclose(session.run(None, {"image": pixels})[0], expected, atol=1e-5)


def _config(**values: Any) -> Any:
    return parse_config({"job_id": "j", "image_size": 32, **values})


def _trainable_backbone_layers(backbone: keras.Model) -> list[str]:
    return [layer.name for layer in backbone.layers if layer.trainable and layer.trainable_weights]


def test_layers_to_retrain_from_scratch() -> None:
    everything = build_classifier(_config(backbone="mobilenet", alpha=0.25), num_classes=3)
    assert all(layer.trainable for layer in everything.backbone.layers)
    assert everything.backbone.trainable_weights
    assert everything.model.output_shape == (None, 3)

    frozen = build_classifier(_config(backbone="mobilenet", alpha=0.25, layers_to_retrain=0), 3)
    assert frozen.backbone.trainable_weights == []
    assert len(frozen.head.trainable_weights) == 2  # Dense kernel and bias

    last_three = build_classifier(_config(backbone="mobilenet", alpha=0.25, layers_to_retrain=3), 3)
    layers = [
        layer
        for layer in last_three.backbone.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    assert count_backbone_layers(last_three.backbone) == len(layers) == 86
    assert [layer.trainable for layer in layers] == [False] * 83 + [True] * 3
    # The tail of MobileNet is conv_pw_13_bn, its ReLU and the pooling: only the BN learns.
    assert _trainable_backbone_layers(last_three.backbone) == ["conv_pw_13_bn"]


def _save_legacy_h5(model: keras.Model, path: Path) -> None:
    """Write weights in the layout of the files keras.applications downloads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def test_imagenet_weights_load_from_the_file_and_freeze_the_backbone(tmp_path: Path) -> None:
    config = _config(backbone="mobilenet", alpha=0.25, weights="imagenet")
    keras.utils.set_random_seed(123)
    pretrained = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.25, include_top=False, weights=None, pooling="avg"
    )
    weights_file = tmp_path / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    _save_legacy_h5(pretrained, weights_file)

    keras.utils.set_random_seed(7)  # a different initialisation, overwritten by the file
    classifier = build_classifier(config, num_classes=4, weights_file=weights_file)
    for loaded, saved in zip(classifier.backbone.weights, pretrained.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded),
                                      keras.ops.convert_to_numpy(saved))  # fmt: skip
    assert classifier.backbone.trainable_weights == []  # null layers_to_retrain: frozen


def test_efficientnet_from_a_weights_path_normalises_like_weights_imagenet(
    tmp_path: Path,
) -> None:
    pretrained = keras.applications.EfficientNetB0(
        input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg"
    )
    normalization = next(
        layer for layer in pretrained.layers if isinstance(layer, keras.layers.Normalization)
    )
    mean, variance = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2
    normalization.adapt_mean.assign(mean)
    normalization.adapt_variance.assign(variance)
    weights_file = tmp_path / "efficientnetb0_notop.h5"
    _save_legacy_h5(pretrained, weights_file)

    backbone = build_backbone(_config(backbone="efficientnet_b0", weights="imagenet"), weights_file)
    stem = keras.Model(
        backbone.input,
        next(x for x in backbone.layers if isinstance(x, keras.layers.Normalization)).output,
    )
    pixels = _pixels((1, 32, 32, 3))
    # keras.applications with weights="imagenet": Rescaling(1/255), Normalization, then
    # Rescaling(1/sqrt(stddev)).
    expected = (pixels / 255.0 - mean) / np.sqrt(variance) / np.sqrt(EFFICIENTNET_IMAGENET_STDDEV)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(stem(pixels)), expected, rtol=1e-5, atol=1e-5
    )
