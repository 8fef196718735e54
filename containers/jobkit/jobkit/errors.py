"""Errors whose message is shown to the user as the job's failure reason.

Anything raised as a JobError says, in one line, what is wrong and what to change; other
exceptions are reported with their type name in front, as bugs would be.
"""


class JobError(Exception):
    """A failure the user can act on; its message becomes the first line of output/failure."""


class ConfigError(JobError):
    """A hyperparameter is missing, of the wrong type or out of bounds."""


class DataError(JobError):
    """An input channel cannot be read."""
