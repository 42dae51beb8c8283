"""Argument types shared by every ``lightsout`` subcommand.

Bad values are refused by argparse with one line naming the option (exit 2),
before anything runs: ``inf`` and ``nan`` are not durations.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_NUMBER = 1e7
"""The largest number any option takes (about 115 days in seconds): past it, a duration or a
factor only ever overflows something."""
MAX_WHOLE = 2**32 - 1
"""The largest whole number (seeds, counts) any option takes."""
MAX_CHAOS_RATE = 10.0
"""The most random faults per sim second ``--chaos`` injects (``run`` and ``sweep``)."""


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]}")
    return v


def positive(text: str) -> float:
    """A finite number above zero and at most ``MAX_NUMBER`` (seconds, factors, rates)."""
    v = _number(text)
    if not 0 < v <= MAX_NUMBER:
        raise argparse.ArgumentTypeError(
            f"must be a positive number up to {MAX_NUMBER:g}, got {text[:40]}"
        )
    return v


def within(low: float, high: float) -> Callable[[str], float]:
    """A finite number from ``low`` to ``high`` (a pace factor, a fault rate)."""

    def conv(text: str) -> float:
        v = _number(text)
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text[:40]}")
        return v

    return conv


def whole(minimum: int, maximum: int = MAX_WHOLE) -> Callable[[str], int]:
    """A whole number from ``minimum`` to ``maximum`` (counts, seeds)."""

    def conv(text: str) -> int:
        try:
            v = int(text[:40])
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not minimum <= v <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be from {minimum} to {maximum}, got {text[:40]}"
            )
        return v

    return conv
