"""Self-diagnosis: a health model per robot, gripper and belt, from what the supervisor hears.

Nothing here is told what fault was injected. It reads series the
supervisor already gets and keeps one drift statistic (``supervisor.drift``)
on each:

* **joint tracking** (``world_sense.tracking``, once a second): per robot and
  joint, the drive's tracking error, two-sided. A drift names the **joint**
  (cause ``joint_drift``).
* **operation times** (``op_started`` to ``op_done`` in the log): per robot,
  each operation's time over the time learned for the same step at the same
  stations from the same start (the mean of its first ``KEY_LEARN``), one series
  per robot. A rise names the robot's **motion** (cause ``cycle_creep``).
* **bids** (``op_awarded`` in the log): per robot, the time each bid of an idle
  robot plans for the operation over its first plan for the same step and
  stations from the same start (where its last operation left the arm: a plan
  from the far end of the cell is twice one from next door, and is no creep). The
  agent plans at its real speed, so a slowing robot's plans slow too, and it
  keeps bidding when the auctions no longer give it work (when its measured
  times stop coming). A rise names its **motion** too.
* **carries** (``op_done`` / ``op_failed`` of a pick-and-place): per robot, 1
  for a part lost from the gripper (``dropped`` or ``grasp missed``), 0 for a
  carry done. A rise names the robot's **gripper** (cause ``gripper_wear``).
* **belt transits** and **queue advances** (from the world's events,
  ``supervisor.belts``): a part's ride to a belt's end where nothing queued it,
  and, where parts queue, the time the next one takes to ride up when the one at
  the end is taken. A rise names the **belt** (cause ``belt_wear``).

A series' alarm becomes a ``diagnosis`` event with its evidence: the
statistic, its threshold, the baseline, the samples judged and the last
values. One diagnosis per target, the first cause found, until ``reset``
(what maintenance will call): what drifts after it is most often its effect
(a robot whose gripper loses parts plans longer moves, picking them up
again; a drifting joint misses grasps). Alarms are collected while the log is observed and
written by ``judge`` once a tick, so an observer never writes to the log it
observes. The component snapshots and restores itself for the journal.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from bus.enums import Skill
from bus.faults import MAX_JOINT
from bus.messages import JointTracking, WorldEvent
from bus.simtime import NS
from supervisor.belts import BeltTimes, BeltWatch
from supervisor.drift import Alarm, Detector, make_detector
from supervisor.eventlog import EventLog
from supervisor.health_series import KNOWN, SERIES, detector, expect
from supervisor.plan import Op

KEY_LEARN = 3
"""Operations of one step, at the same stations and from the same start, averaged into its
learned time. The key is as fine as the bids' (``_bids``): a step's time differs by some 10%
between the two fixtures and by up to twice between a start next door and one at the far
end of the cell, and a series that mixed them moved with the share of the work a robot
happens to get (fault-free runs raised false creeps so: ``bench/RESULTS.md``). Three, not
one: the reference is then not one draw of the time's own noise."""
RECENT = 16
"""Last values of each series kept, and logged with a diagnosis (the chart's data)."""
MAX_TRACKING_RAD = 1.0
"""A reported tracking error beyond this (radians) is not a drive's report: refused, counted."""
PERSIST_SAMPLES = 3
"""Fresh samples ``Health.persists`` needs to say a drift still shows."""
LOST = ("dropped ", "grasp missed")
"""How an agent's failure detail begins when the part left the gripper (``robots.skills``)."""


FINISHED = ("unit_shipped", "unit_scrapped", "arm_commissioned")
"""Event kinds after which a unit is no longer followed."""
MAX_UNITS = 256
"""Units whose checked steps are remembered until their inspection (the oldest go first)."""


@dataclasses.dataclass(slots=True)
class _Pending:
    """An alarm seen while observing, to be written at the next ``judge``."""

    t_ns: int
    kind: str
    target: str
    part: str
    alarm: Alarm
    recent: list[float]


class Health:
    """The health model: one drift statistic per series, diagnoses in the event log."""

    def __init__(
        self,
        robots: Iterable[str],
        *,
        op_of: Callable[[str], Op | None],
        jammed: Callable[[], Collection[str]] = frozenset,
        method: str = "cusum",
        false_reject: float = 0.0,
        belts: Mapping[str, BeltTimes] | None = None,
    ) -> None:
        """``op_of`` finds an operation by id (its step and stations); ``jammed`` says which
        belts the supervisor holds for jammed now (a ride through a jam is no transit);
        ``belts`` each belt's times at its speed (which rides an end blocked, which parts
        queue; a belt not named gives no queue advances and any part at its end blocks);
        ``method`` is the drift statistic (``cusum`` or ``page_hinkley``); ``false_reject``
        the inspection's rate of failing good work (a sound robot's defect rate)."""
        self.false_reject = false_reject
        self.robots = set(robots)
        self.op_of = op_of
        self.jammed = jammed
        self.method = method
        make_detector(method)  # an unknown method fails here, not at the first sample
        self.detectors: dict[str, Detector] = {}
        self.recent: dict[str, deque[float]] = {}
        self.stamps: dict[str, deque[int]] = {}
        """When each of ``recent`` was sampled (sim ns)."""
        self.learned: dict[str, list[float]] = {}
        """Per robot, step, stations and start: the first times (``KEY_LEARN``), then with
        their mean after them (the reference)."""
        self.bid_learned: dict[str, float] = {}
        """Per robot, step, stations and start: the time its first bid planned (the bids'
        reference)."""
        self.where: dict[str, str] = {}
        """Per robot: where its last operation left the arm (its step and stations; "" for
        unknown, after a failure), the start its bids plan from."""
        self.times: dict[str, list[float]] = {}
        """Per robot and step: [operations done, their mean time] (the bottleneck's input)."""
        self.started: dict[str, list[Any]] = {}
        """Operations running: id -> [robot, start time]."""
        self._touched: set[str] = set()
        """Series sampled (or reset) since the journal last took them (``journal_rows``)."""
        self.belt = BeltWatch(belts or {}, self._sample)
        """The belts' rides, ends and queues (``supervisor.belts``)."""
        self.diagnosed: dict[str, dict[str, Any]] = {}
        """``target/part`` -> the diagnosis, once made."""
        self.refused = 0
        self.checked: dict[str, dict[str, list[str]]] = {}
        """Unit -> checked step -> [robot, series kind], until the unit is inspected."""
        self.fixture: dict[str, str] = {}
        """Unit -> the fixture it is built in, until it is inspected."""
        self.defects: dict[str, dict[str, dict[str, int]]] = {}
        """Robot -> {"steps": step -> defects, "stations": station -> defects}."""
        self.blamed: dict[str, deque[list[str]]] = {}
        """Station -> the robots whose steps were defective, per recent defective unit."""
        self._pending: list[_Pending] = []

    def add_robot(self, name: str) -> None:
        """A robot built in the cell joins: its series start from nothing."""
        self.robots.add(name)

    # ------------------------------------------------------------------ inputs

    def feed(self, rec: Mapping[str, Any]) -> None:
        """An event-log observer: operation times and carries from the robots' reports."""
        kind, t = rec.get("kind"), rec.get("t_ns")
        op_id, robot = str(rec.get("op", "")), str(rec.get("robot", ""))
        if isinstance(t, int) and kind in ("unit_started", "inspected", *FINISHED):
            self._unit(rec, t)
            return
        if not isinstance(t, int) or robot not in self.robots:
            return
        if kind == "op_awarded":
            self._bids(op_id, rec.get("bids"), t)
            return
        if kind == "op_started":
            self.started[op_id] = [robot, t]
            return
        if kind not in ("op_done", "op_failed"):
            return
        began = self.started.pop(op_id, None)
        op = self.op_of(op_id)
        start = self.where.get(robot, "")
        self.where[robot] = _place(op) if kind == "op_done" and op is not None else ""
        if op is None or op.pick:
            return  # unknown, or a recovery picking off-station: not a usual time
        if op.spec.skill is Skill.PICK_PLACE:
            detail = str(rec.get("detail", ""))
            lost = kind == "op_failed" and detail.startswith(LOST)
            if kind == "op_done" or lost:
                self._sample("carries", robot, "gripper", float(lost), t)
        if kind == "op_done" and began is not None and began[0] == robot:
            self._op_time(robot, op, start, (t - int(began[1])) / NS, t)
        if kind == "op_done" and (op.spec.tolerance > 0 or op.spec.min_torque > 0):
            series = "fastenings" if op.spec.skill is Skill.FASTEN else "placements"
            if op.unit in self.checked or len(self.checked) < MAX_UNITS:
                self.checked.setdefault(op.unit, {})[op.spec.name] = [robot, series]

    def _unit(self, rec: Mapping[str, Any], t_ns: int) -> None:
        """A unit started (its fixture) or inspected: a defect sample for each checked step
        of it and for its station."""
        unit, kind = str(rec.get("unit", "")), rec.get("kind")
        if kind == "unit_started":
            if unit in self.fixture or len(self.fixture) < MAX_UNITS:
                self.fixture[unit] = str(rec.get("fixture", ""))
            return
        if kind in FINISHED:
            self.fixture.pop(unit, None)
            self.checked.pop(unit, None)
            return
        steps = self.checked.pop(unit, None)
        station = self.fixture.get(unit, "")
        if not steps:
            return  # nothing of it checked (or inspected again: its steps were judged)
        raw = rec.get("defects")
        named = (
            {str(d[0]) for d in raw if isinstance(d, list) and d}
            if isinstance(raw, list)
            else set()
        )
        blamed = sorted({steps[s][0] for s in named if s in steps})
        for step, (robot, series) in sorted(steps.items()):
            bad = step in named
            if bad:
                mine = self.defects.setdefault(robot, {"steps": {}, "stations": {}})
                mine["steps"][step] = mine["steps"].get(step, 0) + 1
                if station:
                    mine["stations"][station] = mine["stations"].get(station, 0) + 1
            self._sample(series, robot, SERIES[series].component, float(bad), t_ns)
        if station:
            if named:
                self.blamed.setdefault(station, deque(maxlen=RECENT)).append(blamed)
            self._sample("stations", station, "fixture", float(bool(named)), t_ns)

    def _explained(self, station: str) -> bool:
        """Whether one robot did a defective step of every recent defective unit at
        ``station`` (then its own series names the cause, not the station)."""
        recent = list(self.blamed.get(station, ()))
        if not recent:
            return False
        common = set(recent[0]).intersection(*recent[1:])
        return bool(common)

    def _bids(self, op_id: str, bids: Any, t_ns: int) -> None:
        """Every idle bidder's planned time for the operation, against its first plan for the
        step: a robot that slows plans slower, and keeps bidding when it wins nothing."""
        op = self.op_of(op_id)
        if op is None or op.pick or not isinstance(bids, list):
            return
        busy = {str(r) for r, _t in self.started.values()}
        for bid in bids:
            if not (isinstance(bid, list) and len(bid) == 2 and isinstance(bid[1], int)):
                continue
            robot = str(bid[0])
            if robot in self.robots and robot not in busy and bid[1] > t_ns:
                step = f"{robot}/{_place(op)}<{self.where.get(robot, '')}"
                planned = (bid[1] - t_ns) / NS
                ref = self.bid_learned.get(step)
                if ref is None:
                    self.bid_learned[step] = planned  # the first plan: the reference
                else:
                    self._sample("bids", robot, "motion", planned / ref, t_ns)

    def tracking(self, reports: Iterable[JointTracking], now_ns: int) -> None:
        """The drives' tracking errors (validated: a robot of the cell, finite, bounded)."""
        for rep in reports:
            errors = rep.errors
            ok = (
                rep.robot in self.robots
                and len(errors) <= MAX_JOINT
                and all(math.isfinite(e) and abs(e) <= MAX_TRACKING_RAD for e in errors)
            )
            if not ok:
                self.refused += 1
                continue
            for j, e in enumerate(errors, start=1):
                self._sample("tracking", rep.robot, f"joint {j}", e, now_ns)

    def world_event(self, ev: WorldEvent) -> None:
        """Belt transits and queue advances from the world's events (``supervisor.belts``)."""
        self.belt.world_event(ev)

    # ------------------------------------------------------------------ judging

    def _op_time(self, robot: str, op: Op, start: str, seconds: float, t_ns: int) -> None:
        step = f"{robot}/{op.spec.name}"
        n, mean = self.times.get(step, (0.0, 0.0))
        self.times[step] = [n + 1, mean + (seconds - mean) / (n + 1)]
        key = f"{robot}/{_place(op)}<{start}"
        learned = self.learned.setdefault(key, [])
        if len(learned) < KEY_LEARN:
            learned.append(seconds)
            if len(learned) == KEY_LEARN:
                self.learned[key] = [*learned, sum(learned) / KEY_LEARN]
            return
        self._sample("ops", robot, "motion", seconds / learned[-1], t_ns)

    def _sample(self, kind: str, target: str, part: str, x: float, t_ns: int) -> None:
        key = f"{kind}:{target}/{part}"
        det = self.detectors.get(key)
        if det is None:
            det = self.detectors[key] = detector(self.method, kind, self.false_reject)
            self.recent[key] = deque(maxlen=RECENT)
        self.recent[key].append(round(x, 6))
        self.stamps.setdefault(key, deque(maxlen=RECENT)).append(t_ns)
        self._touched.add(key)
        alarm = det.update(x)
        if alarm is not None and f"{target}/{part}" not in self.diagnosed:
            self._pending.append(_Pending(t_ns, kind, target, part, alarm, list(self.recent[key])))

    def judge(self, events: EventLog, now_ns: int) -> list[dict[str, Any]]:
        """Write the diagnoses of the alarms seen since the last call (once a tick); return
        them (``t_ns`` and the event's fields) for maintenance to act on."""
        written: list[dict[str, Any]] = []
        jammed = self.jammed()
        self.belt.jammed(jammed)
        pending, self._pending = self._pending, []
        for p in pending:
            if any(n.partition("/")[0] == p.target for n in self.diagnosed):
                continue  # one cause a target: what drifts after it is most often its effect
            if p.kind == "stations" and self._explained(p.target):
                continue  # a robot's defects, not the station's: its own series names it
            spec = SERIES[p.kind]
            who = {"robot": p.target} if p.part != "belt" else {"conveyor": p.target}
            if p.kind == "stations":
                who = {"station": p.target}
            fields: dict[str, Any] = {
                **who,
                "target": p.target,
                "component": p.part,
                "cause": spec.cause,
                "quantity": spec.quantity,
                "evidence": {
                    **p.alarm.evidence(),
                    "learned_over": 0 if p.kind in KNOWN else spec.learn,
                },
                "recent": p.recent,
            }
            if p.kind in ("placements", "fastenings"):
                fields["defects"] = self.defects.get(p.target, {"steps": {}, "stations": {}})
            elif p.kind == "stations":
                fields["defects"] = {"robots": [list(r) for r in self.blamed.get(p.target, ())]}
            self.diagnosed[f"{p.target}/{p.part}"] = {
                "t_ns": now_ns,
                "cause": spec.cause,
                "component": p.part,
            }
            events.write(now_ns, "diagnosis", **fields)
            written.append({"t_ns": now_ns, **fields})
        return written

    def persists(self, target: str, component: str, since_ns: int) -> tuple[bool, float]:
        """Whether ``target``'s ``component`` still reads drifted: its learned series' samples
        since ``since_ns`` (at least ``PERSIST_SAMPLES`` of them) average at least one
        baseline sigma above the baseline. Maintenance confirms a slowing robot with it: a
        creep lasts, a passing slowdown does not. Also that mean score (0: too few samples)."""
        scores: list[float] = []
        for key, det in sorted(self.detectors.items()):
            name = key.partition(":")[2]
            if name != f"{target}/{component}" or not det.baseline.ready:
                continue
            stamps = self.stamps.get(key, deque())
            fresh = [x for x, t in zip(self.recent[key], stamps, strict=False) if t >= since_ns]
            scores += [det.baseline.z(x) for x in fresh]
        if len(scores) < PERSIST_SAMPLES:
            return False, 0.0
        mean = sum(scores) / len(scores)
        return mean >= 1.0, round(mean, 3)

    def reset(self, target: str) -> None:
        """``target`` was maintained: its series learn their baselines again, its diagnoses go."""
        for key, det in self.detectors.items():
            if key.partition(":")[2].partition("/")[0] == target:
                det.reset()
                expect(key.partition(":")[0], det, self.false_reject)
                self._touched.add(key)
        for learned in (self.learned, self.bid_learned):
            for step in [s for s in learned if s.partition("/")[0] == target]:
                del learned[step]
        self.where.pop(target, None)  # maintained: reset, so homed
        for name in [n for n in self.diagnosed if n.partition("/")[0] == target]:
            del self.diagnosed[name]
        self.defects.pop(target, None)
        self.blamed.pop(target, None)

    # ------------------------------------------------------------------ report, journal

    def op_times(self) -> dict[str, dict[str, float]]:
        """Operation name -> robot -> its mean time so far (s)."""
        out: dict[str, dict[str, float]] = {}
        for step, (_n, mean) in sorted(self.times.items()):
            robot, _, name = step.partition("/")
            out.setdefault(name, {})[robot] = mean
        return out

    def report(self) -> dict[str, Any]:
        """Per target: each series' baseline and state, and the diagnoses (for ``kpis.json``)."""
        out: dict[str, Any] = {}
        for key in sorted(self.detectors):
            kind, _, name = key.partition(":")
            target, _, part = name.partition("/")
            b = self.detectors[key].baseline
            out.setdefault(target, {"series": {}, "diagnoses": []})["series"][f"{kind}/{part}"] = {
                "learned": b.ready,
                "mean": float(f"{b.mean:.6g}"),
                "sigma": float(f"{b.sigma:.6g}"),
            }
        for name, diag in sorted(self.diagnosed.items()):
            target = name.partition("/")[0]
            out.setdefault(target, {"series": {}, "diagnoses": []})["diagnoses"].append(diag)
        return {"method": self.method, "targets": out, "refused_reports": self.refused}

    def snapshot(self) -> dict[str, Any]:
        """Every series' statistic and the bookkeeping around it, as plain data."""
        return {
            "detectors": {k: d.snapshot() for k, d in sorted(self.detectors.items())},
            "recent": {k: list(v) for k, v in sorted(self.recent.items())},
            "stamps": {k: list(v) for k, v in sorted(self.stamps.items())},
            **self._main(),
        }

    def journal_rows(self, *, changed: bool) -> dict[str, Any]:
        """The journal's rows (``supervisor.journal.Rows``): the bookkeeping in the main one,
        each series (its statistic, recent samples and their times) in a row of its own,
        named by its key; ``changed``: only the series sampled or reset since
        ``rows_written``."""
        keys = sorted(self._touched) if changed else sorted(self.detectors)
        rows: dict[str, Any] = {"": self._main()}
        for key in keys:
            rows[key] = [
                self.detectors[key].snapshot(),
                list(self.recent[key]),
                list(self.stamps.get(key, ())),
            ]
        return rows

    def rows_written(self) -> None:
        """The series ``journal_rows`` gave are in the journal."""
        self._touched.clear()

    def restore_rows(self, main: dict[str, Any], subs: dict[str, Any]) -> None:
        """Put back the rows ``journal_rows`` wrote."""
        if "detectors" in main:  # a journal from before the series had rows of their own
            self.restore(main)
            return
        self.restore(
            {
                **main,
                "detectors": {k: v[0] for k, v in subs.items()},
                "recent": {k: v[1] for k, v in subs.items()},
                "stamps": {k: v[2] for k, v in subs.items()},
            }
        )

    def _main(self) -> dict[str, Any]:
        """All but the series: what ``snapshot`` and the journal's main row share."""
        return {
            "learned": dict(sorted(self.learned.items())),
            "times": dict(sorted(self.times.items())),
            "bid_learned": dict(sorted(self.bid_learned.items())),
            "where": dict(sorted(self.where.items())),
            "started": dict(sorted(self.started.items())),
            **self.belt.snapshot(),
            "diagnosed": dict(sorted(self.diagnosed.items())),
            "robots": sorted(self.robots),
            "refused": self.refused,
            "checked": dict(sorted(self.checked.items())),
            "fixture": dict(sorted(self.fixture.items())),
            "defects": dict(sorted(self.defects.items())),
            "blamed": {k: list(v) for k, v in sorted(self.blamed.items())},
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote (what the log's history fed is replaced)."""
        self.detectors = {}
        for key, snap in data["detectors"].items():
            det = detector(self.method, key.partition(":")[0], self.false_reject)
            det.restore(snap)
            self.detectors[key] = det
        self.recent = {k: deque(v, maxlen=RECENT) for k, v in data["recent"].items()}
        stamps = data.get("stamps", {}).items()
        self.stamps = {k: deque((int(t) for t in v), maxlen=RECENT) for k, v in stamps}
        self.learned = {k: [float(x) for x in v] for k, v in data["learned"].items()}
        self.times = {k: [float(x) for x in v] for k, v in data.get("times", {}).items()}
        self.bid_learned = {k: float(v) for k, v in data.get("bid_learned", {}).items()}
        self.where = {k: str(v) for k, v in data.get("where", {}).items()}
        self.started = {k: list(v) for k, v in data["started"].items()}
        self.belt.restore(data)
        self.diagnosed = {k: dict(v) for k, v in data["diagnosed"].items()}
        self.robots |= set(data["robots"])
        self.refused = int(data["refused"])
        self.checked = {
            u: {s: list(v) for s, v in st.items()} for u, st in data.get("checked", {}).items()
        }
        self.fixture = dict(data.get("fixture", {}))
        self.defects = {
            r: {k: dict(v) for k, v in d.items()} for r, d in data.get("defects", {}).items()
        }
        self.blamed = {k: deque(v, maxlen=RECENT) for k, v in data.get("blamed", {}).items()}
        self._pending = []
        self._touched = set(self.detectors)  # the next commit writes every series' row


def _place(op: Op) -> str:
    """An operation's step and stations (``step@a,b``): where it leaves the arm."""
    return f"{op.spec.name}@{','.join(op.stations)}"
