"""The 8- and 12-robot cells: every island of four builds phones from the one shared belt.

One short one-process run of each cell (module-scoped, shared by the
assertions): long enough for the last island's first phone to ship (seed 1:
41 s in the 8-robot cell, 52 s in the 12-robot cell), short enough for the
suite's budget.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec, StationKind
from cells.audit import audit_run
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"assembly_2x.toml": 55.0, "assembly_3x.toml": 60.0}
"""Cell file -> sim seconds of its run."""


@pytest.fixture(scope="module", params=sorted(RUNS))
def island_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CellSpec, Path, dict[str, Any], list[dict[str, Any]]]:
    cell = load_cell(ROOT / "cells" / request.param)
    out = tmp_path_factory.mktemp(cell.name)
    kpis = run_cell(cell, out, RunOptions(seed=1, duration_s=RUNS[request.param]))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return cell, out, kpis, events


def test_the_islands_share_one_infeed_belt() -> None:
    """Four robots an island, every island's frames fed onto the same single infeed."""
    for name, islands in (("assembly_2x.toml", 2), ("assembly_3x.toml", 3)):
        cell = load_cell(ROOT / "cells" / name)
        infeeds = [c.name for c in cell.conveyors if c.role is StationKind.INFEED]
        assert len(infeeds) == 1
        assert len(cell.recipes) == islands and len(cell.robots) == 4 * islands
        for recipe in cell.recipes:
            assert len(cell.fixtures_for(recipe)) == 2
            fed = {f.conveyor for f in cell.feeders if f.part == recipe.base}
            assert fed == set(infeeds)


@pytest.mark.timeout(600)
def test_every_island_ships_phones(
    island_run: tuple[CellSpec, Path, dict[str, Any], list[dict[str, Any]]],
) -> None:
    cell, _, kpis, events = island_run
    started = {e["unit"]: e["fixture"] for e in events if e["kind"] == "unit_started"}
    shipped: collections.Counter[str] = collections.Counter()
    for e in events:
        if e["kind"] == "unit_shipped":
            kind = e["unit"].rsplit("-", 1)[0]  # a unit is named after its base part
            assert started[e["unit"]] in cell.fixtures_for(cell.recipe_for(kind))
            shipped[kind] += 1
    assert set(shipped) == set(cell.base_kinds), f"units shipped per island: {dict(shipped)}"
    assert sum(shipped.values()) == kpis["units_completed"]
    came = {e["part"]: e["location"] for e in events if e["kind"] == "part_created"}
    assert {came[u] for u in started} == {"conveyor:infeed"}, "every frame came on the one belt"


@pytest.mark.timeout(600)
def test_the_audit_passes_and_the_ledger_balances(
    island_run: tuple[CellSpec, Path, dict[str, Any], list[dict[str, Any]]],
) -> None:
    _, out, kpis, _ = island_run
    assert kpis["ledger_balanced"] is True
    assert all(r["state"] == "Execute" for r in kpis["robots"].values())
    failed = [
        f"{c.name}: {c.detail}" for c in audit_run(out, window_s=kpis["duration_s"]) if not c.ok
    ]
    assert failed == []
