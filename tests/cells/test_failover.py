"""A robot that fails for good: the layout that survives it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bus.cellspec import CellSpec
from cells.schema import PLACEHOLDERS, load_cell, parse_cell

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLY = ROOT / "cells" / "assembly.toml"


@pytest.fixture(scope="module")
def cell() -> CellSpec:
    return load_cell(ASSEMBLY)


# ---------------------------------------------------------------- the layout


def test_every_step_at_every_fixture_has_two_robots_that_can_do_it(cell: CellSpec) -> None:
    """No single point of failure: a robot lost never leaves a step of the recipe undoable."""
    stations = cell.stations()
    for op in cell.recipe.ops:
        for fixture in cell.fixtures:
            places = [s for s in (op.src, op.dst, op.at) if s]
            poses = [stations[fixture.name if s in PLACEHOLDERS else s].pose for s in places]
            able = [
                r.name
                for r in cell.robots
                if op.skill in r.capabilities and all(r.reaches(p) for p in poses)
            ]
            assert len(able) >= 2, f"{op.name} at {fixture.name}: only {able}"


@pytest.mark.parametrize("gone", ["R1", "R2", "R3", "R4"])
def test_the_cell_file_without_any_one_robot_still_loads(gone: str) -> None:
    """The loader's own check (every step reachable at every fixture) passes with 3 robots."""
    data = tomllib.loads(ASSEMBLY.read_text(encoding="utf-8"))
    data["robots"] = [r for r in data["robots"] if r["name"] != gone]
    assert len(data["robots"]) == 3
    parse_cell(data, source=f"assembly.toml without {gone}")
