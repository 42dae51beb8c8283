"""A robot that fails for good: the scenario key, the layout that survives it, a real run."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from bus.errors import ConfigError
from bus.simtime import NS
from cells.faults import ScheduledFault, parse_scenario
from cells.launch import RunOptions, run_cell
from cells.schema import PLACEHOLDERS, parse_cell

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLY = ROOT / "cells" / "assembly.toml"


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def step(event: dict[str, Any]) -> str:
    """The recipe step of an operation event (``frame-0004/load_frame`` -> ``load_frame``)."""
    return str(event["op"]).split("/")[1]


# ---------------------------------------------------------------- the scenario key


def parse(cell: CellSpec, **entry: Any) -> tuple[ScheduledFault, ...]:
    return parse_scenario({"faults": [entry]}, cell, source="s.toml")


def refused(cell: CellSpec, **entry: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(cell, **entry)
    assert str(info.value).startswith("s.toml: faults[0]")
    assert "\n" not in str(info.value)
    return info.value


def test_a_permanent_robot_fault_needs_no_duration(cell: CellSpec) -> None:
    (fault,) = parse(cell, at=300.0, target="R2", kind="robot_fault", permanent=True)
    assert fault == ScheduledFault(300.0, "R2", FaultKind.ROBOT_FAULT, permanent=True)


def test_a_robot_fault_is_timed_unless_it_says_permanent(cell: CellSpec) -> None:
    (fault,) = parse(cell, at=1.0, target="R2", kind="robot_fault", duration=5.0)
    assert fault.permanent is False and fault.duration_s == 5.0
    err = refused(cell, at=1.0, target="R2", kind="robot_fault", permanent=False)
    assert err.key == "faults[0].duration" and "needs a duration > 0" in err.reason


def test_permanent_and_a_duration_together_are_refused(cell: CellSpec) -> None:
    err = refused(cell, at=1.0, target="R2", kind="robot_fault", permanent=True, duration=20.0)
    assert err.key == "faults[0].duration"
    assert err.reason == "a permanent fault has no duration: give one or the other"


def test_only_a_robot_fault_can_be_permanent(cell: CellSpec) -> None:
    err = refused(cell, at=1.0, target="outfeed", kind="conveyor_jam", permanent=True)
    assert err.key == "faults[0].permanent"
    assert "only a robot_fault can be permanent" in err.reason


def test_permanent_must_be_a_boolean(cell: CellSpec) -> None:
    err = refused(cell, at=1.0, target="R2", kind="robot_fault", permanent="yes")
    assert err.key == "faults[0].permanent" and "true or false" in err.reason


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


# ---------------------------------------------------------------- a real run


@pytest.mark.timeout(300)
def test_a_robot_failed_for_good_stays_down_and_the_others_do_its_work(
    cell: CellSpec, tmp_path: Path
) -> None:
    """R1 (one of the two arms at the infeed) fails for good at 60 s of a 240 s run."""
    at = 60 * NS
    fault = ScheduledFault(at / NS, "R1", FaultKind.ROBOT_FAULT, permanent=True)
    kpis = run_cell(cell, tmp_path, RunOptions(seed=2, duration_s=240, faults=(fault,)))
    log = events(tmp_path)
    injected = [e for e in log if e["kind"] == "fault_injected"]
    assert injected == [
        {
            "kind": "fault_injected",
            "t_ns": at,
            "target": "R1",
            "fault": "robot_fault",
            "duration_s": 0.0,
            "permanent": True,
        }
    ]
    # it aborted at once and never left Aborted: no Clear, no Reset, no award
    r1 = [e for e in log if e.get("robot") == "R1" and e["t_ns"] >= at]
    states = [e["dst"] for e in r1 if e["kind"] == "robot_state"]
    assert states == ["Aborting", "Aborted"]
    assert not [e for e in r1 if e["kind"] in ("command", "op_awarded", "op_started")]
    assert kpis["robots"]["R1"]["state"] == "Aborted"
    # what it was doing or had queued went back to auction and to another robot
    before = [e for e in log if e["t_ns"] < at and e.get("robot") == "R1"]
    done = {e["op"] for e in before if e["kind"] == "op_done"}
    open_ops = {e["op"] for e in before if e["kind"] == "op_awarded"} - done
    scrapped = {e["unit"] for e in log if e["kind"] == "unit_scrapped"}
    for op in sorted(open_ops):
        if op.split("/")[0] in scrapped:
            continue  # the unit's frame was in R1's gripper: written off, its fixture freed
        redone = [e["robot"] for e in log if e["kind"] == "op_done" and e["op"] == op]
        assert redone and redone[0] != "R1", op
    # every kind of step it did before is done by the others now; the frames it
    # loaded from the infeed all go to R3, the one other arm that reaches it
    done_before = {step(e) for e in before if e["kind"] == "op_done"}
    done_after = [e for e in log if e["kind"] == "op_done" and e["t_ns"] > at]
    assert {e["robot"] for e in done_after} == {"R2", "R3", "R4"}
    assert "load_frame" in done_before
    assert done_before <= {step(e) for e in done_after}
    assert {e["robot"] for e in done_after if step(e) == "load_frame"} == {"R3"}
    # the cell kept shipping, with every part accounted for
    shipped_after = [e for e in log if e["kind"] == "unit_shipped" and e["t_ns"] > at]
    assert len(shipped_after) >= 8
    assert all(r["state"] == "Execute" for n, r in kpis["robots"].items() if n != "R1")
    assert kpis["ledger_balanced"] is True
    led = kpis["ledger"]
    assert led["created"] == led["shipped"] + led["scrapped"] + led["wip"]
