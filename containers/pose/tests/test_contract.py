"""The pose hyperparameters as the service sends them: defaults, bounds, unknown keys, mode."""

from __future__ import annotations

from typing import Any

import pytest

from jobkit.errors import ConfigError
from jobkit.hyperparameters import decode_hyperparameters
from pose.contract import (
    InferConfig,
    TrainConfig,
    check_nodes,
    parse_infer_config,
    parse_mode,
    parse_train_config,
    with_resolved_seed,
)


def encoded(**values: Any) -> dict[str, Any]:
    """As read from SageMaker's hyperparameters.json: every value a JSON string."""
    import json  # noqa: PLC0415

    return decode_hyperparameters({k: json.dumps(v) for k, v in {"job_id": "j", **values}.items()})


def test_train_defaults() -> None:
    assert parse_train_config(encoded()) == TrainConfig(
        job_id="j",
        model_type="single_instance",
        backbone="unet",
        epochs=50,
        batch_size=4,
        learning_rate=1e-4,
        validation_fraction=0.1,
        sigma=5.0,
        output_stride=2,
        input_scale=1.0,
        augmentation=False,
        seed=None,
        anchor_part=None,
        max_instances=None,
    )


def test_train_values_are_read_from_json_strings() -> None:
    config = parse_train_config(
        encoded(
            task="pose",
            mode="train",
            model_type="topdown",
            backbone="convnext",
            epochs=3,
            batch_size=8,
            learning_rate=0.5,
            validation_fraction=0,
            sigma=2.5,
            output_stride=4,
            input_scale=0.5,
            augmentation=True,
            seed=7,
            anchor_part="body",
            max_instances=2,
        )
    )
    assert (config.model_type, config.backbone, config.epochs, config.output_stride) == (
        "topdown",
        "convnext",
        3,
        4,
    )
    assert config.validation_fraction == 0.0 and config.augmentation is True
    assert (config.seed, config.anchor_part, config.max_instances) == (7, "body", 2)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("epochs", 0, "hyperparameter epochs=0 is out of bounds: must be in [1, 1000]"),
        ("epochs", 1001, "epochs=1001 is out of bounds"),
        ("epochs", 2.5, "hyperparameter epochs=2.5 must be an integer"),
        ("batch_size", 257, "batch_size=257 is out of bounds"),
        ("learning_rate", 0, "learning_rate=0.0 is out of bounds: must be in (0, 1]"),
        ("learning_rate", 1.5, "learning_rate=1.5 is out of bounds"),
        ("validation_fraction", 0.95, "validation_fraction=0.95 is out of bounds"),
        ("validation_fraction", -0.1, "validation_fraction=-0.1 is out of bounds"),
        ("sigma", 0, "sigma=0.0 is out of bounds: must be in (0, 50]"),
        ("sigma", 51, "sigma=51.0 is out of bounds"),
        ("output_stride", 3, "output_stride=3 is out of bounds: must be one of 1, 2, 4, 8, 16, 32"),
        ("input_scale", 0, "input_scale=0.0 is out of bounds: must be in (0, 4]"),
        ("input_scale", 4.5, "input_scale=4.5 is out of bounds"),
        ("augmentation", "yes", 'augmentation="yes" must be true or false'),
        ("seed", -1, "seed=-1 is out of bounds"),
        ("max_instances", 0, "max_instances=0 is out of bounds"),
        ("model_type", "hourglass", "model_type='hourglass' is out of bounds: must be one of"),
        ("backbone", "resnet", "backbone='resnet' is out of bounds: must be one of unet, "),
        ("anchor_part", 3, "anchor_part=3 must be a string"),
        ("task", "classification", "task='classification' is not served here"),
        ("mode", "evaluate", "mode='evaluate' is out of bounds: must be one of train, infer"),
    ],
)
def test_train_values_out_of_bounds(key: str, value: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_train_config(encoded(**{key: value}))
    assert reason in str(error.value)


def test_unknown_keys_are_refused_per_mode() -> None:
    with pytest.raises(ConfigError, match="unknown hyperparameter\\(s\\): frame_start, typo"):
        parse_train_config(encoded(frame_start=0, typo=1))
    with pytest.raises(ConfigError, match="unknown hyperparameter\\(s\\): epochs"):
        parse_infer_config(encoded(mode="infer", epochs=3))


def test_mode_defaults_to_train() -> None:
    assert parse_mode(encoded()) == "train"
    assert parse_mode(encoded(mode="infer", task="pose")) == "infer"


def test_a_missing_seed_is_drawn_and_a_given_one_kept() -> None:
    drawn = with_resolved_seed(parse_train_config(encoded()))
    assert drawn.seed is not None and 0 <= drawn.seed <= 2**31 - 1
    assert with_resolved_seed(parse_train_config(encoded(seed=5))).seed == 5


def test_effective_config_has_every_hyperparameter_but_the_job_id() -> None:
    effective = parse_train_config(encoded(seed=1)).effective()
    assert "job_id" not in effective and effective["seed"] == 1 and len(effective) == 13


def test_infer_defaults_and_values() -> None:
    assert parse_infer_config(encoded(mode="infer")) == InferConfig(job_id="j")
    config = parse_infer_config(
        encoded(
            mode="infer",
            frame_start=2,
            frame_end=10,
            frame_stride=3,
            tracking=True,
            batch_size=16,
            peak_threshold=0.5,
            max_instances=3,
            preview="none",
            nodes=["head", "tail"],
        )
    )
    assert (config.frame_start, config.frame_end, config.frame_stride) == (2, 10, 3)
    assert config.tracking and config.nodes == ("head", "tail")
    assert not config.preview_video and not config.preview_image
    assert parse_infer_config(encoded(mode="infer", preview="image")).preview_image


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"frame_start": -1}, "frame_start=-1 is out of bounds"),
        ({"frame_start": 5, "frame_end": 5}, "frame_end=5 is out of bounds: must be in [6, inf)"),
        ({"frame_stride": 0}, "frame_stride=0 is out of bounds"),
        ({"peak_threshold": 1.5}, "peak_threshold=1.5 is out of bounds: must be in [0, 1]"),
        ({"batch_size": 0}, "batch_size=0 is out of bounds"),
        ({"preview": "gif"}, "preview='gif' is out of bounds: must be one of video, image, both"),
        ({"nodes": "head"}, 'nodes="head" must be a list of strings'),
        ({"tracking": 1}, "tracking=1 must be true or false"),
    ],
)
def test_infer_values_out_of_bounds(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_infer_config(encoded(mode="infer", **values))
    assert reason in str(error.value)


def test_nodes_must_be_the_models_skeleton() -> None:
    check_nodes(None, ["head", "body", "tail"])
    check_nodes(("head", "body", "tail"), ["head", "body", "tail"])
    with pytest.raises(ConfigError) as error:
        check_nodes(("head", "thorax"), ["head", "body", "tail"])
    assert "missing body, tail; not in the model: thorax" in str(error.value)
    with pytest.raises(ConfigError, match="same nodes in another order"):
        check_nodes(("tail", "body", "head"), ["head", "body", "tail"])
