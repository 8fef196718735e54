from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from trainer.contract import TrainingConfig, parse_config
from trainer.dataset import Dataset, load_dataset
from trainer.pipelines import make_pipeline
from trainer.synthetic import write_shapes_dataset
from trainer.train import step_lr, train_classifier, uses_feature_cache


def _config(**values: Any) -> TrainingConfig:
    return parse_config({"job_id": "j", "image_size": 32, "batch_size": 16, "seed": 1, **values})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    channel: Path = tmp_path_factory.mktemp("shapes")
    write_shapes_dataset(channel, per_class=40, size=32, seed=0)
    return load_dataset(channel, image_size=32, validation_split=0.25, seed=1)


def test_step_lr_multiplies_by_gamma_every_step_size_epochs() -> None:
    config = _config(learning_rate=0.1, lr_step_size=3, lr_gamma=0.5)
    assert [step_lr(config, epoch) for epoch in range(7)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    )
    assert {step_lr(_config(learning_rate=0.01), e) for e in range(30)} == {0.01}  # gamma 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, False),  # from scratch: the whole backbone trains
        ({"layers_to_retrain": 0}, True),
        ({"layers_to_retrain": 0, "augment": True}, False),
        ({"layers_to_retrain": 2}, False),
        ({"backbone": "mobilenet", "weights": "imagenet"}, True),  # null = frozen on ImageNet
        ({"backbone": "mobilenet", "weights": "imagenet", "layers_to_retrain": 5}, False),
        ({"backbone": "mobilenet", "weights": "imagenet", "augment": True}, False),
    ],
)
def test_feature_cache_only_for_a_frozen_backbone_without_augmentation(
    values: dict[str, Any], expected: bool
) -> None:
    assert uses_feature_cache(_config(**values)) is expected


def test_frozen_mobilenet_trains_the_head_on_cached_features(
    shapes: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(backbone="mobilenet", alpha=0.25, layers_to_retrain=0, epochs=3,
                     learning_rate=0.01, lr_step_size=1, lr_gamma=0.5)  # fmt: skip
    reported = []
    with caplog.at_level(logging.INFO, logger="trainer.train"):
        result = train_classifier(config, shapes, on_epoch=reported.append)

    assert result.used_feature_cache and result.feature_seconds > 0
    assert "feature cache: on" in caplog.text
    assert reported == result.history and [m.epoch for m in reported] == [1, 2, 3]
    assert all(m.epochs == 3 and m.duration_seconds > 0 for m in reported)
    # StepLR as the optimiser actually applied it, epoch by epoch.
    assert [m.lr for m in reported] == pytest.approx([0.01, 0.005, 0.0025], rel=1e-6)

    # The full model shares the trained head: evaluating it on images reproduces the
    # validation loss measured on cached features in the last epoch.
    validation = shapes.validation
    assert validation is not None
    model = result.classifier.model
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(
        validation.images.astype(np.float32), validation.labels, verbose=0
    )
    assert loss == pytest.approx(result.final.val_loss, abs=1e-5)
    assert accuracy == pytest.approx(result.final.val_accuracy, abs=1e-6)


def test_cached_and_recomputed_training_follow_the_same_trajectory(shapes: Dataset) -> None:
    # A frozen small_cnn: cheap, and its random features are large enough to learn from.
    config = _config(layers_to_retrain=0, epochs=3, learning_rate=0.01)
    cached = train_classifier(config, shapes)
    recomputed = train_classifier(config, shapes, use_feature_cache=False)
    assert cached.used_feature_cache and not recomputed.used_feature_cache
    assert cached.history[-1].loss != pytest.approx(cached.history[0].loss, abs=1e-3)  # learnt
    for a, b in zip(cached.history, recomputed.history, strict=True):
        assert (a.loss, a.val_loss) == pytest.approx((b.loss, b.val_loss), abs=1e-4)
        assert a.val_accuracy == pytest.approx(b.val_accuracy, abs=1e-6)


def test_augmentation_trains_end_to_end_without_the_cache(
    shapes: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(backbone="mobilenet", alpha=0.25, layers_to_retrain=0, augment=True,
                     epochs=1)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="trainer.train"):
        result = train_classifier(config, shapes)
    assert not result.used_feature_cache and result.feature_seconds == 0
    assert "feature cache: off (augment on)" in caplog.text
    assert len(result.history) == 1 and result.history[0].loss is not None
    assert result.classifier.backbone.trainable_weights == []  # still frozen


def test_a_trainable_backbone_cannot_be_forced_onto_cached_features(shapes: Dataset) -> None:
    with pytest.raises(ValueError, match="feature caching needs a frozen backbone"):
        train_classifier(_config(epochs=1), shapes, use_feature_cache=True)


def test_small_cnn_learns_the_shapes_from_scratch(shapes: Dataset) -> None:
    result = train_classifier(_config(epochs=3, learning_rate=0.003), shapes)
    assert not result.used_feature_cache
    assert result.final.val_accuracy is not None and result.final.val_accuracy >= 0.8
    assert result.final.loss < result.history[0].loss
    assert isinstance(result.classifier.model, keras.Model)


def test_pipelines_cast_batch_and_shuffle_reproducibly() -> None:
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1)
    labels = np.arange(10, dtype=np.int32)

    def label_order(seed: int | None) -> list[int]:
        batches = make_pipeline(images, labels, batch_size=4, shuffle_seed=seed)
        order: list[int] = []
        for x, y in batches:
            assert x.dtype == np.float32 and x.shape[1:] == (1, 1, 3)
            np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0], y.numpy())  # pairs kept
            order += y.numpy().tolist()
        return order

    assert label_order(None) == list(range(10))
    assert label_order(5) == label_order(5) != list(range(10))
    assert sorted(label_order(5)) == list(range(10))
    unlabelled = list(make_pipeline(images, None, batch_size=4))
    assert [len(batch) for batch in unlabelled] == [4, 4, 2]


def test_without_validation_images_val_metrics_are_none(shapes: Dataset) -> None:
    no_validation = Dataset(
        classes=shapes.classes, train=shapes.train, validation=None, explicit_validation=False
    )
    for values in ({"layers_to_retrain": 0}, {}):  # cached and end to end
        result = train_classifier(_config(epochs=1, **values), no_validation)
        final = result.final
        assert final.loss is not None and final.accuracy is not None
        assert final.val_loss is None and final.val_accuracy is None
