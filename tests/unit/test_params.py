from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from trainyard.params import ClassifierParams, DetectionParams, normalise_exports, to_hyperparameters


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
    assert normalise_exports(["coreml", "torch", "pytorchmobile", "coreml"]) == [
        "coreml",
        "torch",
        "pytorchmobile",
        "onnx",
    ]
    with pytest.raises(ValueError, match="caffe2"):
        normalise_exports(["caffe2"])


def test_hyperparameters_are_json_strings_as_sagemaker_requires() -> None:
    encoded = to_hyperparameters("job_1", "classification", ClassifierParams(epochs=3), ["onnx"])
    assert all(isinstance(v, str) for v in encoded.values())
    assert json.loads(encoded["epochs"]) == 3
    assert json.loads(encoded["weights"]) is None
    assert json.loads(encoded["exports"]) == ["onnx"]
    assert json.loads(encoded["job_id"]) == "job_1"


# --- detection (docs/job-contract.md, detection) ---------------------------------------------


def test_detection_defaults_are_the_contract_table() -> None:
    assert DetectionParams().model_dump() == {
        "backbone": "resnet_small",
        "weights": None,
        "epochs": 20,
        "batch_size": 16,
        "learning_rate": 0.001,
        "image_size": 256,
        "validation_split": 0.2,
        "seed": None,
        "shuffle": True,
        "augment": True,
        "lr_step_size": 10,
        "lr_gamma": 1.0,
    }


@pytest.mark.parametrize(
    "field,value",
    [
        ("backbone", "small_cnn"),
        ("weights", "coco"),
        ("epochs", 0),
        ("epochs", 501),
        ("batch_size", 0),
        ("batch_size", 257),
        ("learning_rate", 0),
        ("learning_rate", 1.5),
        ("image_size", 32),
        ("image_size", 800),
        ("image_size", 100),  # not a multiple of 32
        ("validation_split", 0.95),
        ("seed", -1),
        ("lr_step_size", 0),
        ("lr_gamma", 0),
        ("alpha", 0.5),  # a classifier parameter
    ],
)
def test_out_of_range_detection_params_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        DetectionParams.model_validate({field: value})
    assert field in str(info.value)


def test_only_resnet18_and_resnet50_have_imagenet_weights() -> None:
    with pytest.raises(ValidationError, match="backbone 'resnet_small' has no ImageNet weights"):
        DetectionParams(weights="imagenet")
    assert DetectionParams(backbone="resnet50", weights="imagenet", image_size=768).image_size == 768


def test_detection_hyperparameters_hold_exactly_the_contract_keys() -> None:
    encoded = to_hyperparameters("job_1", "detection", DetectionParams(image_size=320), ["onnx"])
    assert set(encoded) == {"job_id", "task", *DetectionParams.model_fields, "exports"}
    assert json.loads(encoded["task"]) == "detection" and json.loads(encoded["image_size"]) == 320
