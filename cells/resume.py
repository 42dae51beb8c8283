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
3. restores the supervisor from the journal (``events.jsonl`` is rewritten
   from the journal's lines, so log and state agree) and **writes off** what
   the new world does not hold (``write_off``): every unit in progress and
   every live part is scrapped, with its reason in the log. The world and the
   ledger then agree (both hold no work in progress) and the ledger balances;
   the feeders fill the new world and the robots, fresh agents, come up from
   Stopped as restarted ones do;
4. appends to ``world.jsonl``, and ends as any run: ``kpis.json``, the
   report; the combined log passes the audit.

What is lost is the work in progress at the cut (a unit or two per fixture
in the assembly cell) and the few seconds the robots take to come up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.errors import LightsoutError

if TYPE_CHECKING:
    from supervisor import Supervisor

WRITE_OFF = "resumed: the world was rebuilt without it"
"""The reason logged for each unit and part a resume writes off."""
_ID = re.compile(r"^(?P<kind>.+)-(?P<n>\d+)$")


def write_off(sup: Supervisor) -> None:
    """Scrap every unit in progress and every live part of a supervisor restored for a resume.

    The events are logged at the journal's last commit time, before the restored
    supervisor's ``supervisor_restored`` (whose ledger is then empty, as the world's).
    """
    restored = getattr(sup, "restored_from", None)
    if restored is None:
        raise LightsoutError("nothing to resume: the journal is empty")
    sup.now = restored[1]
    for uid in sorted(sup.units):
        unit = sup.units[uid]
        if unit.finished_ns < 0:
            sup._scrap_unit(unit, WRITE_OFF)
    for part in sorted(sup.ledger.live):
        sup.ledger.scrap(part)
        sup.events.write(sup.now, "part_scrapped", part=part, reason=WRITE_OFF)
    sup._retire = []  # the new world never held them
    sup.sensors = {}
    sup.bids = {}
    for robot in sup.robots.values():
        robot.ops = []


def resume_point(run_dir: Path) -> tuple[int, int, dict[str, int]]:
    """(last committed tick, its sim time, each part kind's highest number) from the journal."""
    from supervisor.store import Journal

    path = run_dir / "journal.sqlite"
    if not path.exists():
        raise LightsoutError(f"{run_dir}: no journal.sqlite: not a run directory")
    journal = Journal(path)
    try:
        saved = journal.load()
    finally:
        journal.close()
    if saved is None:
        raise LightsoutError(f"{run_dir}: the journal is empty: nothing to resume")
    tick, t_ns, state = saved
    last: dict[str, int] = {}
    led = state.get("ledger", {})
    for pid in [*led.get("live", {}), *led.get("gone", {})]:
        m = _ID.match(pid)
        if m:
            last[m["kind"]] = max(last.get(m["kind"], 0), int(m["n"]))
    return tick, t_ns, last


def load_meta(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (how the run was started), or one clear error."""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not {"cell", "seed", "duration_s"} <= set(meta):
            raise ValueError("missing keys")
    except OSError as exc:
        raise LightsoutError(f"{run_dir}: cannot read run.json ({exc.strerror})") from None
    except ValueError as exc:
        raise LightsoutError(f"{run_dir}/run.json: not what a run writes ({exc})") from None
    return meta


def resume_run(
    run_dir: Path, *, processes: bool | None = None, progress: Any = None
) -> dict[str, Any]:
    """Carry the run in ``run_dir`` on to its duration; return its KPIs."""
    from cells.faults import load_scenario
    from cells.launch import Resume, RunOptions, run_cell
    from cells.schema import load_cell

    meta = load_meta(run_dir)
    cell = load_cell(str(meta["cell"]))
    tick, t_ns, last = resume_point(run_dir)
    duration = float(meta["duration_s"])
    if t_ns >= duration * 1e9 or (run_dir / "kpis.json").exists():
        raise LightsoutError(f"{run_dir}: the run finished; nothing to resume")
    scenario = run_dir / "scenario.toml"
    faults = load_scenario(scenario, cell) if scenario.exists() else ()
    start = tick + 1
    start_ns = start * 1_000_000_000 // cell.control_hz
    opts = RunOptions(
        seed=int(meta["seed"]),
        duration_s=duration,
        processes=bool(meta.get("processes")) if processes is None else processes,
        faults=tuple(f for f in faults if f.at_s * 1e9 >= start_ns),
        resume=Resume(start, last),
    )
    return run_cell(cell, run_dir, opts, progress=progress)
