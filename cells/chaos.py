"""Chaos: a random fault scenario from a rate and a seed, with every kind in it.

``lightsout run CELL --processes --chaos RATE --seed N`` injects faults at
random sim times, ``RATE`` per second of sim time on average (a Poisson
process: 0.02 is one fault every 50 s, 36 in a 1800 s run). The kinds come in
rounds: each round is every kind once, in a shuffled order, so a run with at
least as many faults as kinds has each of them. Targets and parameters are
drawn from the ranges in ``RANGES``. Nothing starts in the first
``WARM_UP_S`` (the cell comes up first) and every fault is over
``QUIET_END_S`` before the end, so the run ends with the cell recovered and
the audit (``cells.audit``) can ask that of it.

With ``--wear`` the rounds take the degrading kinds too (``joint_drift``,
``gripper_wear``, ``belt_wear``, ``cycle_creep``; their durations and shares
from ``WEAR_RANGES``). A wear does not end: it stays at its worst once its
duration is over, and a drifting joint that reaches its trip ends as a
permanent robot fault (the audit accepts a robot that failed for good).

The same cell, rate, duration and seed give the same faults (and so, the
same event log); without ``--wear`` the same as before the wear kinds existed.
"""

from __future__ import annotations

import random

from bus.cellspec import CellSpec
from bus.enums import DEGRADING_KINDS, FaultKind
from bus.errors import ConfigError
from cells.faults import ScheduledFault

WARM_UP_S = 20.0
"""No faults before this: the robots reach Execute and the first units start."""
QUIET_END_S = 60.0
"""Every fault is over this long before the end of the run."""
RANGES: dict[FaultKind, tuple[float, float]] = {
    FaultKind.ROBOT_FAULT: (5.0, 20.0),
    FaultKind.CONVEYOR_JAM: (10.0, 40.0),
    FaultKind.SENSOR_BLACKOUT: (5.0, 20.0),
    FaultKind.SLOW_ROBOT: (30.0, 90.0),
    FaultKind.MESSAGE_LOSS: (20.0, 60.0),
    FaultKind.AGENT_FREEZE: (12.0, 20.0),
    FaultKind.SUPERVISOR_FREEZE: (12.0, 20.0),
}
"""Duration ranges of the kinds that last: sim seconds, but wall seconds for a freeze (a
stopped process stops the wall, not sim time). Every freeze outlasts the clock's default
guard (10 s), so it is dropped, killed and restarted at the tick it froze on: a freeze
near the guard could go either way and the run would not replay the same."""

CLASSIC_KINDS = tuple(k for k in FaultKind if k not in DEGRADING_KINDS)
"""The kinds of every round without ``--wear``, in their order (the shuffle depends on it)."""
WEAR_RANGES: dict[FaultKind, tuple[float, float]] = {
    FaultKind.JOINT_DRIFT: (120.0, 600.0),
    FaultKind.GRIPPER_WEAR: (60.0, 300.0),
    FaultKind.BELT_WEAR: (60.0, 300.0),
    FaultKind.CYCLE_CREEP: (60.0, 300.0),
}
"""Durations of the degrading kinds chaos draws, in their order: sim seconds to full wear (for
a drifting joint, the mean time to its trip). Not cut at the quiet end: wear outlasts its
duration anyway. ``tool_wear`` is not drawn (it only shows in a recipe that checks torques,
and drawing it would change every ``--wear`` scenario drawn before it existed)."""
WEAR_SHARE = (0.2, 0.6)
"""The share a worn gripper (of carries) or belt (of speed) loses at full wear."""
CREEP_FACTOR = (1.5, 3.0)
SLOW_FACTOR = (2.0, 4.0)
LOSS_SHARE = (0.1, 0.4)
MAX_RATE = 1.0
"""More than a fault a second is not a cell under stress but a cell that never runs."""


def chaos_scenario(
    cell: CellSpec, rate: float, duration_s: float, seed: int, *, wear: bool = False
) -> tuple[ScheduledFault, ...]:
    """Random faults of every kind at ``rate`` per sim second over a run of ``duration_s``
    (with ``wear``, the degrading kinds among them)."""
    if not 0 < rate <= MAX_RATE:
        raise ConfigError("--chaos", str(rate), f"a rate from 0 to {MAX_RATE:g} faults per second")
    latest = duration_s - QUIET_END_S
    if latest <= WARM_UP_S:
        why = f"a chaos run needs more than {WARM_UP_S + QUIET_END_S:g} s (warm-up and quiet end)"
        raise ConfigError("--duration", f"{duration_s:g}", why)
    rng = random.Random(f"chaos/{cell.name}/{seed}")
    robots = sorted(r.name for r in cell.robots)
    conveyors = sorted(c.name for c in cell.conveyors)
    sensors = sorted(
        {f"{c}.end" for c in conveyors}
        | {f.name for f in cell.fixtures}
        | {f.name for f in cell.feeders if f.pose is not None}
    )
    targets = {
        FaultKind.SUPERVISOR_CRASH: ["supervisor"],
        FaultKind.SUPERVISOR_FREEZE: ["supervisor"],
        FaultKind.CONVEYOR_JAM: conveyors,
        FaultKind.BELT_WEAR: conveyors,
        FaultKind.SENSOR_BLACKOUT: sensors,
    }
    out: list[ScheduledFault] = []
    round_: list[FaultKind] = []
    t = WARM_UP_S
    while True:
        t += rng.expovariate(rate)
        if t >= latest:
            break
        if not round_:
            round_ = [*CLASSIC_KINDS, *(WEAR_RANGES if wear else ())]
            rng.shuffle(round_)
        kind = round_.pop()
        target = rng.choice(targets.get(kind, robots))
        duration = factor = share = 0.0
        if kind in RANGES:
            low, high = RANGES[kind]
            duration = min(rng.uniform(low, high), latest - t)
        if kind is FaultKind.SLOW_ROBOT:
            factor = round(rng.uniform(*SLOW_FACTOR), 2)
        if kind is FaultKind.MESSAGE_LOSS:
            share = round(rng.uniform(*LOSS_SHARE), 2)
        at = round(t, 3)
        duration = round(max(duration, 0.001), 3) if kind in RANGES else 0.0
        if kind in WEAR_RANGES:
            duration = round(rng.uniform(*WEAR_RANGES[kind]), 3)
        if kind in (FaultKind.GRIPPER_WEAR, FaultKind.BELT_WEAR):
            share = round(rng.uniform(*WEAR_SHARE), 2)
        if kind is FaultKind.CYCLE_CREEP:
            factor = round(rng.uniform(*CREEP_FACTOR), 2)
        out.append(ScheduledFault(at, target, kind, duration, factor, share))
    return tuple(out)
