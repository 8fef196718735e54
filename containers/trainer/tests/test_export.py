from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from trainer.errors import ExportCheckError
from trainer.export import check_onnx, export_onnx


def _model_with_adapted_normalization() -> keras.Model:
    """Like EfficientNet's stem: a Normalization whose statistics come from its variables
    (as after loading weights), not from constructor arguments."""
    inputs = keras.Input((8, 8, 3), name="image")
    normalization = keras.layers.Normalization(axis=-1)
    x = normalization(inputs)
    normalization.adapt_mean.assign(np.array([100.0, 120.0, 140.0]))
    normalization.adapt_variance.assign(np.array([400.0, 900.0, 2500.0]))
    normalization.finalize_state()
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _pixels(count: int = 4) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (count, 8, 8, 3)).astype(np.float32)


def test_adapted_normalization_exports_to_a_self_contained_onnx(tmp_path: Path) -> None:
    model = _model_with_adapted_normalization()
    export_onnx(model, tmp_path / "m.onnx", image_size=8)
    check = check_onnx(model, tmp_path / "m.onnx", _pixels())
    assert check.images == 4 and check.max_abs_diff < 1e-6
    assert check.input_name == "image" and check.output_name


def test_check_fails_when_onnx_and_keras_disagree(tmp_path: Path) -> None:
    exported = _model_with_adapted_normalization()
    export_onnx(exported, tmp_path / "m.onnx", image_size=8)
    other = _model_with_adapted_normalization()  # same graph, different random weights
    with pytest.raises(ExportCheckError, match=r"differ from Keras by up to .* on 4 images"):
        check_onnx(other, tmp_path / "m.onnx", _pixels())


def test_check_fails_on_non_finite_probabilities(tmp_path: Path) -> None:
    model = _model_with_adapted_normalization()
    dense = model.layers[-1]
    dense.kernel.assign(np.full(dense.kernel.shape, np.nan, dtype=np.float32))
    export_onnx(model, tmp_path / "m.onnx", image_size=8)
    with pytest.raises(ExportCheckError, match="NaN or infinite"):
        check_onnx(model, tmp_path / "m.onnx", _pixels())
