"""Number formatting for model cards."""

from __future__ import annotations


def fmt_num(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.{digits}g}"


def fmt(x) -> str:
    """A float for a card table ('n/a' for None)."""
    return "n/a" if x is None else fmt_num(float(x))


def fmt_int(x) -> str:
    return "n/a" if x is None else f"{int(x):,}"
