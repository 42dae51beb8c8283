"""Faults in the robot-building cell: drops, a killed builder, faults on built robots, chaos.

Every run is real (PyBullet, real sockets; processes where a process is
killed), and the judgement comes from the run's own files and the world.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from cells.audit import audit_run
from cells.chaos import CLASSIC_KINDS, chaos_scenario
from cells.faults import FaultKind, ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cell() -> CellSpec:
    return load_cell(ROOT / "cells" / "robot_building.toml")


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.mark.timeout(600)
def test_a_dropped_segment_is_picked_up_again_or_scrapped_and_replaced(
    cell: CellSpec, tmp_path: Path
) -> None:
    # seed 1: R3 holds nothing at 19.6 s, so it lets go of the next part it carries
    # (link_3 of the first arm, over the cell at 21.5 s)
    drop = ScheduledFault(19.6, "R3", FaultKind.GRIPPER_DROP)
    kpis = run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=75, faults=(drop,)))
    log = events(tmp_path)
    failed = [e for e in log if e["kind"] == "op_failed" and e["robot"] == "R3"]
    assert failed, "the drop failed the operation of the part it let go"
    op = failed[0]["op"]
    fell = failed[0]["t_ns"]
    after = [e for e in log if e["t_ns"] >= fell]
    recovered = [e for e in after if e["kind"] == "op_recovery" and e["op"] == op]
    scrapped = [e for e in after if e["kind"] == "part_scrapped"]
    assert recovered or scrapped, "the part that fell is picked up again or scrapped"
    done = [e for e in after if e["kind"] in ("op_done", "op_settled") and e["op"] == op]
    assert done, f"{op} is done after all"
    unit = op.split("/")[0]
    assert any(e["kind"] == "arm_commissioned" and e["unit"] == unit for e in log)
    assert kpis["ledger_balanced"] is True


@pytest.mark.timeout(600)
def test_a_builder_killed_mid_assembly_leaves_the_arm_to_another(
    cell: CellSpec, tmp_path: Path
) -> None:
    # seed 1: R3 builds the first arm alone until 28 s; kill it as it stacks
    kill = ScheduledFault(21.0, "R3", FaultKind.AGENT_CRASH)
    kpis = run_cell(
        cell, tmp_path, RunOptions(seed=1, duration_s=75, processes=True, faults=(kill,))
    )
    log = events(tmp_path)
    lost = next(e for e in log if e["kind"] == "robot_lost" and e["robot"] == "R3")
    unit = "arm_base-0001"
    # the half-built arm stays in the ledger where it was
    moves = [e for e in log if e["kind"] == "part_moved" and e["t_ns"] <= lost["t_ns"]]
    joined = {e["part"] for e in moves if e["dst"] == f"unit:{unit}"}
    assert joined and not any(
        e["kind"] in ("unit_scrapped", "arm_commissioned") and e["t_ns"] <= lost["t_ns"]
        for e in log
    )
    # and others finish it
    by_others = [
        e
        for e in log
        if e["kind"] == "op_done" and e["op"].startswith(unit) and e["t_ns"] > lost["t_ns"]
    ]
    assert {e["robot"] for e in by_others} - {"R3"}
    commissioned = [e for e in log if e["kind"] == "arm_commissioned" and e["unit"] == unit]
    assert commissioned and joined <= set(commissioned[0]["parts"])
    assert kpis["ledger_balanced"] is True


@pytest.fixture(scope="module")
def built_faults(cell: CellSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run as processes with faults on built robots, named in advance as a scenario may:
    B1 (joins at 58 s, seed 1) faulted for 5 s at 75 s, B2's agent (82 s) killed at 95 s."""
    out = tmp_path_factory.mktemp("built-faults")
    faults = (
        ScheduledFault(75.0, "B1", FaultKind.ROBOT_FAULT, duration_s=5.0),
        ScheduledFault(95.0, "B2", FaultKind.AGENT_CRASH),
    )
    run_cell(cell, out, RunOptions(seed=1, duration_s=125, processes=True, faults=faults))
    return out


@pytest.mark.timeout(600)
def test_a_robot_fault_applies_to_a_built_robot(built_faults: Path) -> None:
    """Aborted, its work goes to others, cleared after the fault, back to Execute."""
    log = events(built_faults)
    assert any(e["kind"] == "fault_injected" and e["target"] == "B1" for e in log)
    states = [e["dst"] for e in log if e["kind"] == "robot_state" and e["robot"] == "B1"]
    assert "Aborted" in states and states[-1] == "Execute"
    kpis = json.loads((built_faults / "kpis.json").read_text())
    assert kpis["robots"]["B1"]["state"] == "Execute"


@pytest.mark.timeout(600)
def test_a_built_robots_agent_killed_is_restarted_like_any_other(built_faults: Path) -> None:
    log = events(built_faults)
    lost = [e for e in log if e["kind"] == "robot_lost" and e["robot"] == "B2"]
    assert len(lost) == 1 and lost[0]["t_ns"] > 95e9
    back = [
        e["dst"]
        for e in log
        if e["kind"] == "robot_state" and e["robot"] == "B2" and e["t_ns"] > lost[0]["t_ns"]
    ]
    assert back[:5] == ["Stopped", "Resetting", "Idle", "Starting", "Execute"]
    kpis = json.loads((built_faults / "kpis.json").read_text())
    assert kpis["sim"]["restarts"].get("B2") == 1
    assert kpis["robots"]["B2"]["state"] == "Execute"
    assert (built_faults / "logs" / "B2.log").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_chaos_run_of_the_robot_building_cell_passes_the_audit(
    cell: CellSpec, tmp_path: Path
) -> None:
    faults = chaos_scenario(cell, 0.06, 240.0, 17)
    assert {f.kind for f in faults} == set(CLASSIC_KINDS), "every kind, while arms are built"
    # in one process: its crashes and freezes strike the members stepped on the clock's
    # thread (``cells.residents``), built arms' agents among them, rebuilt on their mounts
    # (the processes' restart of a built arm: the built robot's agent killed, above)
    opts = RunOptions(seed=1, duration_s=240, faults=faults, guard_s=5.0)
    kpis = run_cell(cell, tmp_path, opts)
    assert kpis["sim"]["restarts"], "crashes and freezes replaced members"
    # two windows of 120 s: the bay fills in the first, arms ship in the second
    checks = audit_run(tmp_path, window_s=120.0)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
