"""Errors whose message is shown to the user as the job's failure reason.

Anything raised as a TrainerError is expected to say, in one line, what is wrong and what to
change; other exceptions are reported with their type name in front, as bugs would be.
"""


class TrainerError(Exception):
    """A failure the user can act on; its message becomes the first line of output/failure."""


class ConfigError(TrainerError):
    """A hyperparameter is missing, of the wrong type or out of bounds."""


class DataError(TrainerError):
    """The training channel cannot be read: manifest, layout or an image."""


class WeightsNotFoundError(TrainerError):
    """ImageNet weights were asked for but the file is not in TRAINYARD_WEIGHTS_DIR."""


class ExportCheckError(TrainerError):
    """An exported model does not reproduce the Keras model's predictions."""
