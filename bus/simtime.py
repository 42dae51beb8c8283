"""Time units: every time in lightsout is an integer of nanoseconds of sim time.

One definition, in the leaf package, so no module carries its own copy of the
factor (STYLE: a shared vocabulary lives where the format is owned).
"""

from __future__ import annotations

NS = 1_000_000_000
"""Nanoseconds in one second of sim time."""


def to_ns(seconds: float) -> int:
    """``seconds`` of sim time as whole nanoseconds (rounded to the nearest)."""
    return round(seconds * NS)
