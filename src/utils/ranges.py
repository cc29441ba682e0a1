"""One-line range checks for numeric knobs: a bad value names its key and the allowed range."""

from __future__ import annotations

import math

from src.utils.errors import UserError


def check_range(key: str, value, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False, optional: bool = False, integer: bool = False) -> None:
    """Raise UserError("key=value: must be ...") unless ``value`` lies in the range (None allowed if optional)."""
    if value is None and optional:
        return
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    allowed = " and ".join(p for p in (lo, hi) if p) or "a number"
    allowed = ("an integer " if integer else "") + allowed + (" (or null)" if optional else "")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise UserError(f"{key}={value}: must be {allowed}")
