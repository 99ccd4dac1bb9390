"""Numbers read from, or written to, JSON files people can edit: finite or nothing."""

from __future__ import annotations

import math
from typing import Any


def as_number(value: Any) -> float | None:
    """A number stored as a JSON number (a timestamp, a duration, a score); None for anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def as_int(value: Any) -> int:
    """A whole number read from a hand-editable JSON file; 0 for anything else (a string, a list, null)."""
    return int(value) if as_number(value) is not None else 0


def finite(value: Any) -> float | None:
    """Anything float() takes (a NumPy scalar, a Keras log value, a numeric string) as a finite float, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
