"""The audit of a finished run: did the cell keep its promises through its faults?

Read from the run directory alone (``events.jsonl`` and ``kpis.json``), so it
can judge any run, live or old, without trusting the supervisor's own totals:

* **ledger balanced**: created = shipped + scrapped + work in progress;
* **every part in one place**: replaying the log, every move starts where
  the part was, no part ships or is scrapped twice, no part is in two units;
* **no operation done twice**: each operation completes at most once, each
  unit is fastened and shipped at most once, no shipped unit holds two parts
  of one kind;
* **robots recovered**: no robot ends the run down, judged from the outages
  in the log (``cells.crosscheck``), unless a fault failed it for good
  (``permanent``) or it is out for maintenance (``maintenance_started`` with
  no ``maintenance_done`` yet); and every robot ``kpis.json`` lists ends in Idle or Execute;
* **throughput in every window**: every whole window (300 s by default) of
  the run completes at least one unit (ships it, or commissions the arm as a
  robot). A cell that builds robots has nowhere to put an arm once every
  mount point of its bay holds one: windows after that are not judged. Nor
  is a window in which units were in the making for less than the run's
  longest cycle: a line of a pull factory with nothing released to it starts
  none (``crosscheck.making``); a cell that always has work is judged in
  every window.

the checks of the maintenances (``cells.decisions``: each acted on a
diagnosis, the robot in Maintenance by its own word and the world's, no work
while it was, restored by the world, before it failed), and the cross-checks
of ``cells.crosscheck``: sim time monotone, every
operation's physical minimum respected, the world's own records
(``world.jsonl``) showing every operation done, restored runs producing.

``lightsout audit RUN_DIR`` prints it; a ``--chaos`` run ends with it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any

from bus.enums import COMPLETED_EVENTS
from bus.errors import LightsoutError
from bus.simtime import NS
from cells import crosscheck

RECOVERED_STATES = ("idle", "execute")
WINDOW_S = 300.0


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One promise and whether the run kept it."""

    name: str
    ok: bool
    detail: str


def load(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The run's events and KPIs (LightsoutError naming the file if one is missing or bad)."""
    events_path, kpis_path = run_dir / "events.jsonl", run_dir / "kpis.json"
    try:
        lines = events_path.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        kpis = json.loads(kpis_path.read_text(encoding="utf-8"))
    except OSError as exc:
        why = f"{exc.strerror}: {exc.filename}"
        raise LightsoutError(f"{run_dir}: not a finished run ({why})") from None
    except json.JSONDecodeError as exc:
        raise LightsoutError(f"{run_dir}: a results file is not JSON: {exc}") from None
    if not isinstance(kpis, dict) or not all(isinstance(e, dict) for e in events):
        raise LightsoutError(f"{run_dir}: results are not what a run writes")
    return events, kpis


def audit_run(run_dir: Path, *, window_s: float = WINDOW_S) -> list[Check]:
    """Every check of the module docstring, for the run in ``run_dir``."""
    events, kpis = load(run_dir)
    return [
        ledger_balanced(kpis),
        one_place(events),
        done_once(events),
        robots_recovered(events, kpis),
        throughput_windows(events, kpis, window_s),
        time_monotone(events),
        *physical_checks(run_dir, events),
        restored_producing(events, kpis),
        *maintenance_checks(run_dir, events, kpis),
    ]


def maintenance_checks(
    run_dir: Path, events: list[dict[str, Any]], kpis: dict[str, Any]
) -> list[Check]:
    """Each maintenance against the diagnosis, the robot's word and the world (``cells.decisions``)."""
    from cells import decisions, optimize_audit

    end = round(float(kpis.get("duration_s", 0.0)) * NS)
    found = decisions.checks(events, crosscheck.load_world(run_dir), end)
    return found + optimize_audit.checks(events, kpis)


def time_monotone(events: list[dict[str, Any]]) -> Check:
    ok, detail = crosscheck.monotone(events)
    return Check("sim time monotone", ok, detail)


def physical_checks(run_dir: Path, events: list[dict[str, Any]]) -> list[Check]:
    """Operations no faster than physics allows, and each seen by the world itself."""
    names = ("operations physically possible", "the world saw every operation")
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        skills = crosscheck.step_skills(str(meta["cell"]))
    except (OSError, ValueError, KeyError, TypeError, LightsoutError) as exc:
        why = f"cannot judge without the run's cell (run.json): {exc}"
        return [Check(n, False, why) for n in names]
    ops = crosscheck.operations(events, skills)
    fast = crosscheck.physical(ops)
    out = [Check(names[0], not fast, "; ".join(fast[:5]) or f"{len(ops)} operations timed")]
    world = crosscheck.load_world(run_dir)
    if world is None:
        return [*out, Check(names[1], False, "no world.jsonl: the world's records are missing")]
    blind = crosscheck.unseen(ops, world)
    detail = "; ".join(blind[:5]) or f"{len(ops)} operations against {len(world)} world records"
    return [*out, Check(names[1], not blind, detail)]


def restored_producing(events: list[dict[str, Any]], kpis: dict[str, Any]) -> Check:
    end = round(float(kpis.get("duration_s", 0.0)) * NS)
    bad, n = crosscheck.restored_producing(events, end)
    detail = "; ".join(bad) or f"{n} restarts, each producing within {crosscheck.RESTORED_S:g} s"
    return Check("restored runs produce", not bad, detail)


def ledger_balanced(kpis: dict[str, Any]) -> Check:
    led = kpis.get("ledger", {})
    created, shipped = led.get("created", 0), led.get("shipped", 0)
    scrapped, wip = led.get("scrapped", 0), led.get("wip", 0)
    consumed = led.get("consumed", 0)
    ok = bool(kpis.get("ledger_balanced")) and created == shipped + scrapped + consumed + wip
    detail = f"created {created} = shipped {shipped} + scrapped {scrapped} + WIP {wip}"
    if consumed:
        detail += f" + built into robots {consumed}"
    return Check("ledger balanced", ok, detail)


def one_place(events: list[dict[str, Any]]) -> Check:
    """Replay every part's life; each move must start where the part was."""
    where: dict[str, str] = {}
    gone: dict[str, str] = {}
    unit_of: dict[str, str] = {}
    problems: list[str] = []

    def leave(part: str, fate: str, t: int) -> None:
        if part in gone:
            problems.append(f"{part} {fate} at {t / NS:.1f} s but already {gone[part]}")
        gone[part] = fate
        where.pop(part, None)

    for e in events:
        kind, t = e.get("kind"), int(e.get("t_ns", 0))
        if kind == "part_created":
            if e["part"] in where or e["part"] in gone:
                problems.append(f"{e['part']} created twice")
            where[e["part"]] = e["location"]
        elif kind == "part_moved":
            part = e["part"]
            if part in gone:
                problems.append(f"{part} moved at {t / NS:.1f} s after it was {gone[part]}")
            elif where.get(part) != e["src"]:
                problems.append(
                    f"{part} moved from {e['src']} at {t / NS:.1f} s but was at {where.get(part)}"
                )
            where[part] = e["dst"]
        elif kind in ("unit_shipped", "unit_scrapped", "arm_commissioned"):
            fate = {"unit_shipped": "shipped", "unit_scrapped": "scrapped"}.get(kind, "consumed")
            for part in e.get("parts", []):
                if unit_of.setdefault(part, e["unit"]) != e["unit"]:
                    problems.append(f"{part} in units {unit_of[part]} and {e['unit']}")
                leave(part, fate, t)
        elif kind == "part_scrapped":
            leave(e["part"], "scrapped", t)
        elif kind == "supervisor_restored":
            # the restored ledger must be the one the log implies
            restored = dict(e.get("ledger", {}))
            if restored != where:
                diff = sorted(set(restored.items()) ^ set(where.items()))[:3]
                problems.append(f"restored ledger differs from the log at {t / NS:.1f} s: {diff}")
            where = restored
    detail = f"{len(where) + len(gone)} parts followed"
    return Check("every part in one place", not problems, "; ".join(problems[:5]) or detail)


def done_once(events: list[dict[str, Any]]) -> Check:
    """Each operation completes once; each unit is fastened and shipped once, one part a kind."""
    completed: collections.Counter[str] = collections.Counter()
    fastened: collections.Counter[str] = collections.Counter()
    shipped: collections.Counter[str] = collections.Counter()
    kinds: dict[str, str] = {}
    problems: list[str] = []
    for e in events:
        kind = e.get("kind")
        if kind in ("op_done", "op_settled"):
            completed[e["op"]] += 1
        elif kind == "part_fastened":
            fastened[e["part"]] += 1
        elif kind == "part_created":
            kinds[e["part"]] = e.get("part_kind", "")
        elif kind in COMPLETED_EVENTS:
            shipped[e["unit"]] += 1
            held = collections.Counter(kinds.get(p, p) for p in e.get("parts", []))
            twice = sorted(k for k, n in held.items() if n > 1)
            if twice:
                problems.append(f"unit {e['unit']} shipped with {twice[0]} x{held[twice[0]]}")
    for name, counter in (("operation", completed), ("fasten of", fastened), ("unit", shipped)):
        problems += [f"{name} {k} done {n} times" for k, n in sorted(counter.items()) if n > 1]
    detail = f"{sum(completed.values())} operations, {sum(shipped.values())} units"
    return Check("no operation done twice", not problems, "; ".join(problems[:5]) or detail)


def robots_recovered(events: list[dict[str, Any]], kpis: dict[str, Any]) -> Check:
    """No robot down at the end by the log's outages, nor by ``kpis.json``, unless failed
    for good."""
    failed = {
        str(e.get("target"))
        for e in events
        if e.get("kind") == "fault_injected" and e.get("permanent")
    }
    out: set[str] = set()
    """Robots the run ended with out for maintenance (planned, not an outage)."""
    for e in events:
        if e.get("kind") == "maintenance_started":
            out.add(str(e.get("robot")))
        elif e.get("kind") in ("maintenance_done", "maintenance_cancelled"):
            out.discard(str(e.get("robot")))
    robots = kpis.get("robots", {})
    states = {name: str(r.get("state", "")).lower() for name, r in sorted(robots.items())}
    excused = failed | out
    bad = [f"{n} {s}" for n, s in states.items() if s not in RECOVERED_STATES and n not in excused]
    down, _ = crosscheck.down_at_end(events, excused)
    bad += down
    notes = {n: " (failed for good)" for n in failed} | {n: " (in maintenance)" for n in out}
    detail = ", ".join(f"{n} {s}" + notes.get(n, "") for n, s in states.items())
    return Check("robots recovered", not bad and bool(states), "; ".join(bad) or detail)


def throughput_windows(
    events: list[dict[str, Any]], kpis: dict[str, Any], window_s: float
) -> Check:
    """At least one unit shipped in every whole window of the run."""
    duration = float(kpis.get("duration_s", 0.0))
    n = int(duration // window_s)
    if n == 0:
        return Check("throughput in every window", False, f"the run is shorter than {window_s:g} s")
    counts = [0] * n
    for e in events:
        if e.get("kind") in COMPLETED_EVENTS:
            k = int(e["t_ns"] / NS // window_s)
            if k < n:
                counts[k] += 1
    full = bay_full_s(events, kpis)
    spans = crosscheck.making(events, round(duration * NS))
    cycle = crosscheck.longest_cycle_s(events)
    w = round(window_s * NS)
    idle = {k for k in range(n) if crosscheck.busy_s(spans, k * w, (k + 1) * w) < cycle}
    judged = [k for k in range(n) if (full is None or (k + 1) * window_s <= full) and k not in idle]
    empty = [f"{k * window_s:g}-{(k + 1) * window_s:g} s" for k in judged if counts[k] == 0]
    detail = f"units per {window_s:g} s: {counts}"
    if full is not None:
        detail += f" (every mount point held an arm from {full:.0f} s on: windows after not judged)"
    if idle:
        detail += f" ({len(idle)} with units in the making for under {cycle:g} s: not judged)"
    name = "throughput in every window"
    return Check(name, not empty, f"none shipped in {', '.join(empty)}" if empty else detail)


def bay_full_s(events: list[dict[str, Any]], kpis: dict[str, Any]) -> float | None:
    """When every mount point of the bay came to be kept for an arm or held by a robot, for
    good (None for a cell that builds no robots, ships its arms when the bay is full, or
    whose bay never filled for good).

    From the log: ``unit_started`` keeps its ``mount``; ``unit_scrapped`` of that unit
    frees it; the number of mount points is the cell's (``kpis.json``'s ``mounts``).
    """
    mounts = kpis.get("mounts")
    if not isinstance(mounts, list) or not mounts or kpis.get("overflow"):
        return None  # no bay, or arms ship when it is full: every window is judged
    kept: dict[str, str] = {}
    full: float | None = None
    for e in events:
        kind = e.get("kind")
        if kind == "unit_started" and e.get("mount"):
            kept[str(e["unit"])] = str(e["mount"])
        elif kind == "unit_scrapped":
            kept.pop(str(e.get("unit")), None)
        else:
            continue
        if len(set(kept.values())) >= len(mounts):
            full = full if full is not None else int(e["t_ns"]) / NS
        else:
            full = None
    return full
