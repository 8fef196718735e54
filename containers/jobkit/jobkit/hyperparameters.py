"""Hyperparameters: SageMaker stores every value as a string, so each is JSON-encoded by the
service and decoded here; typed readers enforce the contract's bounds with messages a user
can act on ("hyperparameter epochs=0 is out of bounds: must be in [1, 500]")."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

# numpy, TensorFlow and torch all accept seeds in this range; the service uses the same bound.
MAX_SEED = 2**31 - 1


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """Read hyperparameters.json and JSON-decode each value (SageMaker stores strings)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"hyperparameters file {path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"hyperparameters file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"hyperparameters file {path} must hold a JSON object")
    return decode_hyperparameters(raw)


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`json.loads` each string value, keeping the raw string when it is not JSON.

    Values that are not strings (a hand-written file with native JSON types) are kept as
    they are, so both forms mean the same thing.
    """
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                decoded[key] = value
        else:
            decoded[key] = value
    return decoded


def reject_unknown(values: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"hyperparameter {key}={json.dumps(value)} must be {expected}")


def string(values: Mapping[str, Any], key: str, default: str = "") -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise _type_error(key, value, "a string")
    return value


def optional_string(values: Mapping[str, Any], key: str) -> str | None:
    return None if values.get(key) is None else string(values, key)


def choice(values: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = string(values, key, default)
    if value not in allowed:
        raise ConfigError(
            f"hyperparameter {key}={value!r} is out of bounds: must be one of {', '.join(allowed)}"
        )
    return value


def optional_choice(values: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    if values.get(key) is None:
        return None
    value = string(values, key)
    if value not in allowed:
        raise ConfigError(
            f"hyperparameter {key}={value!r} is out of bounds: must be null or one of "
            f"{', '.join(allowed)}"
        )
    return value


def check_range(
    key: str,
    value: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> None:
    too_low = (minimum is not None and value < minimum) or (above is not None and value <= above)
    too_high = maximum is not None and value > maximum
    if not (too_low or too_high):
        return
    lower = f"[{minimum}" if minimum is not None else f"({above}" if above is not None else "(-inf"
    upper = f"{maximum}]" if maximum is not None else "inf)"
    raise ConfigError(
        f"hyperparameter {key}={value!r} is out of bounds: must be in {lower}, {upper}"
    )


def integer(
    values: Mapping[str, Any],
    key: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = values.get(key, default)
    # bool is a subclass of int in Python, but `true` is no epoch count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, value, "an integer")
    check_range(key, value, minimum=minimum, maximum=maximum)
    return value


def optional_integer(
    values: Mapping[str, Any], key: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    if values.get(key) is None:
        return None
    return integer(values, key, 0, minimum=minimum, maximum=maximum)


def number(
    values: Mapping[str, Any],
    key: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _type_error(key, value, "a finite number")
    check_range(key, float(value), minimum=minimum, maximum=maximum, above=above)
    return float(value)


def boolean(values: Mapping[str, Any], key: str, default: bool) -> bool:
    value = values.get(key, default)
    if not isinstance(value, bool):
        raise _type_error(key, value, "true or false")
    return value


def string_list(values: Mapping[str, Any], key: str, default: list[str]) -> list[str]:
    value = values.get(key, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _type_error(key, value, "a list of strings")
    return list(value)
