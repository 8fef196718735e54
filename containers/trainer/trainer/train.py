"""Training: Adam + sparse categorical cross-entropy, StepLR, one report per epoch.

Frozen-backbone feature caching: when no backbone weight can change (the backbone is frozen)
and images are not augmented, the backbone maps each image to the same features in every
epoch. They are then computed once, and only the small head is trained on them, which is
many times faster than running the backbone every epoch. The head's layers are shared with
the full model, so afterwards `classifier.model` is the complete trained model to export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from .contract import TrainingConfig
from .dataset import Dataset
from .initial_model import InitialModel, apply_initial_weights
from .models import Classifier, build_classifier, describe_trainable, effective_layers_to_retrain
from .pipelines import make_augmenter, make_pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    epochs: int
    loss: float | None
    val_loss: float | None
    accuracy: float | None
    val_accuracy: float | None
    lr: float
    duration_seconds: float
    val_map_50: float | None = None  # detection only: validation mAP@0.5 and @0.5:0.95
    val_map_50_95: float | None = None


@dataclass(frozen=True)
class TrainingResult:
    classifier: Classifier
    history: list[EpochMetrics]
    used_feature_cache: bool
    feature_seconds: float  # time spent computing cached features; 0 without the cache

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


class StepLRSettings(Protocol):
    learning_rate: float
    lr_gamma: float
    lr_step_size: int


def step_lr(config: StepLRSettings, epoch_index: int) -> float:
    """StepLR: learning_rate × lr_gamma^(epoch_index // lr_step_size), epoch_index 0-based."""
    return config.learning_rate * config.lr_gamma ** (epoch_index // config.lr_step_size)


def uses_feature_cache(config: TrainingConfig) -> bool:
    """True when backbone features can be computed once: backbone frozen, no augmentation
    (augmented images differ every epoch, and so would their features)."""
    return effective_layers_to_retrain(config) == 0 and not config.augment


class EpochReporter(keras.callbacks.Callback):
    """Collects per-epoch metrics (with the optimiser's actual learning rate) and hands them
    to `on_epoch` as soon as each epoch ends."""

    def __init__(
        self,
        epochs: int,
        history: list[EpochMetrics],
        on_epoch: Callable[[EpochMetrics], object] | None,
        evaluate: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        super().__init__()
        self._epochs = epochs
        self._history = history
        self._on_epoch = on_epoch
        self._evaluate = evaluate  # extra validation figures (detection's mAP), by name
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {**(logs or {}), **(self._evaluate() if self._evaluate is not None else {})}
        metrics = EpochMetrics(
            epoch=epoch + 1,
            epochs=self._epochs,
            loss=_metric(logs, "loss"),
            val_loss=_metric(logs, "val_loss"),
            accuracy=_metric(logs, "accuracy"),
            val_accuracy=_metric(logs, "val_accuracy"),
            lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            duration_seconds=time.perf_counter() - self._started,
            val_map_50=_metric(logs, "val_map_50"),
            val_map_50_95=_metric(logs, "val_map_50_95"),
        )
        self._history.append(metrics)
        figures = {
            name: value
            for name, value in asdict(metrics).items()
            if name not in {"epoch", "epochs", "lr", "duration_seconds"} and value is not None
        }
        log.info(
            "epoch %d/%d: %s lr %.6g (%.2f s)",
            metrics.epoch,
            metrics.epochs,
            " ".join(f"{name} {value:.4f}" for name, value in figures.items()),
            metrics.lr,
            metrics.duration_seconds,
        )
        if self._on_epoch is not None:
            self._on_epoch(metrics)


def _metric(logs: dict[str, Any], name: str) -> float | None:
    return float(logs[name]) if name in logs else None


def train_classifier(
    config: TrainingConfig,
    dataset: Dataset,
    weights_file: Path | None = None,
    on_epoch: Callable[[EpochMetrics], object] | None = None,
    *,
    use_feature_cache: bool | None = None,
    initial_model: InitialModel | None = None,
) -> TrainingResult:
    """Build the classifier and train it for config.epochs.

    `use_feature_cache` None decides by `uses_feature_cache(config)`; False forces the
    backbone to run every epoch (the benchmark compares both); True when the backbone is
    not frozen is refused, since cached features would silently ignore backbone training.
    `initial_model`: start from that earlier model's weights (initial_model.py).
    """
    if config.seed is None:
        raise ValueError("train_classifier needs a concrete seed (contract.with_resolved_seed)")
    cache_possible = uses_feature_cache(config)
    if use_feature_cache and not cache_possible:
        raise ValueError("feature caching needs a frozen backbone and augment false")
    cached = cache_possible if use_feature_cache is None else use_feature_cache

    # Seeds Python, numpy and TensorFlow: weight initialisation, dropout, augmentation.
    keras.utils.set_random_seed(config.seed)
    classifier = build_classifier(config, len(dataset.classes), weights_file)
    if initial_model is not None:
        # Before any feature is cached: the cache must see the earlier model's backbone.
        new_classes = apply_initial_weights(classifier, initial_model, dataset.classes)
        log.info(
            "fine-tuning from the earlier model (%d classes); new classes: %s",
            len(initial_model.classes),
            ", ".join(new_classes) or "none",
        )
    log.info("%s: %s", config.backbone, describe_trainable(classifier))
    if cached:
        log.info(
            "feature cache: on (backbone frozen, augment off): backbone features are "
            "computed once and only the head is trained"
        )
    else:
        reason = (
            "forced off"
            if cache_possible
            else ("augment on" if config.augment else "backbone layers are trained")
        )
        log.info("feature cache: off (%s): the backbone runs every epoch", reason)

    history: list[EpochMetrics] = []
    callbacks = [
        keras.callbacks.LearningRateScheduler(lambda epoch, _lr: step_lr(config, epoch)),
        EpochReporter(config.epochs, history, on_epoch),
    ]
    feature_seconds = 0.0
    train, validation = dataset.train, dataset.validation
    shuffle_seed = config.seed if config.shuffle else None
    if cached:
        started = time.perf_counter()
        train_inputs = _features(classifier, train.images, config.batch_size)
        validation_inputs = (
            None
            if validation is None
            else _features(classifier, validation.images, config.batch_size)
        )
        feature_seconds = time.perf_counter() - started
        log.info(
            "computed backbone features for %d images in %.2f s",
            len(train) + (0 if validation is None else len(validation)),
            feature_seconds,
        )
        trained_model, augmenter = classifier.head, None
    else:
        train_inputs = train.images
        validation_inputs = None if validation is None else validation.images
        trained_model = classifier.model
        augmenter = make_augmenter(config.seed) if config.augment else None

    trained_model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    trained_model.fit(
        make_pipeline(
            train_inputs,
            train.labels,
            batch_size=config.batch_size,
            shuffle_seed=shuffle_seed,
            augmenter=augmenter,
        ),
        validation_data=(
            make_pipeline(validation_inputs, validation.labels, batch_size=config.batch_size)
            if validation is not None and validation_inputs is not None
            else None
        ),
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles (seeded); Keras cannot shuffle a tf.data input
        verbose=0,
    )
    return TrainingResult(
        classifier=classifier,
        history=history,
        used_feature_cache=cached,
        feature_seconds=feature_seconds,
    )


def _features(classifier: Classifier, images: np.ndarray, batch_size: int) -> np.ndarray:
    # Same float32 pixels the full model would see; predict runs the frozen backbone
    # (and its BatchNormalization) in inference mode, exactly as it runs while training.
    pipeline = make_pipeline(images, None, batch_size=batch_size)
    return np.asarray(classifier.feature_extractor.predict(pipeline, verbose=0))
