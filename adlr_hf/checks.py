"""Argument checks shared by every entry point, each raising one clear error naming the value."""

from __future__ import annotations

from typing import Any


def check_int(name: str, value: Any, low: int) -> int:
    """`value` if it is an int (not a bool) >= `low`; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return value
