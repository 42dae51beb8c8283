"""The rules a fault's fields obey, written once for every way a fault comes in.

A fault comes from a scenario file (``cells.faults``, checked at load) or a
``fault`` control request (``sim.faulting``, checked by the cell host before
anything is done). Both ask ``problem`` and word its answer for their user
(the file's key, the request's reason); the kinds and targets themselves are
``bus.enums.FaultKind`` and ``FaultTarget``.
"""

from __future__ import annotations

import math

from bus.enums import DEGRADING_KINDS, FaultKind

TIMED = (
    FaultKind.CONVEYOR_JAM,
    FaultKind.ROBOT_FAULT,
    FaultKind.SENSOR_BLACKOUT,
    FaultKind.SLOW_ROBOT,
    FaultKind.MESSAGE_LOSS,
    FaultKind.AGENT_FREEZE,
    FaultKind.SUPERVISOR_FREEZE,
    *DEGRADING_KINDS,
)
"""Kinds that last ``duration`` seconds (so it must be > 0, unless permanent)."""
PERMANENT_KINDS = (FaultKind.ROBOT_FAULT,)
"""Kinds that may be ``permanent``: a robot that fails for good and never comes back."""
MAX_DURATION_S = 1e6
"""Longest fault accepted (about 11.6 days of sim time): a longer one is a mistake, and an
infinite one cannot be turned into nanoseconds."""
MAX_JOINT = 7
"""The most joints an arm of the cell has (iiwa and panda: 7): a ``joint_drift``'s joint is
1 to this (0: drawn from the seed)."""
MAX_SLOWDOWN = 100.0
"""The largest ``slow_robot`` factor accepted."""
PERMANENT_HAS_NO_DURATION = "a permanent fault has no duration: give one or the other"


def problem(
    kind: FaultKind, *, duration_s: float, factor: float = 0.0, permanent: bool = False
) -> tuple[str, str] | None:
    """What is wrong with a fault's fields, as (field, reason), or None if nothing.

    ``field`` is ``duration``, ``factor`` (a slow robot's or a creeping one's slowdown, the
    share of messages a ``message_loss`` loses, the share a wear reaches, a drifting joint)
    or ``permanent``.
    """
    if duration_s < 0:
        return "duration", f"must not be negative, got {duration_s:g}"
    if not math.isfinite(duration_s) or duration_s > MAX_DURATION_S:
        return "duration", f"a duration must be finite and at most {MAX_DURATION_S:g} s"
    if permanent and kind not in PERMANENT_KINDS:
        kinds = ", ".join(k.value for k in PERMANENT_KINDS)
        return "permanent", f"only a {kinds} can be permanent, not {kind.value}"
    if permanent and duration_s != 0:
        return "duration", PERMANENT_HAS_NO_DURATION
    if kind in TIMED and not permanent and not duration_s > 0:
        also = " (or permanent)" if kind in PERMANENT_KINDS else ""
        return "duration", f"{kind.value} needs a duration > 0{also}"
    if kind in (FaultKind.SLOW_ROBOT, FaultKind.CYCLE_CREEP) and not 1 < factor <= MAX_SLOWDOWN:
        what = "a slow robot" if kind is FaultKind.SLOW_ROBOT else "a cycle creep"
        why = f"{what} needs a factor > 1 and at most {MAX_SLOWDOWN:g}, got {factor:g}"
        return "factor", why
    if kind is FaultKind.GRIPPER_WEAR and not 0 < factor <= 1:
        return "factor", f"a share of carries lost is above 0 and at most 1, got {factor:g}"
    if kind is FaultKind.BELT_WEAR and not 0 < factor < 1:
        return "factor", f"a share of belt speed lost is between 0 and 1, got {factor:g}"
    if kind is FaultKind.TOOL_WEAR and not 0 < factor < 1:
        return "factor", f"a share of torque lost is between 0 and 1, got {factor:g}"
    if kind is FaultKind.JOINT_DRIFT and not (0 <= factor <= MAX_JOINT and factor == int(factor)):
        why = f"a joint is a whole number from 1 to {MAX_JOINT} (0: drawn), got {factor:g}"
        return "factor", why
    if kind is FaultKind.MESSAGE_LOSS and not 0 < factor < 1:
        return "factor", f"a share of messages lost is between 0 and 1, got {factor:g}"
    return None


def wear_share(t_ns: int, start_ns: int, end_ns: int) -> float:
    """How far a wear has grown at ``t_ns``: 0 at its start, 1 at its end and after (linear).

    One rule for every degrading kind, whoever applies it (the world a belt's or a gripper's,
    the supervisor a cycle creep's).
    """
    return min(max((t_ns - start_ns) / max(end_ns - start_ns, 1), 0.0), 1.0)
