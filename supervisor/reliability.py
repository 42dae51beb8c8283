"""ISO 22400-2 figures of a run: availability, MTBF, MTTR and OEE, per robot, for the cell and per fault kind.

Computed from what a ``FaultTracker`` followed in the event log, so a
restored supervisor, a re-run with the same seed and the report all see the
same numbers. The definitions (``docs/faults.md``, "KPIs"):

* a robot's time goes to the buckets of ``bus.timebuckets``; while one of its
  outages is open the time is down time, whatever its state;
* availability = actual production time / planned busy time (the run): a
  robot's time producing over the run; the cell's is the mean over robots;
* performance = ideal time x output / actual production time. A robot's
  output is its operations done, each worth the fastest time any robot did
  that recipe step in; the cell's is its units shipped, worth the fastest
  unit cycle shared by the fixtures that work at once;
* quality = good / all (``supervisor.quality``): units that passed their first
  inspection over units inspected, for the cell and for each robot over the
  units it worked on; before any unit was inspected (a recipe with no
  inspection), operations done over done and failed for a robot, units
  shipped over shipped and scrapped for the cell;
* OEE = availability x performance x quality;
* MTBF = (run - time down) / failures (the run when nothing failed); MTTR =
  mean time of the repairs that finished (None when none did). A robot's
  failures are its outages; the cell's are every outage, its robots' and its
  own, and its time down is the time any of them was open.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from bus.simtime import NS
from bus.timebuckets import TimeBucket, bucket
from supervisor.faultstats import CELL_KINDS, FaultTracker, Outage, RobotLog


def _secs(ns: float) -> float:
    return round(ns / NS, 3)


def _ratio(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _div(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _product(*xs: float | None) -> float | None:
    out = 1.0
    for x in xs:
        if x is None:
            return None
        out *= x
    return out


def union_ns(spans: Iterable[tuple[int, int]]) -> int:
    """The length of the union of ``[start, end)`` spans."""
    total, cur_s, cur_e = 0, -1, -1
    for s, e in sorted(spans):
        if s > cur_e:
            total += max(0, cur_e - cur_s)
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + max(0, cur_e - cur_s)


def _span(o: Outage, now_ns: int) -> tuple[int, int]:
    """An outage clipped to the run so far (an open one lasts until now)."""
    start = min(o.start_ns, now_ns)
    end = now_ns if o.end_ns is None else min(o.end_ns, now_ns)
    return start, max(start, end)


def _overlap(s: int, e: int, downs: list[tuple[int, int]]) -> int:
    return sum(max(0, min(e, de) - max(s, ds)) for ds, de in downs)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def time_buckets(log: RobotLog, downs: list[tuple[int, int]], now_ns: int) -> dict[str, int]:
    """Nanoseconds per ``TimeBucket`` of one robot up to ``now_ns``; ``downs`` are its outages."""
    merged = _merged(downs)
    out = {b.value: 0 for b in TimeBucket}
    states = log.states
    for i, (since, state) in enumerate(states):
        s = min(since, now_ns)
        e = min(states[i + 1][0], now_ns) if i + 1 < len(states) else now_ns
        if e <= s:
            continue
        down = _overlap(s, e, merged)
        out[TimeBucket.DOWN.value] += down
        out[bucket(state).value] += e - s - down
    return out


def _reliability(spans: list[tuple[int, int, bool]], run_ns: int) -> dict[str, Any]:
    """Failures, time down, MTBF and MTTR of ``(start, end, repaired)`` outages."""
    down = union_ns((s, e) for s, e, _ in spans)
    repairs = [(e - s) / NS for s, e, done in spans if done]
    failures = len(spans)
    return {
        "failures": failures,
        "down_s": _secs(down),
        "mtbf_s": _secs((run_ns - down) / failures if failures else run_ns),
        "mttr_s": round(statistics.fmean(repairs), 3) if repairs else None,
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "mean": round(statistics.fmean(values), 3) if values else None,
        "max": round(max(values), 3) if values else None,
    }


def figures(tr: FaultTracker, now_ns: int) -> dict[str, Any]:
    """Every figure at ``now_ns``: ``cell``, ``robots`` (by name), ``faults``, ``by_fault_kind``,
    ``outages`` (see the module docstring and ``docs/faults.md``)."""
    run_ns = max(0, now_ns)
    spans = [(*_span(o, run_ns), o.end_ns is not None and o.end_ns <= run_ns) for o in tr.outages]
    robots: dict[str, dict[str, Any]] = {}
    avail: dict[str, float | None] = {}
    for name, log in tr.robots.items():
        mine = [sp for o, sp in zip(tr.outages, spans, strict=True) if o.robot == name]
        times = time_buckets(log, [(s, e) for s, e, _ in mine], run_ns)
        production = times[TimeBucket.PRODUCTION.value]
        # a robot built in the cell is planned for from when it joined, not from the start
        planned = max(0, run_ns - log.states[0][0])
        a = _div(production, planned)
        ideal = sum(n * tr.ideal_ns[step] for step, n in log.done.items() if step in tr.ideal_ns)
        p = _div(ideal, production)
        done = sum(log.done.values())
        q = tr.quality.robot_quality(name)
        q = _div(done, done + log.failed) if q is None else q
        avail[name] = a
        robots[name] = {
            "availability": _ratio(a),
            **_reliability(mine, planned),
            "time_s": {k: _secs(v) for k, v in times.items()},
            "oee": {
                "availability": _ratio(a),
                "performance": _ratio(p),
                "quality": _ratio(q),
                "oee": _ratio(_product(a, p, q)),
            },
        }
    known = [a for a in avail.values() if a is not None]
    cell_a = statistics.fmean(known) if known else None
    ideal_cycle = min(tr.cycles_s) if tr.cycles_s else None
    stations = len(tr.fixtures) or 1
    production_s = run_ns / NS * (cell_a if cell_a is not None else 1.0)
    cell_p = (
        _div(ideal_cycle / stations * tr.good, production_s) if ideal_cycle is not None else None
    )
    cell_q = tr.quality.cell.quality
    cell_q = _div(tr.good, tr.good + tr.scrapped) if cell_q is None else cell_q
    cell_oee = _product(cell_a, cell_p, cell_q)
    cell = {
        "availability": _ratio(cell_a),
        **_reliability(spans, run_ns),
        "oee": {
            "availability": _ratio(cell_a),
            "performance": _ratio(cell_p),
            "quality": _ratio(cell_q),
            "oee": _ratio(cell_oee),
            "ideal_cycle_s": ideal_cycle,
            "stations": stations,
            "production_s": round(production_s, 3),
        },
    }
    outages = [
        {
            "robot": o.robot or None,
            "start_s": _secs(s),
            "end_s": _secs(e),
            "ttr_s": _secs(e - s),
            "repaired": done,
            "cause": o.cause,
            "fault": o.fault,
        }
        for o, (s, e, done) in zip(tr.outages, spans, strict=True)
    ]
    by_kind = _by_kind(tr, spans, run_ns, cell_p, cell_q, cell_oee)
    return {
        "cell": cell,
        "robots": robots,
        "faults": fault_list(tr),
        "by_fault_kind": by_kind,
        "outages": outages,
    }


def fault_list(tr: FaultTracker) -> list[dict[str, Any]]:
    """Every injected fault with its detection and recovery (None where there was none)."""
    out = []
    for f in tr.faults:
        det = f.detected_ns
        rec = f.recovered_ns
        out.append(
            {
                "at_s": _secs(f.at_ns),
                "kind": f.kind,
                "target": f.target,
                "duration_s": f.duration_s,
                "permanent": f.permanent,
                "detected_at_s": None if det is None else _secs(det),
                "detection_s": None if det is None else _secs(det - f.at_ns),
                "detected_by": f.detected_by,
                "recovered_at_s": None if rec is None else _secs(rec),
                "recovery_s": None if rec is None or det is None else _secs(rec - det),
                "recovered_by": f.recovered_by,
            }
        )
    return out


def _by_kind(
    tr: FaultTracker,
    spans: list[tuple[int, int, bool]],
    run_ns: int,
    perf: float | None,
    qual: float | None,
    oee: float | None,
) -> dict[str, dict[str, Any]]:
    """Per fault kind: how many, how fast found and fixed, and what they cost."""
    out: dict[str, dict[str, Any]] = {}
    n_robots = len(tr.robots)
    for kind in sorted({f.kind for f in tr.faults}):
        idx = {i for i, f in enumerate(tr.faults) if f.kind == kind}
        faults = [tr.faults[i] for i in sorted(idx)]
        detect = [(f.detected_ns - f.at_ns) / NS for f in faults if f.detected_ns is not None]
        recover = [
            (f.recovered_ns - f.detected_ns) / NS
            for f in faults
            if f.recovered_ns is not None and f.detected_ns is not None
        ]
        down = sum(e - s for o, (s, e, _) in zip(tr.outages, spans, strict=True) if o.fault in idx)
        cell = kind in CELL_KINDS
        if cell:
            # the robots stay in Execute: the cell's availability does not fall, its output does
            a_lost = 0.0
            oee_lost = _product(_div(down, run_ns), oee)
        else:
            a_lost = _div(down, run_ns * n_robots) or 0.0
            oee_lost = _product(a_lost, perf, qual)
        out[kind] = {
            "scope": "cell" if cell else "robot",
            "count": len(faults),
            "detected": len(detect),
            "recovered": len(recover),
            "detection_s": _stats(detect),
            "recovery_s": _stats(recover),
            "downtime_s": _secs(down),
            "availability_lost": _ratio(a_lost),
            "oee_lost": _ratio(oee_lost),
        }
    return out


def add_figures(report: dict[str, Any], tr: FaultTracker, now_ns: int) -> dict[str, Any]:
    """Merge ``figures`` into a ``Kpis.report``: the cell's at the top level, each robot's
    into ``robots.<name>``, and ``faults``, ``by_fault_kind``, ``outages``."""
    figs = figures(tr, now_ns)
    report.update(figs["cell"])
    robots = report.setdefault("robots", {})
    for name, extra in figs["robots"].items():
        robots.setdefault(name, {}).update(extra)
    for key in ("faults", "by_fault_kind", "outages"):
        report[key] = figs[key]
    report["quality"] = tr.quality.report()
    return report
