"""Fine-tuning from an earlier model (`initial_model`): its weights carry over, known
classes keep their output rows, a new class is learnt, and a mismatch fails before training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from jobkit.errors import ConfigError
from trainer.contract import TrainingConfig, parse_config
from trainer.dataset import Dataset, load_dataset
from trainer.export import export_keras
from trainer.initial_model import apply_initial_weights, read_initial_model
from trainer.models import build_classifier
from trainer.synthetic import write_shapes_dataset
from trainer.train import train_classifier


def _config(**values: Any) -> TrainingConfig:
    return parse_config(
        {"job_id": "j", "image_size": 32, "batch_size": 16, "seed": 1, "learning_rate": 0.003,
         **values}
    )  # fmt: skip


def _shapes(root: Path, num_classes: int) -> Dataset:
    write_shapes_dataset(root, per_class=30, size=32, seed=num_classes, num_classes=num_classes)
    return load_dataset(root, image_size=32, validation_split=0.25, seed=1)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    """A two-class small CNN (red circles, green squares), saved as the service keeps it."""
    dataset = _shapes(tmp_path_factory.mktemp("two"), 2)
    result = train_classifier(_config(epochs=3), dataset)
    channel = tmp_path_factory.mktemp("initial_model")
    export_keras(result.classifier.model, channel / "model.keras")
    manifest = {"task": "classification", "classes": list(dataset.classes),
                "backbone": "small_cnn", "image_size": 32}  # fmt: skip
    (channel / "trainyard_model.json").write_text(json.dumps(manifest))
    return channel, dataset


def test_the_contract_reads_initial_model() -> None:
    assert _config().initial_model is False
    assert _config(initial_model=True).initial_model is True
    with pytest.raises(ConfigError, match="initial_model"):
        _config(initial_model="yes")


def test_known_classes_answer_as_before_and_a_new_class_starts_untrained(
    earlier: tuple[Path, Dataset], tmp_path: Path
) -> None:
    channel, two_classes = earlier
    config = _config(initial_model=True)
    initial = read_initial_model(channel, config)
    assert initial.classes == ("green square", "red circle")
    three = ("blue triangle", "green square", "red circle")  # the trainer sorts class names
    classifier = build_classifier(config, len(three), None)
    assert apply_initial_weights(classifier, initial, three) == ["blue triangle"]

    old_model = keras.saving.load_model(channel / "model.keras", compile=False)
    images = two_classes.train.images[:16].astype(np.float32)
    old = old_model.predict(images, verbose=0)
    new = classifier.model.predict(images, verbose=0)
    # Softmax over more classes: the known classes' probabilities, renormalised among
    # themselves, are exactly the earlier model's (same features, same output rows).
    known = new[:, 1:] / new[:, 1:].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(known, old, atol=1e-5)


def test_fine_tuning_learns_a_new_class(earlier: tuple[Path, Dataset], tmp_path: Path) -> None:
    channel, _ = earlier
    config = _config(epochs=5, initial_model=True)
    three = _shapes(tmp_path / "three", 3)
    result = train_classifier(config, three, initial_model=read_initial_model(channel, config))
    assert three.validation is not None
    predicted = result.classifier.model.predict(three.validation.images, verbose=0).argmax(axis=1)
    triangle = three.classes.index("blue triangle")
    is_triangle = three.validation.labels == triangle
    assert np.mean(predicted[is_triangle] == triangle) >= 0.8
    assert np.mean(predicted == three.validation.labels) >= 0.8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": 48}, "image_size"),
        ({"backbone": "mobilenet_v2"}, "backbone"),
    ],
)
def test_an_earlier_model_of_another_architecture_is_refused(
    earlier: tuple[Path, Dataset], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read_initial_model(earlier[0], _config(initial_model=True, **change))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.keras"):
        read_initial_model(tmp_path, _config(initial_model=True))
    (tmp_path / "model.keras").write_bytes(b"PK")
    with pytest.raises(ConfigError, match=r"trainyard_model\.json"):
        read_initial_model(tmp_path, _config(initial_model=True))

