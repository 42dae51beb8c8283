"""``lightsout resume RUN_DIR``: carry a run on from its journal after any crash.

A run killed outright (power loss: every process at once) leaves its
journal (``journal.sqlite``, WAL: every committed tick is there), the
``run.json`` and ``scenario.toml`` it was started with, and a clean prefix of
``events.jsonl``. Resuming:

1. reads the journal's last committed tick; the run goes on from the tick
   after it, to the duration it was started with, in the mode it was started
   in (or the one asked), with the faults of its scenario still to come;
2. builds a fresh world at that sim time, numbering parts after the
   ledger's, so no id is used twice;
3. rebuilds the units that stood in their fixtures or rode an outfeed belt
   (put back where the belt takes units on), and finished units in the
   gripper unloading them (put back in their fixture, the unload given out
   again), as the ledger has them
   (``sim.rebuild``: same ids, parts where the recipe puts them, fastened if
   they were);
4. restores the supervisor from the journal (``events.jsonl`` is rewritten
   from the journal's lines, so log and state agree) and **writes off** what
   the new world does not hold (``write_off``): parts on belts and trays, in
   grippers or on the floor, and other units in a gripper are scrapped with
   their reason in the log, and a step whose part went goes back to the
   auction. The world and the ledger then agree and the ledger balances; the
   feeders fill the new world and the robots, fresh agents, come up from
   Stopped as restarted ones do;
5. appends to ``world.jsonl``, and ends as any run: ``kpis.json``, the
   report; the combined log passes the audit.

What is lost is what was on the move at the cut (a part or a unit in a
gripper, parts waiting on belts and trays, refilled at once) and the few
seconds the robots take to come up.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.cellspec import CellSpec, StationKind
from bus.errors import LightsoutError
from cells.tables import MAX_NUMBER
from sim.rebuild import KeptUnit

if TYPE_CHECKING:
    from supervisor import Supervisor
    from supervisor.plan import Op

WRITE_OFF = "resumed: the world was rebuilt without it"
"""The reason logged for each unit and part a resume writes off."""
_ID = re.compile(r"^(?P<kind>.+)-(?P<n>\d+)$")


def write_off(sup: Supervisor) -> None:
    """Make a supervisor restored for a resume agree with the rebuilt world.

    The units standing in their fixtures are kept (``kept_units``: the world
    rebuilds them); every other unit in progress and every other live part is
    scrapped, and an unfinished step whose part is scrapped goes back to the
    auction for a fresh one. Logged at the journal's last commit time, before the
    restored supervisor's ``supervisor_restored``. Every change goes through the
    component that owns the state (``docs/architecture.md``).
    """
    from supervisor.plan import OpState

    if sup.resync_at != 0:  # set by a restore from a journal that held a state
        raise LightsoutError("nothing to resume: the journal is empty")
    now = sup.time.ns = sup.restored_from[1]
    kept = kept_units(sup.snapshots.take(), sup.cell)
    keep = {u.unit for u in kept} | {m[0] for u in kept for m in u.members}
    settled = (OpState.DONE, OpState.CANCELLED)
    for u in kept:
        old = sup.ledger.move(u.unit, u.location)
        if old != u.location:  # finished, in the gripper that was unloading it: back in place
            sup.events.write(now, "part_moved", part=u.unit, src=old, dst=u.location)
            for op in sup.units[u.unit].ops.values():
                if op.part == u.unit and op.state not in settled:
                    _again(sup, op)
    for uid in sorted(sup.units.units):
        unit = sup.units[uid]
        if unit.finished_ns < 0 and uid not in keep:
            sup.work.scrap_unit(unit, WRITE_OFF)
    for op in sorted(sup.units.ops.values(), key=lambda o: o.op_id):
        if op.state in settled or not op.part or op.part in keep:
            continue
        _again(sup, op)
        op.part = ""  # its part is not in the new world: a fresh one comes
    for part in sorted(sup.ledger.live):
        if part not in keep:
            sup.ledger.scrap(part)
            sup.events.write(now, "part_scrapped", part=part, reason=WRITE_OFF)
    sup.work.retire = []  # the new world never held them
    sup.sensors.forget_readings()
    sup.assignments.forget_holders()


def _again(sup: Supervisor, op: Op) -> None:
    """Give ``op`` back to the auction (the robot it was given to is a fresh agent now)."""
    from supervisor.plan import OpState

    now = sup.time.ns
    if op.state in (OpState.WAITING, OpState.READY):
        sup.assignments.release(op)
    else:
        sup.assignments.requeue(op, now)
        sup.events.write(now, "op_requeued", op=op.op_id, reason=WRITE_OFF, attempts=op.attempts)
    op.robot, op.pick = "", ()


def kept_units(state: dict[str, Any], cell: CellSpec) -> tuple[KeptUnit, ...]:
    """The units of a journal's ``state`` a resumed world rebuilds: not shipped, the base in
    its fixture or on an outfeed belt (one a belt: two would stand on one spot), or a unit
    whose every other step is done in the gripper unloading it (put back in its fixture),
    and every part joined to it placed by one of its steps."""
    live: dict[str, list[str]] = state["ledger"]["live"]
    outfeeds = {f"conveyor:{c.name}" for c in cell.conveyors if c.role is StationKind.OUTFEED}
    out: list[KeptUnit] = []
    units = state["units"]["units"]
    for uid, u in sorted(units.items()):
        where = live.get(uid, ["", ""])[1]
        if u["finished_ns"] >= 0 or u["rejected"]:
            continue
        if where.startswith("gripper:") and _unloading(u, uid):
            where = f"fixture:{u['fixture']}"
            if any(k.location == where for k in out) or any(
                loc == where for _kind, loc in live.values()
            ):
                continue
        if not where.startswith("fixture:") and where not in outfeeds:
            continue
        if where in outfeeds and any(k.location == where for k in out):
            continue
        specs = {s.name: s for s in cell.recipe_for(u.get("base_kind") or cell.recipe.base).ops}
        joined = {p for p, (_kind, loc) in live.items() if loc == f"unit:{uid}"}
        members = [
            (o["part"], live[o["part"]][0], specs[name].offset)
            for name, o in u["ops"].items()
            if o["part"] in joined
        ]
        if {m[0] for m in members} != joined:
            continue  # a part on it no step put there: not a unit to trust
        fastened = uid in state["units"]["fastened"]
        out.append(KeptUnit(uid, live[uid][0], where, tuple(members), fastened))
    return tuple(out)


def _kept(state: dict[str, Any], cell: CellSpec, run_dir: Path) -> tuple[KeptUnit, ...]:
    """``kept_units``, or one clear error for a journal whose state does not fit the cell."""
    try:
        return kept_units(state, cell)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        why = f"its state does not fit {cell.source} ({type(exc).__name__}: {exc})"
        raise LightsoutError(f"{run_dir / 'journal.sqlite'}: {why}") from None


def _unloading(unit: dict[str, Any], uid: str) -> bool:
    """Whether the only step of ``unit`` not done is the one moving the unit itself."""
    open_ops = [o for o in unit["ops"].values() if o["state"] not in ("done", "cancelled")]
    return len(open_ops) == 1 and open_ops[0]["part"] == uid


def resume_point(run_dir: Path) -> tuple[int, int, dict[str, int], dict[str, Any]]:
    """(last committed tick, its sim time, each part kind's highest number, the state) from
    the journal."""
    from supervisor.journal import Journal

    path = run_dir / "journal.sqlite"
    if not path.exists():
        raise LightsoutError(f"{run_dir}: no journal.sqlite: not a run directory")
    try:
        journal = Journal(path)
        try:
            saved = journal.load()
        finally:
            journal.close()
    except (sqlite3.Error, ValueError) as exc:  # a damaged file, an older layout, a row not msgpack
        raise LightsoutError(f"{path}: not a journal this can read ({exc})") from None
    if saved is None:
        raise LightsoutError(f"{run_dir}: the journal is empty: nothing to resume")
    tick, t_ns, state = saved
    last: dict[str, int] = {}
    try:
        led = state["ledger"]
        for pid in [*led["live"], *led["gone"]]:
            m = _ID.match(pid)
            if m:
                last[m["kind"]] = max(last.get(m["kind"], 0), int(m["n"]))
    except (KeyError, TypeError) as exc:
        raise LightsoutError(f"{path}: its state is not what a supervisor writes ({exc})") from None
    return tick, t_ns, last, state


def journal_time(run_dir: Path) -> float:
    """Sim seconds of the journal's last commit, read without disturbing a live run (0 if
    there is none yet): how far a run, live or cut off, has got."""
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return 0.0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT t_ns FROM state WHERE id = 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0.0
    return float(row[0]) / 1e9 if row else 0.0


MAX_SEED = 2**32 - 1
"""The largest seed a run takes (as ``lightsout run --seed``)."""


def load_meta(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (how the run was started), checked, or one clear error.

    The file is read back from disk, so it is checked as any input is: a hand-edited
    or damaged one (a seed that is not a whole number, a duration of 1e300 or NaN)
    is refused naming the key, never turned into a traceback mid-resume.
    """
    path = run_dir / "run.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not {"cell", "seed", "duration_s"} <= set(meta):
            raise ValueError("missing keys")
    except OSError as exc:
        raise LightsoutError(f"{run_dir}: cannot read run.json ({exc.strerror})") from None
    except ValueError as exc:
        raise LightsoutError(f"{path}: not what a run writes ({exc})") from None
    problem = _meta_problem(meta)
    if problem:
        raise LightsoutError(f"{path}: {problem}")
    if meta.get("fidelity", "physics") != "physics":
        why = f"a run at {meta['fidelity']!r} fidelity cannot be resumed (only physics runs can)"
        raise LightsoutError(f"{path}: {why}")
    return meta


def _meta_problem(meta: dict[str, Any]) -> str:
    """What is wrong with ``run.json``'s values, or "" if nothing."""
    if not isinstance(meta["cell"], str) or not meta["cell"]:
        return "cell: expected the cell file's path"
    seed = meta["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        return f"seed: expected a whole number from 0 to {MAX_SEED}, got {seed!r:.40}"
    for key, default in (("duration_s", 0.0), ("guard_s", 10.0)):
        value: Any = meta.get(key, default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0 < value <= MAX_NUMBER:
            return f"{key}: expected seconds above 0 and at most {MAX_NUMBER:g}, got {value!r:.40}"
    if not isinstance(meta.get("processes", False), bool):
        return "processes: expected true or false"
    return ""


def _unfinished(run_dir: Path) -> bool:
    """Whether the run was cut off: no ``kpis.json``, one the launcher never finished (the
    supervisor wrote it, and the launcher was killed before adding its ``sim`` block), or one
    a signal ended early."""
    try:
        kpis = json.loads((run_dir / "kpis.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    sim = kpis.get("sim") if isinstance(kpis, dict) else None
    if not isinstance(sim, dict):
        return True
    reason = sim.get("exit_reason", "")
    return isinstance(reason, str) and reason.startswith("signal ")


def resume_run(
    run_dir: Path, *, processes: bool | None = None, progress: Any = None, realtime: float = 0.0
) -> dict[str, Any]:
    """Carry the run in ``run_dir`` on to its duration, paced to ``realtime`` (0: as fast as
    possible); return its KPIs."""
    from cells.faults import load_scenario
    from cells.launch import Resume, RunOptions, run_cell
    from cells.schema import load_cell

    meta = load_meta(run_dir)
    cell = load_cell(str(meta["cell"]))
    tick, t_ns, last, state = resume_point(run_dir)
    duration = float(meta["duration_s"])
    if t_ns >= duration * 1e9 or not _unfinished(run_dir):
        raise LightsoutError(f"{run_dir}: the run finished; nothing to resume")
    scenario = run_dir / "scenario.toml"
    faults = load_scenario(scenario, cell) if scenario.exists() else ()
    start = tick + 1
    start_ns = cell.tick_at(start)
    opts = RunOptions(
        seed=int(meta["seed"]),
        duration_s=duration,
        processes=bool(meta.get("processes")) if processes is None else processes,
        faults=tuple(f for f in faults if f.at_s * 1e9 >= start_ns),
        guard_s=float(meta.get("guard_s", 10.0)),
        realtime=realtime,
        resume=Resume(start, last, _kept(state, cell, run_dir)),
    )
    return run_cell(cell, run_dir, opts, progress=progress)
