from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import encode_hyperparameters

from jobkit.hyperparameters import decode_hyperparameters, read_hyperparameters
from trainer.contract import DEFAULT_EXPORTS, TrainingConfig, parse_config, with_resolved_seed
from trainer.errors import ConfigError


def parse(**values: Any) -> TrainingConfig:
    return parse_config(decode_hyperparameters(encode_hyperparameters({"job_id": "j", **values})))


def test_each_value_is_json_decoded_and_non_json_strings_are_kept() -> None:
    decoded = decode_hyperparameters(
        {
            "epochs": "5",
            "weights": "null",
            "exports": '["onnx"]',
            "backbone": '"small_cnn"',
            "shuffle": "false",
            "learning_rate": "0.01",
            "job_id": "job_unquoted",  # not JSON: kept as the raw string
        }
    )
    assert decoded == {
        "epochs": 5,
        "weights": None,
        "exports": ["onnx"],
        "backbone": "small_cnn",
        "shuffle": False,
        "learning_rate": 0.01,
        "job_id": "job_unquoted",
    }


def test_defaults_are_the_contract_table() -> None:
    config = parse()
    assert config == TrainingConfig(
        job_id="j",
        task="classification",
        backbone="small_cnn",
        alpha=1.0,
        weights=None,
        epochs=10,
        batch_size=32,
        learning_rate=0.001,
        image_size=224,
        validation_split=0.2,
        layers_to_retrain=None,
        seed=None,
        shuffle=True,
        augment=False,
        lr_step_size=10,
        lr_gamma=1.0,
        exports=("keras", "onnx", "tflite"),
    )


def test_service_encoded_hyperparameters_parse(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    values = {
        "job_id": "job_42", "task": "classification", "backbone": "mobilenet", "alpha": 0.25,
        "weights": "imagenet", "epochs": 3, "batch_size": 8, "learning_rate": 0.01,
        "image_size": 128, "validation_split": 0.0, "layers_to_retrain": 4, "seed": 7,
        "shuffle": False, "augment": True, "lr_step_size": 2, "lr_gamma": 0.5,
        "exports": ["tflite", "onnx"],
    }  # fmt: skip
    path.write_text(json.dumps(encode_hyperparameters(values)))
    config = parse_config(read_hyperparameters(path))
    assert config.backbone == "mobilenet" and config.alpha == 0.25
    assert config.weights == "imagenet" and config.uses_imagenet_weights
    assert (config.epochs, config.batch_size, config.image_size) == (3, 8, 128)
    assert config.layers_to_retrain == 4 and config.seed == 7
    assert config.shuffle is False and config.augment is True
    assert config.exports == ("onnx", "tflite")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 0), ("epochs", 501), ("batch_size", 0), ("batch_size", 513),
        ("learning_rate", 0), ("learning_rate", 1.5), ("image_size", 31), ("image_size", 769),
        ("validation_split", -0.1), ("validation_split", 0.95), ("layers_to_retrain", -1),
        ("lr_step_size", 0), ("lr_gamma", 0), ("lr_gamma", 1.01), ("alpha", 0.3),
        ("backbone", "resnet18"), ("weights", "random"), ("exports", ["pt"]),
        ("seed", -1), ("epochs", True), ("epochs", "ten"), ("epochs", 2.5),
        ("shuffle", "yes"), ("exports", "onnx"), ("learning_rate", "fast"),
    ],
)  # fmt: skip
def test_out_of_bounds_or_mistyped_values_are_refused_by_name(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"hyperparameter {key}"):
        parse(**{key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 1), ("epochs", 500), ("batch_size", 512), ("learning_rate", 1),
        ("image_size", 32), ("image_size", 768), ("validation_split", 0), ("validation_split", 0.9),
        ("layers_to_retrain", 0), ("lr_gamma", 1), ("seed", 0),
    ],
)  # fmt: skip
def test_bounds_are_inclusive_where_the_contract_says_so(key: str, value: Any) -> None:
    assert getattr(parse(**{key: value}), key) == value


def test_alpha_is_for_mobilenet_only() -> None:
    assert parse(backbone="mobilenet", alpha=0.5).alpha == 0.5
    with pytest.raises(ConfigError, match="alpha applies only to backbone mobilenet"):
        parse(backbone="mobilenet_v2", alpha=0.5)


def test_small_cnn_has_no_imagenet_weights() -> None:
    with pytest.raises(ConfigError, match="small_cnn has no ImageNet weights"):
        parse(weights="imagenet")


def test_job_id_task_and_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="job_id is required"):
        parse_config({"epochs": 1})
    # detection has its own config (trainer.detection.contract); the entrypoint dispatches
    with pytest.raises(ConfigError, match="task='detection' is out of bounds"):
        parse(task="detection")
    with pytest.raises(ConfigError, match=r"unknown hyperparameter.*epochz"):
        parse(epochz=3)


def test_onnx_is_always_exported_in_canonical_order_without_repeats() -> None:
    assert parse(exports=[]).exports == ("onnx",)
    assert parse(exports=["tflite", "keras", "tflite"]).exports == ("keras", "onnx", "tflite")
    assert parse().exports == DEFAULT_EXPORTS == ("keras", "onnx", "tflite")
    assert parse(exports=["pytorchmobile", "coreml", "torch"]).exports == (
        "onnx",
        "coreml",
        "torch",
        "pytorchmobile",
    )


def test_missing_or_broken_hyperparameters_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_hyperparameters(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_hyperparameters(broken)


def test_a_missing_seed_is_drawn_once_and_a_given_seed_kept() -> None:
    assert with_resolved_seed(parse(seed=5)).seed == 5
    drawn = with_resolved_seed(parse()).seed
    assert isinstance(drawn, int) and 0 <= drawn <= 2**31 - 1
