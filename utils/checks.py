"""Argument checks shared by every package: integers and value bounds, and their errors on one line."""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

__all__ = ["Bounds", "check_flag", "check_fractions", "check_int", "check_positive_int", "finite_or_none", "is_int",
           "one_line"]

Bounds = Union[float, Sequence[float]]  # lower or upper end of the valuations' support: one number, or one per agent


def is_int(value: Any, minimum: int = 1) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_positive_int(value: Any, name: str) -> None:
    """``ValueError("<name> must be a positive integer, got ...")`` unless ``value`` is an int >= 1."""
    if not is_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_int(value: Any, name: str, minimum: int = 1) -> None:
    """``ValueError("<name> must be an integer >= <minimum>, got ...")`` unless ``value`` is such an int."""
    if not is_int(value, minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_fractions(values: Any, name: str) -> None:
    """Raise a one-line ``ValueError`` unless ``values`` are numbers in [0, 1] (e.g. shading factors)."""
    if not all(isinstance(f, (int, float)) and 0 <= f <= 1 for f in values):
        raise ValueError(f"{name} must be numbers in [0, 1], got {list(values)!r}")


def check_flag(value: Any, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def one_line(error: BaseException) -> str:
    """The message of ``error``'s innermost cause (e.g. the constructor's error under Hydra's
    ``InstantiationException``) on one line; the exception's type name if it has none."""
    while error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split()) or type(error).__name__


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or ``None`` for ``None`` and non-finite values (JSON-safe)."""
    return None if value is None or not math.isfinite(float(value)) else float(value)
