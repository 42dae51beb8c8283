"""What a run's report shows, computed from ``kpis.json`` and ``events.jsonl``.

No plotting here: this module turns the two files into timelines (PackML
state spans, operations, faults, outages), series (throughput, part flow)
and the ISO 22400-2 figures, so tests can check the numbers behind every
picture without reading SVG. ``clients.report_plots`` draws them and
``clients.report`` writes the page.

Where ``kpis.json`` already holds a figure, that figure wins: the report
never contradicts the KPIs the run printed.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bus.enums import PackMLState
from bus.errors import ConfigError

NS = 1_000_000_000

PRODUCTIVE = frozenset({PackMLState.EXECUTE.value})
"""States that count as production time (availability's numerator)."""
DOWN_STATES = frozenset({PackMLState.ABORTING.value, PackMLState.ABORTED.value})
"""States a robot only reaches on a fault: entering one starts a failure."""
HOLD_STATES = frozenset({PackMLState.HOLDING.value, PackMLState.HELD.value})
"""States that are a failure only when a fault caused them (an operator's Hold is planned)."""
REPAIRED = frozenset({PackMLState.EXECUTE.value})
"""Back in production: the end of a repair."""
LOST = "lost"
"""The pseudo-state of a robot the supervisor lost, until it reports a state again."""
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
    """A failure of one robot (or of the cell, ``robot == ""``) and its repair.

    ``end_ns`` is when the robot was back in Execute; ``repaired`` is False
    when the run ended first (the repair time then runs to the end).
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
class Reliability:
    """MTBF and MTTR of one robot or the cell, in seconds (``None``: no repair finished)."""

    failures: int
    mtbf_s: float
    mttr_s: float | None
    down_s: float
    from_kpis: frozenset[str] = frozenset()
    """Which figures were taken from ``kpis.json`` (``failures``, ``mtbf_s``, ``mttr_s``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Oee:
    """ISO 22400-2 OEE and its factors; ``None`` where the run has nothing to divide by."""

    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    ideal_cycle_s: float | None
    """Fastest observed unit cycle (start in a fixture to ship)."""
    stations: int
    """Units the cell works on at once (fixtures used): the ideal cycle is shared by them."""
    production_s: float
    """Actual production time (APT): the run's length times availability."""
    from_kpis: frozenset[str]
    """Which of the figures were taken from ``kpis.json`` rather than computed."""


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
        elif e.kind == "robot_state" and e.data.get("dst") in DOWN_STATES:
            marks.append(Mark(e.t_ns, e.robot, str(e.data["dst"]), str(e.data.get("reason", ""))))
    return marks


def outages(run: Run) -> list[Outage]:
    """Failures and their repairs.

    A robot's failure starts at a fault event naming it (a kind containing
    ``fault``), at ``robot_lost``, at entering Aborting or Aborted, or at
    entering Holding or Held while a fault is open or the reason names one
    (an operator's Hold is planned and is no failure). It ends when the robot
    is back in Execute. Events of one failure (a fault, then the Abort it
    causes) count once. A killed agent is a failure of its robot; a killed
    supervisor a cell failure until it is restored (``supervisor_restored``).
    A fault naming no robot is a cell failure lasting its ``duration_s``, if
    it gives one.
    """
    out: list[Outage] = []
    open_: dict[str, tuple[int, str]] = {}
    robots = set(run.robots)
    cell_down: tuple[int, str] | None = None
    for e in timeline(run):
        robot = e.robot if e.robot in robots else ""
        cause = ""
        if e.kind == "process_killed":
            cause = str(e.data.get("fault", "crash"))
            if not robot:
                cell_down = cell_down or (e.t_ns, cause)
                continue
        elif e.kind == "supervisor_restored" and cell_down is not None:
            out.append(Outage("", cell_down[0], e.t_ns, cell_down[1], True))
            cell_down = None
        elif "fault" in e.kind:
            cause = str(e.data.get("fault") or e.kind)
            if not robot:
                dur = _float(e.data.get("duration_s")) or 0.0
                end = e.t_ns + round(dur * NS) if dur > 0 else e.t_ns
                end = min(end, run.end_ns)
                out.append(Outage("", e.t_ns, end, cause, end < run.end_ns or end == e.t_ns))
                continue
        elif e.kind == "robot_lost" and robot:
            cause = "lost"
        elif e.kind == "robot_state" and robot:
            dst = str(e.data.get("dst", ""))
            reason = str(e.data.get("reason", ""))
            if dst in DOWN_STATES:
                cause = dst
            elif dst in HOLD_STATES and "fault" in reason.lower():
                cause = f"{dst}: {reason}"
            elif dst in REPAIRED and robot in open_:
                start, why = open_.pop(robot)
                out.append(Outage(robot, start, e.t_ns, why, True))
        if cause and robot and robot not in open_:
            open_[robot] = (e.t_ns, cause)
    for robot, (start, why) in sorted(open_.items()):
        out.append(Outage(robot, start, max(start, run.end_ns), why, False))
    if cell_down is not None:
        out.append(Outage("", cell_down[0], max(cell_down[0], run.end_ns), cell_down[1], False))
    return sorted(out, key=lambda o: (o.start_ns, o.robot))


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _float(v: object) -> float | None:
    """``v`` as a float if it is a finite JSON number (not a bool), else None."""
    return float(v) if isinstance(v, int | float) and _number(v) else None


def reliability(run: Run, robot: str | None = None) -> Reliability:
    """MTBF and MTTR (ISO 22400-2) of one robot, or of the cell with ``robot=None``.

    MTBF is the operating time (the run less the time under repair) per
    failure; with no failure it is the whole run. MTTR is the mean time of the
    repairs that finished (``None`` if none did).
    """
    outs = [o for o in outages(run) if robot is None or o.robot == robot]
    run_s = run.end_ns / NS
    down_s = _union_ns([(o.start_ns, o.end_ns) for o in outs]) / NS
    if not outs:
        return Reliability(0, run_s, None, 0.0)
    done = [o.ttr_ns / NS for o in outs if o.repaired]
    mttr = sum(done) / len(done) if done else None
    return Reliability(len(outs), (run_s - down_s) / len(outs), mttr, down_s)


def cell_reliability(run: Run) -> Reliability:
    """The cell's ``reliability``, with ``failures``, ``mtbf_s`` and ``mttr_s`` from
    ``kpis.json`` where it has them (top level or in a ``reliability`` object)."""
    rel = reliability(run)
    k = run.kpis
    taken: set[str] = set()
    failures, mtbf, mttr = rel.failures, rel.mtbf_s, rel.mttr_s
    if (v := _kpi_figure(k, "failures")) is not None:
        failures, taken = int(v), taken | {"failures"}
    if (v := _kpi_figure(k, "mtbf_s")) is not None:
        mtbf, taken = v, taken | {"mtbf_s"}
    if (v := _kpi_figure(k, "mttr_s")) is not None:
        mttr, taken = v, taken | {"mttr_s"}
    return Reliability(failures, mtbf, mttr, rel.down_s, frozenset(taken))


def _union_ns(spans: list[tuple[int, int]]) -> int:
    total, cur_s, cur_e = 0, -1, -1
    for s, e in sorted(spans):
        if s > cur_e:
            total += max(0, cur_e - cur_s)
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + max(0, cur_e - cur_s)


# ---------------------------------------------------------------- ISO 22400-2


def _kpi_figure(kpis: Mapping[str, Any], *names: str) -> float | None:
    """A figure ``kpis.json`` already has: top level, or in an ``oee`` or ``reliability`` object."""
    nested = [kpis.get(k) for k in ("oee", "reliability")]
    for name in names:
        for src in (kpis, *(n for n in nested if isinstance(n, dict))):
            v = _float(src.get(name))
            if v is not None:
                return v
    return None


def state_seconds(run: Run) -> dict[str, dict[str, float]]:
    """Seconds per PackML state per robot: ``kpis.json``'s ``state_s`` if it has it, else events."""
    out: dict[str, dict[str, float]] = {}
    spans = state_spans(run)
    for robot in run.robots:
        given = (run.kpis.get("robots") or {}).get(robot, {}).get("state_s")
        if isinstance(given, dict) and given:
            out[robot] = {str(k): float(v) for k, v in given.items() if _number(v)}
            continue
        acc: dict[str, float] = {}
        for s in spans.get(robot, []):
            acc[s.label] = acc.get(s.label, 0.0) + s.length_ns / NS
        out[robot] = acc
    return out


def availability_of(run: Run, robot: str) -> float | None:
    """Time in Execute over the planned time (the run) for one robot."""
    if run.end_ns <= 0:
        return None
    secs = state_seconds(run).get(robot, {})
    return sum(v for k, v in secs.items() if k in PRODUCTIVE) / (run.end_ns / NS)


def oee(run: Run) -> Oee:
    """Availability, performance, quality and OEE of the cell (ISO 22400-2).

    * availability = actual production time / planned busy time: the robots'
      time in Execute over the run's length, summed over robots;
    * performance = ideal cycle time x units produced / actual production
      time, where the ideal cycle time is the fastest observed unit cycle
      shared by the fixtures working at once (two fixtures make two units in
      one cycle), and the actual production time is the run times
      availability;
    * quality = good units / (good + scrapped);
    * OEE = availability x performance x quality.

    Figures ``kpis.json`` has (``availability``, ``performance``, ``quality``,
    ``oee``, at its top level or in an ``oee`` object) are used as they are.
    """
    k = run.kpis
    taken: set[str] = set()
    run_s = run.end_ns / NS
    robots = run.robots
    avail = _kpi_figure(k, "availability")
    if avail is not None:
        taken.add("availability")
    elif robots and run_s > 0:
        per = [availability_of(run, r) or 0.0 for r in robots]
        avail = sum(per) / len(per)
    good = int(k.get("units_completed", 0) or 0)
    if "units_completed" not in k:
        good = sum(1 for e in run.events if e.kind == "unit_shipped")
    bad = int(k.get("units_scrapped", 0) or 0)
    if "units_scrapped" not in k:
        bad = sum(1 for e in run.events if e.kind == "unit_scrapped")
    cycles = [
        float(e.data["cycle_s"])
        for e in run.events
        if e.kind == "unit_shipped" and _number(e.data.get("cycle_s"))
    ]
    ct = k.get("cycle_time_s")
    fastest = ct.get("min") if isinstance(ct, dict) and _number(ct.get("min")) else None
    ideal = float(fastest) if fastest is not None else (min(cycles) if cycles else None)
    stations = (
        len({str(e.data.get("fixture")) for e in run.events if e.kind == "unit_started"}) or 1
    )
    production_s = run_s * avail if avail is not None else run_s
    perf = _kpi_figure(k, "performance")
    if perf is not None:
        taken.add("performance")
    elif ideal is not None and production_s > 0:
        perf = ideal / stations * good / production_s
    qual = _kpi_figure(k, "quality")
    if qual is not None:
        taken.add("quality")
    elif good + bad > 0:
        qual = good / (good + bad)
    total = _kpi_figure(k, "oee")
    if total is not None:
        taken.add("oee")
    elif avail is not None and perf is not None and qual is not None:
        total = avail * perf * qual
    return Oee(avail, perf, qual, total, ideal, stations, production_s, frozenset(taken))


# ---------------------------------------------------------------- series


def throughput_bins(run: Run, bin_s: float = 300.0) -> tuple[list[float], list[int]]:
    """Units shipped per ``bin_s`` of sim time: the bins' start times (s) and counts.

    A tail shorter than 5% of a bin (a run of 120.04 s in 60 s bins) joins
    the last bin rather than standing as a sliver of a bar.
    """
    n = max(1, math.ceil(run.end_ns / NS / bin_s - 0.05))
    counts = [0] * n
    for e in run.events:
        if e.kind == "unit_shipped":
            counts[min(n - 1, int(e.t_ns / NS // bin_s))] += 1
    return [i * bin_s for i in range(n)], counts


def shipped_times(run: Run) -> list[int]:
    """Sim times of every shipped unit, in order."""
    return [e.t_ns for e in run.events if e.kind == "unit_shipped"]


def part_flow(run: Run) -> Series:
    """Parts created, shipped, scrapped and in progress (WIP) over sim time.

    Created from ``part_created``; shipped from ``unit_shipped``'s ``parts``;
    scrapped from ``unit_scrapped``'s ``parts`` and ``part_scrapped``. WIP is
    created - shipped - scrapped (the ledger's balance), one sample per change.
    """
    created = shipped = scrapped = 0
    times: list[int] = [0]
    cols: dict[str, list[int]] = {"created": [0], "shipped": [0], "scrapped": [0], "wip": [0]}
    for e in run.events:
        if e.kind == "part_created":
            created += 1
        elif e.kind == "unit_shipped":
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
