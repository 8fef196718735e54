from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from trainyard.params import ClassifierParams, normalise_exports, to_hyperparameters


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("epochs", 501),
        ("batch_size", 0),
        ("learning_rate", 0),
        ("learning_rate", 2),
        ("image_size", 16),
        ("image_size", 1024),
        ("validation_split", 0.95),
        ("lr_gamma", 0),
        ("backbone", "alexnet"),
        ("weights", "random"),
        ("layers_to_retrain", -1),
        ("alpha", 0.3),
    ],
)
def test_out_of_range_params_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ClassifierParams.model_validate(
            {field: value, **({"backbone": "mobilenet"} if field == "alpha" else {})}
        )
    assert field in str(info.value)


def test_unknown_params_are_refused() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        ClassifierParams.model_validate({"epoch": 3})


def test_alpha_needs_mobilenet_and_small_cnn_has_no_imagenet_weights() -> None:
    with pytest.raises(ValidationError, match="alpha applies only"):
        ClassifierParams(backbone="resnet50", alpha=0.5)
    with pytest.raises(ValidationError, match="no ImageNet weights"):
        ClassifierParams(backbone="small_cnn", weights="imagenet")


def test_exports_always_include_onnx_and_refuse_unknown_formats() -> None:
    assert normalise_exports(None) == ["keras", "onnx", "tflite"]
    assert normalise_exports(["tflite"]) == ["tflite", "onnx"]
    with pytest.raises(ValueError, match="coreml"):
        normalise_exports(["coreml"])


def test_hyperparameters_are_json_strings_as_sagemaker_requires() -> None:
    encoded = to_hyperparameters("job_1", "classification", ClassifierParams(epochs=3), ["onnx"])
    assert all(isinstance(v, str) for v in encoded.values())
    assert json.loads(encoded["epochs"]) == 3
    assert json.loads(encoded["weights"]) is None
    assert json.loads(encoded["exports"]) == ["onnx"]
    assert json.loads(encoded["job_id"]) == "job_1"
