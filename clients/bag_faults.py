"""Which injected faults are on now, from the events the supervisor really logs.

A bag's ``/diagnostics`` shows each fault from ``fault_injected`` (``fault``
names the kind, ``target`` the robot, belt, sensor or ``supervisor``) until
the cell has got over it, whatever PackML states the robot passes through
meanwhile. The recovery signs are the ones ``docs/faults.md`` lists per kind
(and ``supervisor.faultstats`` pairs): the paired events of the supervisor's
watchers (``conveyor_cleared``, ``sensor_restored``, ``robot_speed_ok``,
``link_ok``), a stopped robot back in Execute after it went down, a restored
supervisor back at work. A gripper drop is over when the supervisor says so:
each KPI snapshot lists every fault with its recovery, and that list also
settles anything the events alone leave open. A fault nothing ever detected
(a jam of an empty belt) is over when its duration is, plus the tracker's
grace. The supervisor's tracker is not imported: clients speak to a cell
through its logs and telemetry only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bus.simtime import NS

DETECT_GRACE_NS = 2 * NS
"""As ``supervisor.faultstats.DETECT_GRACE_S``: a sign later than this after a fault's end is not its."""
PAIRED: dict[str, tuple[str, str, str]] = {
    "conveyor_jam": ("conveyor", "conveyor_jammed", "conveyor_cleared"),
    "sensor_blackout": ("sensor", "sensor_stale", "sensor_restored"),
    "slow_robot": ("robot", "robot_slow", "robot_speed_ok"),
    "message_loss": ("robot", "link_lossy", "link_ok"),
}
"""Kinds with a pair of events: (field naming the target, detected, recovered)."""
STOPPING = frozenset({"robot_fault", "agent_crash"})
"""Kinds that take a robot down: over when it is back in Execute after going down."""
BACK_AT_WORK = frozenset({"op_awarded", "op_done", "op_settled"})
EXECUTE = "Execute"


@dataclasses.dataclass(slots=True)
class OpenFault:
    """One fault not yet over."""

    at_ns: int
    kind: str
    target: str
    duration_ns: int
    permanent: bool
    detected: bool = False


class ActiveFaults:
    """Feed it events (and KPI snapshots); ask what is on per target."""

    def __init__(self) -> None:
        self.open: list[OpenFault] = []
        self._restored_ns = -1
        """When a supervisor last came back: it logs the crash that killed it after that."""

    def on(self, target: str) -> list[str]:
        """The kinds of the faults on ``target`` now, oldest first."""
        return [f.kind for f in self.open if f.target == target]

    @property
    def targets(self) -> list[str]:
        """Every target with a fault on, in the order the faults came."""
        return list(dict.fromkeys(f.target for f in self.open))

    def tick(self, t_ns: int) -> bool:
        """Let undetected faults whose time is up end; True if one did."""
        keep = [
            f
            for f in self.open
            if f.detected
            or f.permanent
            or not f.duration_ns
            or t_ns <= f.at_ns + f.duration_ns + DETECT_GRACE_NS
        ]
        changed = len(keep) != len(self.open)
        self.open = keep
        return changed

    def event(self, t_ns: int, kind: str, rec: dict[str, Any]) -> bool:
        """Take one event; True if the open faults changed."""
        if kind == "fault_injected":
            target = _s(rec, "target") or _s(rec, "robot")
            duration = rec.get("duration_s")
            dur = round(float(duration) * NS) if isinstance(duration, int | float) else 0
            fault = OpenFault(
                t_ns, _s(rec, "fault") or kind, target, dur, rec.get("permanent") is True
            )
            fault.detected = fault.kind == "supervisor_crash" and self._restored_ns == t_ns
            self.open.append(fault)
            return True
        if kind == "supervisor_restored":
            self._restored_ns = t_ns
        before = len(self.open)
        for f in list(self.open):
            if t_ns < f.at_ns:
                continue
            if f.kind in PAIRED:
                key, det, rec_kind = PAIRED[f.kind]
                if _s(rec, key) != f.target:
                    continue
                if kind == det:
                    f.detected = True
                elif kind == rec_kind:
                    self.open.remove(f)
            elif f.kind in STOPPING and _s(rec, "robot") == f.target:
                dst = _s(rec, "dst")
                if kind == "robot_lost" or (kind == "robot_state" and dst != EXECUTE):
                    f.detected = True
                elif kind == "robot_state" and f.detected and not f.permanent:
                    self.open.remove(f)
            elif f.kind == "supervisor_crash":
                if kind == "supervisor_restored":
                    f.detected = True
                elif kind in BACK_AT_WORK and f.detected:
                    self.open.remove(f)
            elif f.kind == "gripper_drop" and _s(rec, "robot") == f.target:
                f.detected |= kind == "op_failed"
        return len(self.open) != before

    def kpis(self, data: str) -> bool:
        """Take a KPI snapshot: faults its list says are recovered are over."""
        try:
            snap = json.loads(data)
        except ValueError:
            return False
        listed = snap.get("faults") if isinstance(snap, dict) else None
        if not isinstance(listed, list):
            return False
        done = set()
        for item in listed:
            if isinstance(item, dict) and item.get("recovered_at_s") is not None:
                at = item.get("at_s")
                if isinstance(at, int | float):
                    done.add((round(at * 1000), _s(item, "kind"), _s(item, "target")))
        keep = [f for f in self.open if (round(f.at_ns / 1e6), f.kind, f.target) not in done]
        changed = len(keep) != len(self.open)
        self.open = keep
        return changed


def _s(rec: dict[str, Any], key: str) -> str:
    v = rec.get(key)
    return v if isinstance(v, str) else ""
