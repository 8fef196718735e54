"""The trainer's errors. The user-facing base and the common kinds are the contract's
(jobkit.errors); a failure raised as one of them becomes the job's failure reason verbatim."""

from jobkit.errors import ConfigError, DataError, JobError

__all__ = ["ConfigError", "DataError", "ExportCheckError", "TrainerError", "WeightsNotFoundError"]

# The trainer's failures are the contract's user-facing errors.
TrainerError = JobError


class WeightsNotFoundError(JobError):
    """ImageNet weights were asked for but the file is not in TRAINYARD_WEIGHTS_DIR."""


class ExportCheckError(JobError):
    """An exported model does not reproduce the Keras model's predictions."""
