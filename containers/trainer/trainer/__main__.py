"""Entrypoint: `python -m trainer [train]` (SageMaker passes `train`; it is ignored).

DOWNLOADING → read the channel → DOWNLOADED → RUNNING → epochs → EXPORTING → exit 0.
Any exception: first line of output/failure = the reason, a `failed` event, exit 1.
No signal handlers are installed: SIGTERM (cancellation) ends the process at once, with no
failure file, as the contract expects of a killed job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from .contract import (
    JobPaths,
    TrainingConfig,
    parse_config,
    read_hyperparameters,
    with_resolved_seed,
)
from .dataset import load_dataset
from .errors import TrainerError
from .events import ProgressEmitter, Status
from .model_upload import (
    download_inputs_from_environment,
    upload_model_from_environment,
    write_hyperparameters,
)
from .weights import resolve_imagenet_weights

log = logging.getLogger("trainer")

# SageMaker keeps at most 1024 characters of a failure reason.
MAX_REASON_LENGTH = 1000


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("tensorflow", "absl", "tf2onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def failure_reason(error: BaseException) -> str:
    """One line a person can act on. Our own errors are written for users; anything else
    is unexpected, so its type is kept to make the log easy to search."""
    message = str(error).strip()
    if not isinstance(error, TrainerError):
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    first_line = message.splitlines()[0] if message else "training failed"
    return first_line[:MAX_REASON_LENGTH]


def write_failure(path: Path, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason + "\n")


def ensure_writable_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrainerError(f"model dir {directory} cannot be created: {error}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TrainerError(f"model dir {directory} is not writable by user id {os.getuid()}")


def run_job(
    config: TrainingConfig, paths: JobPaths, emitter: ProgressEmitter, environ: Mapping[str, str]
) -> None:
    log.info("job %s: %s", config.job_id, config)
    emitter.status(Status.DOWNLOADING)
    # Before decoding any image: a missing weights file or an unwritable model dir should
    # fail the job at once, not after training.
    weights_file = resolve_imagenet_weights(config, environ)
    ensure_writable_directory(paths.model_dir)
    if config.seed is None:
        raise ValueError("run_job needs a resolved seed (contract.with_resolved_seed)")
    # On AWS Batch no platform fills the channel dir; the container fetches its snapshot.
    downloaded = download_inputs_from_environment(environ, paths.training_channel)
    if downloaded:
        log.info("downloaded %d input files to %s", downloaded, paths.training_channel)
    dataset = load_dataset(
        paths.training_channel, config.image_size, config.validation_split, config.seed
    )
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
        config, dataset, weights_file, on_epoch=lambda metrics: emitter.epoch(**asdict(metrics))
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


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    configure_logging()
    if args not in ([], ["train"]):
        print("usage: python -m trainer [train]", file=sys.stderr)
        return 2
    paths = JobPaths.from_environment(env)
    emitter: ProgressEmitter | None = None
    try:
        # A failure file left by an earlier attempt in the same directory is not ours.
        with contextlib.suppress(FileNotFoundError):
            paths.failure_file.unlink()
        # On AWS Batch the hyperparameters come in the environment, not as SageMaker's file.
        write_hyperparameters(env, paths.hyperparameters_file)
        hyperparameters = read_hyperparameters(paths.hyperparameters_file)
        job_id = hyperparameters.get("job_id")
        if isinstance(job_id, str) and job_id:
            # Created before validation, so that a bad hyperparameter still sends `failed`.
            emitter = ProgressEmitter.from_environment(job_id, env)
        given = parse_config(hyperparameters)
        emitter = emitter or ProgressEmitter.from_environment(given.job_id, env)
        config = with_resolved_seed(given)
        if given.seed is None:
            log.info("no seed given: using seed %d (set it to reproduce this run)", config.seed)
        run_job(config, paths, emitter, env)
        # Last: the platform persists the model only after exit 0, and on Batch that means
        # the upload must have finished before the process ends.
        uploaded = upload_model_from_environment(env, paths.model_dir)
        if uploaded:
            log.info("uploaded %d model files", len(uploaded))
    except Exception as error:
        reason = failure_reason(error)
        # Tracebacks only for the unexpected; a user error is fully said by its reason.
        log.error("job failed: %s", reason, exc_info=not isinstance(error, TrainerError))
        write_failure(paths.failure_file, reason)
        if emitter is not None:
            emitter.failed(reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
