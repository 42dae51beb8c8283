"""Faults paired with their detection and recovery, and the failures they cause, from the event log.

The supervisor hands every event it writes to a ``FaultTracker`` (through
``EventLog``'s observers), so the tracker sees exactly what ``events.jsonl``
holds, in the same order. It keeps no state of its own that the log does not
imply: a supervisor restored from its journal feeds it the journal's lines
and gets the same tracker back, and the same run gives the same figures.

For each injected fault (``fault_injected``: ``fault`` names the kind,
``target`` the robot, conveyor, sensor or ``supervisor``) it finds the first
event after it that shows the cell noticed (detection) and the first after
that which shows the cell got over it (recovery); ``docs/faults.md`` lists
them per kind. Alongside, it keeps each robot's PackML timeline and its
outages (a failure and its repair), from which ``supervisor.reliability``
computes availability, MTBF, MTTR and OEE.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from bus.enums import COMPLETED_EVENTS, DEGRADING_KINDS, FaultKind, PackMLState
from bus.simtime import NS
from bus.timebuckets import FAILURE_STATES, HOLD_STATES, LOST, REPAIRED_STATE
from supervisor.quality import QualityTracker

DETECT_GRACE_S = 2.0
"""A fault that lasts is detected while it lasts (or this soon after): a sign that comes later
is of something else (a later fault on the same target)."""
STOPPING = frozenset({FaultKind.AGENT_CRASH, FaultKind.ROBOT_FAULT})
"""Kinds that take their robot out of production: its outage starts at the fault."""
CELL_KINDS = frozenset(
    {FaultKind.SUPERVISOR_CRASH, FaultKind.CONVEYOR_JAM, FaultKind.SENSOR_BLACKOUT}
)
"""Kinds that stop (part of) the cell rather than one robot: a cell outage while they last."""
PAIRED: Mapping[str, tuple[str, str, str]] = {
    FaultKind.CONVEYOR_JAM: ("conveyor", "conveyor_jammed", "conveyor_cleared"),
    FaultKind.SENSOR_BLACKOUT: ("sensor", "sensor_stale", "sensor_restored"),
    FaultKind.SLOW_ROBOT: ("robot", "robot_slow", "robot_speed_ok"),
    FaultKind.MESSAGE_LOSS: ("robot", "link_lossy", "link_ok"),
}
"""Kinds the supervisor reports with a pair of events: (field naming the target, detected, recovered)."""
BACK_AT_WORK = frozenset({"op_awarded", "op_done", "op_settled"})
"""After a restart: the restored supervisor runs the cell's work again (its recovery)."""
OP_ENDS = frozenset({"op_done", "op_failed", "op_refused"})
"""A robot's report of the operation it ran."""


@dataclasses.dataclass(slots=True)
class Fault:
    """One injected fault and what became of it (times in sim nanoseconds; None: not yet)."""

    at_ns: int
    kind: str
    target: str
    duration_s: float = 0.0
    permanent: bool = False
    """It never ends by itself (a broken arm): it is never recovered."""
    detected_ns: int | None = None
    detected_by: str | None = None
    recovered_ns: int | None = None
    recovered_by: str | None = None
    op: str = ""
    """``gripper_drop``: the operation its robot was running when the part was let go."""
    part: str = ""
    """``gripper_drop``: the part that was in its gripper then."""


@dataclasses.dataclass(slots=True)
class Outage:
    """A failure of a robot (``robot == ""``: of the cell) from ``start_ns`` until repaired.

    ``end_ns`` is None while it lasts; ``fault`` is the index of the injected
    fault it is attributed to, if any (an operator's Abort has none).
    """

    robot: str
    start_ns: int
    end_ns: int | None
    cause: str
    fault: int | None = None


@dataclasses.dataclass(slots=True)
class RobotLog:
    """One robot's timeline and work, as the events tell it."""

    states: list[tuple[int, str]] = dataclasses.field(
        default_factory=lambda: [(0, PackMLState.STOPPED.value)]
    )
    """(since, state) at each change; PackML's initial state until it reports."""
    running: tuple[str, int] | None = None
    """The operation it runs and since when."""
    done: Counter[str] = dataclasses.field(default_factory=Counter)
    """Operations done, by recipe step."""
    failed: int = 0
    """Operations reported failed or refused."""
    holding: str = ""
    """The part in its gripper, as the ledger last moved it."""


def _str(ev: Mapping[str, Any], key: str) -> str:
    v = ev.get(key)
    return v if isinstance(v, str) else ""


def _redone(f: Fault, kind: str, ev: Mapping[str, Any]) -> str:
    """Whether ``ev`` ends a detected gripper drop: the failed operation is done after all
    (with the same part or a replacement), or the unit it was for is scrapped (the part
    that fell was the unit itself); without an operation, the fallen part is scrapped."""
    if f.op:
        if _str(ev, "op") == f.op and (kind == "op_done" or _str(ev, "how") in ("done", "world")):
            return kind
        unit = f.op.rpartition("/")[0]
        return kind if kind == "unit_scrapped" and unit and _str(ev, "unit") == unit else ""
    parts = ev.get("parts")
    if kind == "unit_scrapped" and isinstance(parts, list | tuple) and f.part in parts:
        return kind
    return kind if kind == "part_scrapped" and f.part and _str(ev, "part") == f.part else ""


def step_of(op_id: str) -> str:
    """The recipe step of an operation id (``<unit>/<step>``, a rework's too)."""
    return op_id.rpartition("/")[2].partition("~")[0]


class FaultTracker:
    """Pairs faults with detections and recoveries; keeps the outages and timelines behind the KPIs."""

    def __init__(self, robots: Iterable[str]) -> None:
        """A tracker for a cell with these robots (events about others are ignored)."""
        self.robots = {r: RobotLog() for r in sorted(robots)}
        self.faults: list[Fault] = []
        self.outages: list[Outage] = []
        self.good = 0
        self.scrapped = 0
        self.quality = QualityTracker()
        """Units inspected and good, per cell, robot and station (``supervisor.quality``)."""
        self.cycles_s: list[float] = []
        self.fixtures: set[str] = set()
        self.ideal_ns: dict[str, int] = {}
        """Fastest observed duration of each recipe step (its ideal time)."""
        self._open: list[int] = []
        """Indices of the faults an event may still detect or recover (the rest are settled)."""
        self._down: dict[str, int] = {}
        self._rejoined: list[str] = []
        """Robots heard again this tick after being lost (``robot_joined``)."""
        """Robot -> index of its open outage."""
        self._cell_down: dict[int, int] = {}
        """Fault index -> index of the cell outage it keeps open."""
        self._restart: tuple[int, int] | None = None
        """(time, outage index) of the last ``supervisor_restored``, to attribute to its crash."""
        self._tick_ns = -1
        self._tick: list[Mapping[str, Any]] = []
        """The events of the latest sim time so far: a fault logged after its own detection
        in the same tick (a restored supervisor logs the crash that killed it) still pairs."""

    def add_robot(self, name: str, since_ns: int = 0) -> None:
        """A robot built in the cell joined it: follow it too (from ``since_ns``)."""
        if name not in self.robots:
            self.robots[name] = RobotLog(states=[(since_ns, PackMLState.STOPPED.value)])

    # ------------------------------------------------------------------ input

    def feed(self, ev: Mapping[str, Any]) -> None:
        """Take one event (an ``events.jsonl`` record: ``t_ns``, ``kind`` and its fields)."""
        t, kind = ev.get("t_ns"), ev.get("kind")
        if not isinstance(t, int) or not isinstance(kind, str):
            return
        if kind == "robot_added":
            self.add_robot(_str(ev, "robot"), t)
        if t > self._tick_ns:
            self._rejoins()
            self._tick_ns, self._tick = t, []
        if kind == "fault_injected":
            self._inject(t, ev)
        else:
            detected, recovered = self._match(t, kind, ev, self._open)
            self._outages_of_faults(t, detected, recovered)
            if detected or recovered:
                self._settle()
        self._timeline(t, kind, ev)
        self._work(t, kind, ev)
        self.quality.feed(ev)
        if t == self._tick_ns:
            self._tick.append(ev)

    def _inject(self, t: int, ev: Mapping[str, Any]) -> None:
        kind, target = _str(ev, "fault"), _str(ev, "target") or _str(ev, "robot")
        duration = ev.get("duration_s")
        fault = Fault(
            at_ns=t,
            kind=kind,
            target=target,
            duration_s=float(duration) if isinstance(duration, int | float) else 0.0,
            permanent=ev.get("permanent") is True,
        )
        idx = len(self.faults)
        self.faults.append(fault)
        self._open.append(idx)
        if kind == FaultKind.GRIPPER_DROP and target in self.robots:
            log = self.robots[target]
            # holding nothing, the gripper lets go of the next part it carries: that
            # operation is only known when it fails
            fault.op = log.running[0] if log.running and log.holding else ""
            fault.part = log.holding
        if kind == FaultKind.SUPERVISOR_CRASH and self._restart is not None:
            # only the supervisor that came back can log the crash that killed it: the
            # crash came after its last journal commit and was detected by the restart
            t_back, out = self._restart
            outage = self.outages[out]
            fault.at_ns = outage.start_ns
            fault.detected_ns, fault.detected_by = t_back, "supervisor_restored"
            outage.cause, outage.fault, outage.end_ns = kind, idx, None
            self._cell_down[idx] = out
            self._restart = None
        for old in self._tick:  # what this tick said before the fault was logged
            t_old = old.get("t_ns")
            if isinstance(t_old, int):
                detected, recovered = self._match(t_old, _str(old, "kind"), old, (idx,))
                self._outages_of_faults(t_old, detected, recovered)
        self._settle()

    def _settle(self) -> None:
        """Forget faults no event can change any more: recovered, or permanent and detected."""
        self._open = [
            i
            for i in self._open
            if self.faults[i].recovered_ns is None
            and not (self.faults[i].permanent and self.faults[i].detected_ns is not None)
        ]

    def _match(
        self, t: int, kind: str, ev: Mapping[str, Any], which: Iterable[int]
    ) -> tuple[list[int], list[int]]:
        """Mark the faults among ``which`` that ``ev`` detects or recovers."""
        detected: list[int] = []
        recovered: list[int] = []
        for idx in sorted(which, reverse=True):  # the latest fault first
            f = self.faults[idx]
            if t < f.at_ns or f.recovered_ns is not None:
                continue
            if f.detected_ns is None:
                if any(
                    (self.faults[d].kind, self.faults[d].target) == (f.kind, f.target)
                    for d in detected
                ):
                    continue  # one sign, one fault: the latest open one of its kind there
                lasts = f.kind in DEGRADING_KINDS  # a wear stays once grown: never over
                late = t > f.at_ns + round((f.duration_s + DETECT_GRACE_S) * NS)
                if f.duration_s > 0 and late and not lasts:
                    continue  # over before anything showed: not detected
                label = self._detects(f, kind, ev)
                if label:
                    f.detected_ns, f.detected_by = t, label
                    detected.append(idx)
            elif not f.permanent:
                label = self._recovers(f, kind, ev)
                if label:
                    f.recovered_ns, f.recovered_by = t, label
                    recovered.append(idx)
        return detected, recovered

    @staticmethod
    def _detects(f: Fault, kind: str, ev: Mapping[str, Any]) -> str:
        """The name of the detection ``ev`` is for ``f`` ("" if it is none)."""
        if f.kind in PAIRED:
            key, det, _rec = PAIRED[f.kind]
            return det if kind == det and _str(ev, key) == f.target else ""
        if f.kind in DEGRADING_KINDS:
            # self-diagnosis naming the worn target and the right cause (supervisor.health)
            named = kind == "diagnosis" and _str(ev, "target") == f.target
            return "diagnosis" if named and _str(ev, "cause") == f.kind else ""
        if f.kind == FaultKind.SUPERVISOR_CRASH:
            return kind if kind == "supervisor_restored" else ""
        if kind == "part_moved":
            fell = _str(ev, "src") == f"gripper:{f.target}" and _str(ev, "dst") == "floor"
            part = _str(ev, "part")
            if f.kind == FaultKind.GRIPPER_DROP and fell and f.part in ("", part):
                f.part = part  # armed on an empty gripper: this is the part it let go
                return "part_moved floor"
            return ""
        if _str(ev, "robot") != f.target:
            return ""
        dst = _str(ev, "dst")
        if f.kind == FaultKind.ROBOT_FAULT and kind == "robot_state" and dst in FAILURE_STATES:
            return f"robot_state {dst}"
        if f.kind == FaultKind.AGENT_CRASH:
            if kind == "robot_lost":
                return kind
            # a restarted agent may report in before its silence was noticed
            if kind == "robot_state" and dst == PackMLState.STOPPED.value:
                return f"robot_state {dst}" if _str(ev, "reason") == "heartbeat" else ""
        if f.kind == FaultKind.GRIPPER_DROP and kind == "op_failed":
            if f.op and _str(ev, "op") == f.op:
                return kind
            detail = _str(ev, "detail").split()
            if not f.op and detail[:1] == ["dropped"]:
                # armed on an empty gripper: the next operation it dropped a part in
                f.op, f.part = _str(ev, "op"), detail[1].rstrip(":")
                return kind
        return ""

    @staticmethod
    def _recovers(f: Fault, kind: str, ev: Mapping[str, Any]) -> str:
        """The name of the recovery ``ev`` is for the detected ``f`` ("" if it is none)."""
        if f.kind in PAIRED:
            key, _det, rec = PAIRED[f.kind]
            return rec if kind == rec and _str(ev, key) == f.target else ""
        if f.kind == FaultKind.SUPERVISOR_CRASH:
            return kind if kind in BACK_AT_WORK else ""
        if f.kind in STOPPING:
            if kind == "robot_state" and _str(ev, "robot") == f.target:
                return "robot_state Execute" if _str(ev, "dst") == REPAIRED_STATE else ""
            return ""
        if f.kind == FaultKind.GRIPPER_DROP:
            return _redone(f, kind, ev)
        if f.kind in DEGRADING_KINDS and kind == "maintenance_done":
            # maintenance took the wear off its robot (``supervisor.maintenance``)
            return kind if _str(ev, "robot") == f.target else ""
        return ""

    # ------------------------------------------------------------------ outages

    def _outages_of_faults(self, t: int, detected: list[int], recovered: list[int]) -> None:
        for idx in detected:
            f = self.faults[idx]
            if f.kind in STOPPING and f.target in self.robots:
                self._robot_down(f.target, f.at_ns, f.kind, idx)
            elif f.kind in CELL_KINDS and idx not in self._cell_down:
                self._cell_down[idx] = len(self.outages)
                self.outages.append(Outage("", f.at_ns, None, f.kind, idx))
        for idx in recovered:
            out = self._cell_down.pop(idx, None)
            if out is not None:
                self.outages[out].end_ns = t

    def _robot_down(self, robot: str, start: int, cause: str, fault: int | None) -> None:
        """Open ``robot``'s outage, or give the open one its cause (the fault behind it)."""
        idx = self._down.get(robot)
        if idx is None:
            self._down[robot] = len(self.outages)
            self.outages.append(Outage(robot, start, None, cause, fault))
            return
        out = self.outages[idx]
        if fault is not None and out.fault is None:
            out.start_ns, out.cause, out.fault = min(out.start_ns, start), cause, fault

    def _open_fault(self, robot: str, kinds: frozenset[str]) -> int | None:
        """The latest fault of ``kinds`` on ``robot`` that is not over."""
        for idx in range(len(self.faults) - 1, -1, -1):
            f = self.faults[idx]
            if f.target == robot and f.kind in kinds and f.recovered_ns is None:
                return idx
        return None

    def _timeline(self, t: int, kind: str, ev: Mapping[str, Any]) -> None:
        """Robot states (with ``LOST``) and the outages they open and close."""
        if kind == "supervisor_restored":
            if any(
                self.faults[i].kind == FaultKind.SUPERVISOR_CRASH
                and self.faults[i].detected_ns == t
                for i in self._cell_down
            ):
                return  # the outage of the crash this restart ends is open already
            start = ev.get("from_t_ns")
            start = start if isinstance(start, int) and start <= t else t
            self._restart = (t, len(self.outages))
            self.outages.append(Outage("", start, t, "supervisor_restart"))
            return
        robot = _str(ev, "robot")
        log = self.robots.get(robot)
        if log is None:
            return
        if kind == "robot_joined":
            self._rejoined.append(robot)
            return
        if kind == "robot_lost":
            self._enter(log, t, LOST)
            lossy = self._open_fault(robot, frozenset({FaultKind.MESSAGE_LOSS}))
            self._robot_down(
                robot, t, FaultKind.MESSAGE_LOSS if lossy is not None else "lost", lossy
            )
            return
        if kind != "robot_state":
            return
        dst, reason = _str(ev, "dst"), _str(ev, "reason")
        self._enter(log, t, dst)
        if dst in FAILURE_STATES:
            self._robot_down(robot, t, dst, None)
        elif dst in HOLD_STATES and "fault" in reason.lower():
            self._robot_down(robot, t, f"{dst}: {reason}", None)
        elif dst == REPAIRED_STATE and robot in self._down:
            self.outages[self._down.pop(robot)].end_ns = t

    def _rejoins(self) -> None:
        """End of a tick: a robot heard again that reported no new state is where it was.

        (A robot taken for lost over a lossy link comes back in Execute, saying
        nothing new; a restarted agent reports Stopped in the same tick.)
        """
        t = self._tick_ns
        for robot in self._rejoined:
            log = self.robots[robot]
            if log.states[-1][1] != LOST:
                continue
            before = next((s for _, s in reversed(log.states) if s != LOST), None)
            if before is None:
                continue
            self._enter(log, t, before)
            if before == REPAIRED_STATE and robot in self._down:
                self.outages[self._down.pop(robot)].end_ns = t
        self._rejoined = []

    @staticmethod
    def _enter(log: RobotLog, t: int, state: str) -> None:
        last_t, last = log.states[-1]
        if state == last:
            return
        if t <= last_t:
            log.states[-1] = (last_t, state)
        else:
            log.states.append((t, state))

    # ------------------------------------------------------------------ work

    def _work(self, t: int, kind: str, ev: Mapping[str, Any]) -> None:
        """Operations per robot (for performance and quality) and units (for the cell's)."""
        if kind in COMPLETED_EVENTS:
            self.good += 1
            cycle = ev.get("cycle_s")
            if isinstance(cycle, int | float):
                self.cycles_s.append(float(cycle))
        elif kind == "unit_scrapped":
            self.scrapped += 1
        elif kind == "unit_started":
            self.fixtures.add(_str(ev, "fixture"))
        if kind == "part_moved":
            part, src, dst = _str(ev, "part"), _str(ev, "src"), _str(ev, "dst")
            for name, held in self.robots.items():
                if dst == f"gripper:{name}":
                    held.holding = part
                elif src == f"gripper:{name}" and held.holding == part:
                    held.holding = ""
            return
        op = _str(ev, "op")
        if kind in ("op_requeued", "op_settled"):
            for other in self.robots.values():
                if other.running and other.running[0] == op:
                    other.running = None
            return
        log = self.robots.get(_str(ev, "robot"))
        if log is None:
            return
        if kind == "op_started":
            log.running = (op, t)
        elif kind in OP_ENDS:
            started = log.running[1] if log.running and log.running[0] == op else None
            if log.running and log.running[0] == op:
                log.running = None
            if kind != "op_done":
                log.failed += 1
                return
            step = step_of(op)
            log.done[step] += 1
            if started is not None:
                took = t - started
                self.ideal_ns[step] = min(self.ideal_ns.get(step, took), took)
