"""The frame every container entrypoint shares: `python -m <program> [train]`.

It reads the hyperparameters (from SageMaker's file, or on AWS Batch from the environment),
runs the job, uploads the model dir where the platform does not, and on any exception writes
the first line of the reason to output/failure, sends a `failed` event and returns 1.
No signal handlers are installed: SIGTERM (cancellation) ends the process at once, with no
failure file, as the contract expects of a killed job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .batch import upload_model_from_environment, write_hyperparameters
from .errors import JobError
from .events import ProgressEmitter
from .hyperparameters import read_hyperparameters
from .paths import JobPaths

log = logging.getLogger("jobkit")

# SageMaker keeps at most 1024 characters of a failure reason.
MAX_REASON_LENGTH = 1000

Job = Callable[[dict[str, Any], JobPaths, ProgressEmitter, Mapping[str, str]], None]


def configure_logging(noisy_loggers: Iterable[str] = ()) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.ERROR)


def failure_reason(error: BaseException) -> str:
    """One line a person can act on. Our own errors are written for users; anything else
    is unexpected, so its type is kept to make the log easy to search."""
    message = str(error).strip()
    if not isinstance(error, JobError):
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    first_line = message.splitlines()[0] if message else "the job failed"
    return first_line[:MAX_REASON_LENGTH]


def write_failure(path: Path, reason: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason + "\n")


def ensure_writable_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JobError(f"model dir {directory} cannot be created: {error}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JobError(f"model dir {directory} is not writable by user id {os.getuid()}")


def run_entrypoint(
    program: str,
    job: Job,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    noisy_loggers: Iterable[str] = (),
) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    configure_logging(noisy_loggers)
    if args not in ([], ["train"]):
        print(f"usage: python -m {program} [train]", file=sys.stderr)
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
        if job_id is None:
            raise JobError("hyperparameter job_id is required")
        if not isinstance(job_id, str) or not job_id:
            raise JobError("hyperparameter job_id must be a non-empty string")
        # Created before validation, so that a bad hyperparameter still sends `failed`.
        emitter = ProgressEmitter.from_environment(job_id, env)
        job(hyperparameters, paths, emitter, env)
        # Last: the platform persists the model only after exit 0, and on Batch that means
        # the upload must have finished before the process ends.
        uploaded = upload_model_from_environment(env, paths.model_dir)
        if uploaded:
            log.info("uploaded %d model files", len(uploaded))
    except Exception as error:
        reason = failure_reason(error)
        # Tracebacks only for the unexpected; a user error is fully said by its reason.
        log.error("job failed: %s", reason, exc_info=not isinstance(error, JobError))
        write_failure(paths.failure_file, reason)
        if emitter is not None:
            emitter.failed(reason)
        return 1
    return 0
