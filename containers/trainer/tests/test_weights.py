"""ImageNet weight files: names and the missing-file error. No TensorFlow needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.contract import parse_config
from trainer.errors import WeightsNotFoundError
from trainer.weights import (
    all_imagenet_weights_file_names,
    imagenet_weights_file_name,
    resolve_imagenet_weights,
)


def test_missing_file_error_names_the_file_and_the_setting(tmp_path: Path) -> None:
    config = parse_config({"job_id": "j", "backbone": "mobilenet_v2", "weights": "imagenet",
                           "image_size": 160})  # fmt: skip
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
    with pytest.raises(WeightsNotFoundError) as missing:
        resolve_imagenet_weights(config, {"TRAINYARD_WEIGHTS_DIR": str(tmp_path)})
    assert name in str(missing.value)
    assert f"TRAINYARD_WEIGHTS_DIR={tmp_path}" in str(missing.value)

    with pytest.raises(WeightsNotFoundError, match="TRAINYARD_WEIGHTS_DIR is not set") as unset:
        resolve_imagenet_weights(config, {})
    assert name in str(unset.value)

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / name).write_bytes(b"h5")
    found = resolve_imagenet_weights(config, {"TRAINYARD_WEIGHTS_DIR": str(tmp_path)})
    assert found == tmp_path / "models" / name


def test_no_weights_file_when_training_from_scratch() -> None:
    config = parse_config({"job_id": "j", "backbone": "resnet50"})
    assert resolve_imagenet_weights(config, {}) is None


def test_sizes_without_their_own_weights_use_the_224_file() -> None:
    assert imagenet_weights_file_name("mobilenet", 0.75, 160) == "mobilenet_7_5_160_tf_no_top.h5"
    assert imagenet_weights_file_name("mobilenet", 0.75, 100) == "mobilenet_7_5_224_tf_no_top.h5"
    assert imagenet_weights_file_name("mobilenet_v2", 1.0, 96).endswith("_1.0_96_no_top.h5")
    assert imagenet_weights_file_name("mobilenet_v2", 1.0, 300).endswith("_1.0_224_no_top.h5")


def test_the_image_must_hold_every_file_a_job_can_ask_for() -> None:
    names = all_imagenet_weights_file_names()
    assert len(names) == 16 + 5 + 3  # mobilenet alphas x sizes, mobilenet_v2 sizes, others
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in names
