"""Argument types shared by every ``lightsout`` subcommand.

Bad values are refused by argparse with one line naming the option (exit 2),
before anything runs: ``inf`` and ``nan`` are not durations.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def positive(text: str) -> float:
    """A finite number above zero (seconds, factors, rates)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number of at least ``minimum`` (counts, seeds)."""

    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return v

    return conv
