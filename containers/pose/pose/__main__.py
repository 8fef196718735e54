"""Entrypoint: `python -m pose [train]` (SageMaker passes `train`; it is ignored).

The hyperparameter `mode` picks the job: `train` (a sleap-nn model from a SLEAP labels upload)
or `infer` (a trained model on one video). The frame around it (hyperparameters, failure file,
`failed` event, exit code, the Batch model upload) is the contract's: jobkit.entrypoint.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from jobkit.entrypoint import run_entrypoint
from jobkit.events import ProgressEmitter
from jobkit.paths import JobPaths

from .contract import parse_mode

NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "torch", "matplotlib")


def run_pose_job(
    hyperparameters: dict[str, Any],
    paths: JobPaths,
    emitter: ProgressEmitter,
    environ: Mapping[str, str],
) -> None:
    if parse_mode(hyperparameters) == "train":
        from .train import run_training_job  # noqa: PLC0415

        run_training_job(hyperparameters, paths, emitter, environ)
    else:
        from .infer import run_inference_job  # noqa: PLC0415

        run_inference_job(hyperparameters, paths, emitter, environ)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_entrypoint("pose", run_pose_job, argv, environ, noisy_loggers=NOISY_LOGGERS)


if __name__ == "__main__":
    sys.exit(main())
