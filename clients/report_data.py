"""What a run's report shows, read from ``kpis.json`` and ``events.jsonl``.

No plotting here: this module turns the two files into timelines (PackML
state spans, operations, fault marks), series (throughput, part flow) and
the outages, so tests can check the numbers behind every picture without
reading SVG. ``clients.report_plots`` draws them and ``clients.report``
writes the page.

The ISO 22400-2 figures (availability, performance, quality, OEE, MTBF,
MTTR), the faults with their detection and recovery, and the outages are the
supervisor's, taken from ``kpis.json`` as they are: one source of truth, so
the report never contradicts the KPIs the run printed. A run recorded before
``kpis.json`` had them still opens; those figures show as missing.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bus.enums import COMPLETED_EVENTS, PackMLState
from bus.errors import ConfigError
from bus.simtime import NS
from bus.timebuckets import FAILURE_STATES, LOST

FIGURES = ("availability", "mtbf_s", "mttr_s", "oee", "faults", "by_fault_kind", "outages")
"""Keys of ``kpis.json`` the supervisor has written since it computes the ISO 22400-2 figures."""
FAULT_KINDS = ("fault", "op_failed", "robot_lost", "process_killed")
"""Event kinds (substrings) marked on the Gantt chart as faults."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One line of ``events.jsonl``."""

    t_ns: int
    kind: str
    data: Mapping[str, Any]

    @property
    def robot(self) -> str:
        """The robot the event is about ("" if none): ``robot``, else a robot-looking ``target``."""
        name = self.data.get("robot")
        if isinstance(name, str):
            return name
        target = self.data.get("target")
        return target if isinstance(target, str) else ""


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """A finished run as read from its directory."""

    path: Path
    kpis: dict[str, Any]
    events: tuple[Event, ...]
    end_ns: int
    """The run's length in sim time (``duration_s`` of ``kpis.json``, else ``run_end``)."""

    @property
    def robots(self) -> list[str]:
        """Every robot named in ``kpis.json`` or in a robot event, sorted."""
        names = set(self.kpis.get("robots") or {})
        names.update(
            e.robot for e in self.events if e.robot and e.kind in ("robot_state", "robot_joined")
        )
        return sorted(names)


@dataclasses.dataclass(frozen=True, slots=True)
class Span:
    """A stretch of sim time ``[start_ns, end_ns)`` with a label (a state, an op id, a cause)."""

    start_ns: int
    end_ns: int
    label: str

    @property
    def length_ns(self) -> int:
        """``end_ns - start_ns``."""
        return self.end_ns - self.start_ns


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    """A fault marked on the Gantt chart: when, which robot ("" for the cell), what."""

    t_ns: int
    robot: str
    kind: str
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class Outage:
    """A failure of one robot (or of the cell, ``robot == ""``) and its repair (``kpis.json``).

    ``end_ns`` is when the robot was back in Execute (the cell's fault over);
    ``repaired`` is False when the run ended first (the repair time then runs
    to the end).
    """

    robot: str
    start_ns: int
    end_ns: int
    cause: str
    repaired: bool

    @property
    def ttr_ns(self) -> int:
        """Time to repair."""
        return self.end_ns - self.start_ns


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """Step series sampled at each change: ``t_ns[i]`` and each column's value from then on."""

    t_ns: tuple[int, ...]
    columns: dict[str, tuple[int, ...]]


# ---------------------------------------------------------------- loading


def load_run(run_dir: Path) -> Run:
    """Read ``kpis.json`` and ``events.jsonl`` from ``run_dir``.

    Raises ``ConfigError`` naming the file (and line) and the reason for a
    missing directory or file, bad JSON, or an event without ``t_ns`` and
    ``kind``: a report of a broken run would mislead.
    """
    if not run_dir.is_dir():
        raise ConfigError(str(run_dir), "", "no such run directory")
    kpis_path = run_dir / "kpis.json"
    events_path = run_dir / "events.jsonl"
    for p in (kpis_path, events_path):
        if not p.is_file():
            raise ConfigError(str(p), "", "missing (is this a run directory?)")
    try:
        kpis = json.loads(kpis_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(kpis_path), "", f"not JSON: {exc}") from None
    if not isinstance(kpis, dict):
        raise ConfigError(str(kpis_path), "", "not a JSON object")
    _check_kpis(kpis_path, kpis)
    events = tuple(read_events(events_path))
    end_ns = _end_ns(kpis, events)
    return Run(run_dir, kpis, events, end_ns)


def _check_kpis(path: Path, kpis: dict[str, Any]) -> None:
    """The keys the report reads must have the right types."""
    numbers = ("duration_s", "units_completed", "units_scrapped", "throughput_per_hour")
    for key in numbers:
        v = kpis.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ConfigError(str(path), key, f"expected a number, got {v!r}")
    for key in ("robots", "cycle_time_s", "ledger"):
        v = kpis.get(key)
        if v is not None and not isinstance(v, dict):
            raise ConfigError(str(path), key, f"expected an object, got {type(v).__name__}")
    for name, r in (kpis.get("robots") or {}).items():
        if not isinstance(r, dict):
            raise ConfigError(str(path), f"robots.{name}", "expected an object")
    for key in ("oee", "by_fault_kind"):
        v = kpis.get(key)
        if v is not None and not isinstance(v, dict):
            raise ConfigError(str(path), key, f"expected an object, got {type(v).__name__}")
    for key in ("faults", "outages"):
        v = kpis.get(key)
        if v is None:
            continue
        if not isinstance(v, list):
            raise ConfigError(str(path), key, f"expected an array, got {type(v).__name__}")
        for i, item in enumerate(v):
            if not isinstance(item, dict):
                raise ConfigError(str(path), f"{key}[{i}]", "expected an object")


def read_events(path: Path) -> Iterable[Event]:
    """The events of ``events.jsonl``, checked line by line."""
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", exc.strerror or str(exc)) from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ConfigError(str(path), f"line {n}", f"not JSON: {exc}") from None
            if not isinstance(rec, dict):
                raise ConfigError(str(path), f"line {n}", "not a JSON object")
            t, kind = rec.get("t_ns"), rec.get("kind")
            if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                raise ConfigError(
                    str(path), f"line {n}", f"t_ns must be an integer >= 0, got {t!r}"
                )
            if not isinstance(kind, str) or not kind:
                raise ConfigError(str(path), f"line {n}", f"kind must be a string, got {kind!r}")
            yield Event(t, kind, rec)


def _end_ns(kpis: Mapping[str, Any], events: tuple[Event, ...]) -> int:
    dur = kpis.get("duration_s")
    if isinstance(dur, int | float) and not isinstance(dur, bool) and dur > 0:
        return round(dur * NS)
    ends = [e.t_ns for e in events if e.kind == "run_end"]
    if ends:
        return ends[-1]
    return max((e.t_ns for e in events), default=0)


# ---------------------------------------------------------------- timelines


def state_spans(run: Run) -> dict[str, list[Span]]:
    """Each robot's PackML states as spans, from ``robot_state`` events to the run's end.

    From ``robot_lost`` until its next state the robot's state is ``LOST``:
    the supervisor cannot know it, and it is not producing for the cell.
    """
    out: dict[str, list[Span]] = {r: [] for r in run.robots}
    # like the supervisor's KPIs, a robot is Stopped (PackML's initial state) until it reports
    open_: dict[str, tuple[int, str]] = {r: (0, PackMLState.STOPPED.value) for r in run.robots}
    for e in run.events:
        if e.kind == "robot_state" and e.robot:
            dst = str(e.data.get("dst", ""))
        elif e.kind == "robot_lost" and e.robot:
            dst = LOST
        else:
            continue
        prev = open_.get(e.robot)
        if prev is not None and prev[1] == dst:
            continue  # the same state again (a first report of the initial state)
        if prev is not None and e.t_ns > prev[0]:
            out.setdefault(e.robot, []).append(Span(prev[0], e.t_ns, prev[1]))
        open_[e.robot] = (e.t_ns, dst)
    for robot, (start, state) in open_.items():
        if run.end_ns > start:
            out.setdefault(robot, []).append(Span(start, run.end_ns, state))
    return out


def op_spans(run: Run) -> dict[str, list[Span]]:
    """Each robot's operations, labelled ``ok``, ``failed`` or ``running`` (at the run's end).

    An operation runs from ``op_started`` to its ``op_done`` (ok),
    ``op_failed`` / ``op_refused`` (failed), ``op_settled`` (after a
    supervisor restart: ok if ``how`` is ``done``) or ``op_requeued`` (taken
    back: failed). A robot runs one operation at a time, so its next
    ``op_started`` ends one whose end was never logged.
    """
    out: dict[str, list[Span]] = {r: [] for r in run.robots}
    running: dict[str, tuple[str, int]] = {}
    """Robot -> (op id, start)."""

    def close(robot: str, t_ns: int, label: str) -> None:
        _op, t0 = running.pop(robot)
        out.setdefault(robot, []).append(Span(t0, max(t0, t_ns), label))

    for e in run.events:
        op = str(e.data.get("op", ""))
        if e.kind == "op_started" and e.robot:
            if e.robot in running:
                close(e.robot, e.t_ns, "ok")
            running[e.robot] = (op, e.t_ns)
            continue
        if e.kind == "op_done":
            label = "ok"
        elif e.kind in ("op_failed", "op_refused", "op_requeued"):
            label = "failed"
        elif e.kind == "op_settled":
            label = "ok" if e.data.get("how") == "done" else "failed"
        else:
            continue
        for robot, (rop, _t0) in list(running.items()):
            if rop == op and (robot == e.robot or not e.robot or e.kind == "op_requeued"):
                close(robot, e.t_ns, label)
    for robot in list(running):
        close(robot, run.end_ns, "running")
    return out


def crashes(run: Run) -> list[Event]:
    """Processes the launcher killed (``kpis.json`` ``sim.killed``: ``[t_ns, name]``) as events.

    A killed agent or supervisor writes nothing itself, and a quick restart
    may beat the supervisor's liveness check, so without these a crash would
    leave no mark. Kind ``process_killed``, with ``robot`` for an agent and
    ``target`` otherwise, and ``fault`` saying which crash it was.
    """
    sim = run.kpis.get("sim")
    killed = sim.get("killed") if isinstance(sim, dict) else None
    out = []
    robots = set(run.robots)
    for item in killed if isinstance(killed, list) else []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
            continue
        t = _float(item[0])
        if t is None:
            continue
        name = item[1]
        data: dict[str, Any] = (
            {"robot": name, "fault": "agent_crash"}
            if name in robots
            else {"target": name, "fault": f"{name}_crash"}
        )
        out.append(Event(int(t), "process_killed", data))
    return sorted(out, key=lambda e: e.t_ns)


def timeline(run: Run) -> list[Event]:
    """The run's events with its process crashes merged in, in sim-time order."""
    return list(heapq.merge(crashes(run), run.events, key=lambda e: e.t_ns))


def fault_marks(run: Run) -> list[Mark]:
    """Events marked red on the Gantt chart: kinds with ``fault``, ``op_failed``, ``robot_lost``,
    killed processes, and every entry into Aborting or Aborted."""
    marks = []
    for e in timeline(run):
        if any(k in e.kind for k in FAULT_KINDS):
            detail = str(e.data.get("fault") or e.data.get("detail") or e.data.get("reason") or "")
            marks.append(Mark(e.t_ns, e.robot, e.kind, detail))
        elif e.kind == "robot_state" and e.data.get("dst") in FAILURE_STATES:
            marks.append(Mark(e.t_ns, e.robot, str(e.data["dst"]), str(e.data.get("reason", ""))))
    return marks


def has_figures(run: Run) -> bool:
    """Whether ``kpis.json`` has the supervisor's ISO 22400-2 figures and fault list."""
    return all(key in run.kpis for key in FIGURES)


def outages(run: Run) -> list[Outage]:
    """The failures and their repairs the supervisor listed in ``kpis.json`` (none in an older run).

    ``docs/faults.md`` ("KPIs") says what starts and ends one: a robot's from
    its fault (or its abort, or its loss) until it is back in Execute; the
    cell's while an injected fault holds it (a crashed supervisor, a jammed
    belt, a blind sensor).
    """
    out = []
    for o in run.kpis.get("outages") or ():
        start, end = _float(o.get("start_s")), _float(o.get("end_s"))
        if start is None or end is None:
            continue
        robot = o.get("robot")
        out.append(
            Outage(
                robot if isinstance(robot, str) else "",
                round(start * NS),
                round(end * NS),
                str(o.get("cause", "")),
                o.get("repaired") is True,
            )
        )
    return sorted(out, key=lambda o: (o.start_ns, o.robot))


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _float(v: object) -> float | None:
    """``v`` as a float if it is a finite JSON number (not a bool), else None."""
    return float(v) if isinstance(v, int | float) and _number(v) else None


# ---------------------------------------------------------------- series


def throughput_bins(run: Run, bin_s: float = 300.0) -> tuple[list[float], list[int]]:
    """Units shipped per ``bin_s`` of sim time: the bins' start times (s) and counts.

    A tail shorter than 5% of a bin (a run of 120.04 s in 60 s bins) joins
    the last bin rather than standing as a sliver of a bar.
    """
    n = max(1, math.ceil(run.end_ns / NS / bin_s - 0.05))
    counts = [0] * n
    for e in run.events:
        if e.kind in COMPLETED_EVENTS:
            counts[min(n - 1, int(e.t_ns / NS // bin_s))] += 1
    return [i * bin_s for i in range(n)], counts


def shipped_times(run: Run) -> list[int]:
    """Sim times of every completed unit (shipped, or an arm commissioned), in order."""
    return [e.t_ns for e in run.events if e.kind in COMPLETED_EVENTS]


def part_flow(run: Run) -> Series:
    """Parts created, shipped, scrapped and in progress (WIP) over sim time.

    Created from ``part_created``; shipped from ``unit_shipped``'s ``parts`` (and the
    parts an arm built here was made of, ``arm_commissioned``: they left as a robot);
    scrapped from ``unit_scrapped``'s ``parts`` and ``part_scrapped``. WIP is
    created - shipped - scrapped (the ledger's balance), one sample per change.
    """
    created = shipped = scrapped = 0
    times: list[int] = [0]
    cols: dict[str, list[int]] = {"created": [0], "shipped": [0], "scrapped": [0], "wip": [0]}
    for e in run.events:
        if e.kind == "part_created":
            created += 1
        elif e.kind in COMPLETED_EVENTS:
            shipped += _count_parts(e)
        elif e.kind == "unit_scrapped":
            scrapped += _count_parts(e)
        elif e.kind == "part_scrapped":
            scrapped += 1
        else:
            continue
        if times[-1] == e.t_ns:
            for c in cols.values():
                c.pop()
            times.pop()
        times.append(e.t_ns)
        cols["created"].append(created)
        cols["shipped"].append(shipped)
        cols["scrapped"].append(scrapped)
        cols["wip"].append(created - shipped - scrapped)
    return Series(tuple(times), {k: tuple(v) for k, v in cols.items()})


def _count_parts(e: Event) -> int:
    parts = e.data.get("parts")
    return len(parts) if isinstance(parts, list) else 1
