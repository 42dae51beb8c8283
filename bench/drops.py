"""How often a dropped part can be picked up again: one gripper drop per run, mid-carry.

A run without faults records when each robot carries which part; then, for
every carry that starts in the first ``until_s`` seconds, one run per
fraction drops the part at that point of the carry (``gripper_drop`` at a
sim time: the run is reproducible, so the carry is where it was) and goes on
long enough for the unit to ship. Each drop is classified from the event log:

* ``back at its station``: it fell back where its operation picks it;
* ``landed in place``: it fell where its operation puts it (``op_settled``);
* ``recovered``: a recovery operation picked it up (``op_recovery``), and
  whether it was done and the unit shipped with the part;
* ``scrapped: <reason>``: it (or its unit) was scrapped, with the reason.

Every run must end with the ledger balanced.
"""

from __future__ import annotations

import collections
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from sim import World

SHIP_S = 40.0
"""Sim seconds each run goes on after its drop: more than a unit's cycle time."""
MIN_CARRY_S = 0.5
"""Carries shorter than this are left out (a grasp that was let go at once)."""

Carry = tuple[float, float, str, str]
"""(start s, end s, robot, part)."""


def carries(cell: CellSpec, until_s: float, seed: int) -> list[Carry]:
    """When each robot held which part in a run without faults, by start time."""
    seen: dict[tuple[str, str], list[int]] = {}

    def watch(world: World) -> None:
        for name, arm in world.arms.items():
            if arm.holding:
                seen.setdefault((name, arm.holding), []).append(world.t_ns)

    with tempfile.TemporaryDirectory() as tmp:
        run_cell(cell, Path(tmp), RunOptions(seed=seed, duration_s=until_s + 5), watch=watch)
    rows = [(t[0] / 1e9, t[-1] / 1e9, robot, part) for (robot, part), t in seen.items()]
    return sorted(r for r in rows if r[0] <= until_s and r[1] - r[0] >= MIN_CARRY_S)


def outcome(log: list[dict[str, Any]], at_s: float) -> str:
    """What became of the part dropped at ``at_s`` (see the module docstring)."""
    after = [e for e in log if e["t_ns"] >= at_s * 1e9]
    failed = next(
        (e for e in after if e["kind"] == "op_failed" and e["detail"].startswith("dropped ")),
        None,
    )
    if failed is None:
        return "nothing dropped"
    op, part = failed["op"], failed["detail"].split()[1].rstrip(":")
    mine = [e for e in after if part in (e.get("part"), e.get("unit")) or e.get("op") == op]
    if any(e["kind"] == "op_recovery" for e in mine):
        done = any(e["kind"] == "op_done" and e["op"] == op for e in after)
        shipped = any(e["kind"] == "unit_shipped" and part in e["parts"] for e in after)
        return "recovered" + (", done" if done else ", NOT done") + (", shipped" if shipped else "")
    scrap = next((e for e in mine if e["kind"] in ("part_scrapped", "unit_scrapped")), None)
    if scrap is not None:
        return "scrapped: " + str(scrap["reason"]).split("fell: ", 1)[-1]
    if any(e["kind"] == "op_settled" for e in mine):
        return "landed in place"
    return "back at its station"


def bucket(what: str) -> str:
    """An outcome with the ids and angles taken out, to count alike ones together."""
    what = re.sub(r"\b\w+-\d{4}\b", "<part>", what)  # part ids: kind-NNNN
    return re.sub(r"\d+ degrees", "N degrees", what)


def run(
    cell: CellSpec, until_s: float, seed: int, fractions: tuple[float, ...] = (0.3, 0.7)
) -> tuple[collections.Counter[str], list[tuple[float, str, str, str]], bool]:
    """Drop at ``fractions`` of every carry; return the tally, each drop, and whether every
    run's ledger balanced."""
    tally: collections.Counter[str] = collections.Counter()
    drops: list[tuple[float, str, str, str]] = []
    balanced = True
    for t0, t1, robot, part in carries(cell, until_s, seed):
        for f in fractions:
            at = round(t0 + (t1 - t0) * f, 2)
            fault = ScheduledFault(at, robot, FaultKind.GRIPPER_DROP)
            opts = RunOptions(seed=seed, duration_s=at + SHIP_S, faults=(fault,))
            with tempfile.TemporaryDirectory() as tmp:
                kpis = run_cell(cell, Path(tmp), opts)
                text = (Path(tmp) / "events.jsonl").read_text(encoding="utf-8")
            what = outcome([json.loads(line) for line in text.splitlines()], at)
            balanced = balanced and bool(kpis["ledger_balanced"])
            tally[bucket(what)] += 1
            drops.append((at, robot, part, what))
    return tally, drops, balanced
