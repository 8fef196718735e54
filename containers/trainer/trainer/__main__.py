"""Entrypoint: `python -m trainer [train]` (SageMaker passes `train`; it is ignored).
The `task` hyperparameter picks classification (default) or detection.

DOWNLOADING → read the channel → DOWNLOADED → RUNNING → epochs → EXPORTING → exit 0.
The frame around it (hyperparameters, failure file, `failed` event, exit code, the Batch
model upload) is the contract's, shared with the pose container: jobkit.entrypoint.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jobkit.batch import download_channels_from_environment
from jobkit.entrypoint import ensure_writable_directory, run_entrypoint
from jobkit.errors import ConfigError
from jobkit.events import ProgressEmitter, Status
from jobkit.paths import JobPaths

from .contract import TRAINING_CHANNEL, TrainingConfig, parse_config, with_resolved_seed
from .dataset import load_dataset
from .detection.contract import DetectionConfig, parse_detection_config
from .detection.dataset import load_detection_dataset
from .initial_model import INITIAL_MODEL_CHANNEL, read_initial_model
from .weights import resolve_detection_weights, resolve_imagenet_weights

log = logging.getLogger("trainer")


def prepare_training_channel(paths: JobPaths, environ: Mapping[str, str]) -> Path:
    """After the weights lookup and before any image is decoded: an unwritable model dir
    fails the job at once, not after training. On AWS Batch no platform fills the channel
    dir; the container fetches its snapshot. Returns the channel dir."""
    ensure_writable_directory(paths.model_dir)
    downloaded = download_channels_from_environment(environ, paths)
    if downloaded:
        log.info("downloaded %d input files to %s", downloaded, paths.channel(TRAINING_CHANNEL))
    return paths.channel(TRAINING_CHANNEL)


def run_job(
    config: TrainingConfig, paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> None:
    log.info("job %s: %s", config.job_id, config)
    emitter.status(Status.DOWNLOADING)
    # Before decoding any image: a missing weights file fails the job at once.
    weights_file = resolve_imagenet_weights(config, environ)
    if config.seed is None:
        raise ValueError("run_job needs a resolved seed (contract.with_resolved_seed)")
    channel_dir = prepare_training_channel(paths, environ)
    initial_model = (
        read_initial_model(paths.channel(INITIAL_MODEL_CHANNEL), config)
        if config.initial_model
        else None
    )
    dataset = load_dataset(channel_dir, config.image_size, config.validation_split, config.seed)
    validation_count = 0 if dataset.validation is None else len(dataset.validation)
    summary = (
        f"{len(dataset.train)} training and {validation_count} validation images, "
        f"{len(dataset.classes)} classes"
    )
    log.info("dataset: %s", summary)
    if dataset.validation is None:
        log.warning("no validation images: val_loss and val_accuracy will be null")
    emitter.status(Status.DOWNLOADED, message=summary)

    # TensorFlow is imported only now (about 4 s): configuration, weights and dataset
    # errors are reported without waiting for it.
    from .export import export_all  # noqa: PLC0415
    from .train import train_classifier, uses_feature_cache  # noqa: PLC0415

    emitter.status(
        Status.RUNNING,
        message=f"training {config.backbone} for {config.epochs} epochs"
        + (" on cached backbone features" if uses_feature_cache(config) else ""),
    )
    result = train_classifier(
        config,
        dataset,
        weights_file,
        on_epoch=lambda metrics: emitter.epoch(**asdict(metrics)),
        initial_model=initial_model,
    )

    emitter.status(Status.EXPORTING, message=", ".join(config.exports))
    # Validation images when there are any: they were not trained on.
    check_set = dataset.validation if dataset.validation is not None else dataset.train
    export_all(
        result.classifier.model,
        paths.model_dir,
        config=config,
        classes=dataset.classes,
        check_images=check_set.images,
        final=result.final,
    )
    log.info("model written to %s", paths.model_dir)


def run_detection_job(
    config: DetectionConfig, paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> None:
    """The same steps as run_job, for a detector (docs/job-contract.md, detection)."""
    log.info("job %s: %s", config.job_id, config)
    emitter.status(Status.DOWNLOADING)
    preset_dir = resolve_detection_weights(config, environ)
    if config.seed is None:
        raise ValueError("run_detection_job needs a resolved seed (contract.with_resolved_seed)")
    dataset = load_detection_dataset(
        prepare_training_channel(paths, environ),
        config.image_size,
        config.validation_split,
        config.seed,
    )
    validation = dataset.validation
    summary = (
        f"{len(dataset.train)} training images ({dataset.train.box_count} boxes) and "
        f"{0 if validation is None else len(validation)} validation images, "
        f"{len(dataset.classes)} classes"
    )
    log.info("dataset: %s", summary)
    if validation is None:
        log.warning("no validation images: val_loss and validation mAP will be null")
    emitter.status(Status.DOWNLOADED, message=summary)

    # TensorFlow and keras-hub are imported only now, as for classification.
    from .detection.export import export_detection  # noqa: PLC0415
    from .detection.train import train_detector  # noqa: PLC0415

    emitter.status(
        Status.RUNNING, message=f"training a {config.backbone} RetinaNet for {config.epochs} epochs"
    )
    result = train_detector(
        config, dataset, preset_dir, on_epoch=lambda metrics: emitter.epoch(**asdict(metrics))
    )
    emitter.status(Status.EXPORTING, message=", ".join(config.exports))
    check_set = validation if validation is not None else dataset.train
    export_detection(
        result.detector,
        result.export_model,
        paths.model_dir,
        config=config,
        classes=dataset.classes,
        check_images=check_set.images,
        final=result.final,
    )
    log.info("model written to %s", paths.model_dir)


def train(
    hyperparameters: dict[str, Any],
    paths: JobPaths,
    emitter: ProgressEmitter,
    environ: Mapping[str, str],
) -> None:
    task = hyperparameters.get("task", "classification")
    if task in ("tag", "embedder"):  # seed 003's custom tags: tags.py and embedder.py
        from .embedder import run_embedder_job  # noqa: PLC0415 - only these tasks load them
        from .tags import run_tag_job  # noqa: PLC0415

        run = run_tag_job if task == "tag" else run_embedder_job
        run(hyperparameters, paths, emitter, environ)
        return
    given: TrainingConfig | DetectionConfig
    if task == "classification":
        given = parse_config(hyperparameters)
    elif task == "detection":
        given = parse_detection_config(hyperparameters)
    else:
        raise ConfigError(
            f"hyperparameter task={task!r} is not supported by this container "
            "(classification, detection, tag or embedder)"
        )
    config = with_resolved_seed(given)
    if given.seed is None:
        log.info("no seed given: using seed %d (set it to reproduce this run)", config.seed)
    if isinstance(config, DetectionConfig):
        run_detection_job(config, paths, emitter, environ)
    else:
        run_job(config, paths, emitter, environ)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_entrypoint(
        "trainer", train, argv, environ, noisy_loggers=("tensorflow", "absl", "tf2onnx")
    )


if __name__ == "__main__":
    sys.exit(main())
