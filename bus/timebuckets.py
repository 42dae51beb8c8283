"""Which PackML state counts as which ISO 22400-2 time: one table for the KPIs and the report.

ISO 22400-2 splits a work unit's planned busy time (PBT) into actual
production time (APT), setup time (AUST), delay time (ADET) and down time
(ADOT); availability is APT / PBT. A robot's PackML state says which of these
it is spending. The supervisor accounts its robots' time with this table and
the report colours its charts with it, so the two cannot disagree.

A lights-out cell plans no downtime, so the planned busy time is the whole
run. Whatever a robot does while a failure is open (from the fault until it
is back in Execute: Aborting, Aborted, Clearing, but also the Stopped,
Resetting, Idle and Starting on its way back, or time it was lost) is down
time, whatever its state's own bucket says.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from bus.enums import PackMLState


class TimeBucket(enum.StrEnum):
    """Where a robot's time goes, in the words of ISO 22400-2."""

    PRODUCTION = "production"
    """Actual production time (APT): in Execute, bidding for or running operations.

    Waiting in Execute for work (starved) or for a station (blocked) counts
    here: it costs performance, not availability."""
    SETUP = "setup"
    """Setup time (AUST): being brought up to Execute (Stopped, Resetting, Idle, Starting)."""
    DELAY = "delay"
    """Delay time (ADET): a planned pause or wind-down (Hold, Suspend, Stop, Complete)."""
    DOWN = "down"
    """Down time (ADOT): a failure is open, until the robot is back in Execute."""


LOST = "lost"
"""The pseudo-state of a robot the supervisor lost, until it reports a state again."""

STATE_BUCKETS: Mapping[str, TimeBucket] = MappingProxyType(
    {
        PackMLState.EXECUTE.value: TimeBucket.PRODUCTION,
        PackMLState.STOPPED.value: TimeBucket.SETUP,
        PackMLState.RESETTING.value: TimeBucket.SETUP,
        PackMLState.IDLE.value: TimeBucket.SETUP,
        PackMLState.STARTING.value: TimeBucket.SETUP,
        PackMLState.HOLDING.value: TimeBucket.DELAY,
        PackMLState.HELD.value: TimeBucket.DELAY,
        PackMLState.UNHOLDING.value: TimeBucket.DELAY,
        PackMLState.SUSPENDING.value: TimeBucket.DELAY,
        PackMLState.SUSPENDED.value: TimeBucket.DELAY,
        PackMLState.UNSUSPENDING.value: TimeBucket.DELAY,
        PackMLState.STOPPING.value: TimeBucket.DELAY,
        PackMLState.COMPLETING.value: TimeBucket.DELAY,
        PackMLState.COMPLETE.value: TimeBucket.DELAY,
        PackMLState.ABORTING.value: TimeBucket.DOWN,
        PackMLState.ABORTED.value: TimeBucket.DOWN,
        PackMLState.CLEARING.value: TimeBucket.DOWN,
        LOST: TimeBucket.DOWN,
    }
)
"""Every PackML state (and ``LOST``) to its bucket, outside an open failure."""

FAILURE_STATES = frozenset({PackMLState.ABORTING.value, PackMLState.ABORTED.value})
"""States a robot only reaches on a fault: entering one starts a failure."""
HOLD_STATES = frozenset({PackMLState.HOLDING.value, PackMLState.HELD.value})
"""States that are a failure only when a fault caused them (an operator's Hold is planned)."""
REPAIRED_STATE = PackMLState.EXECUTE.value
"""Back in production: the end of a repair."""


def bucket(state: str) -> TimeBucket:
    """The bucket of ``state`` (a PackML state's value or ``LOST``); unknown states are setup."""
    return STATE_BUCKETS.get(state, TimeBucket.SETUP)
