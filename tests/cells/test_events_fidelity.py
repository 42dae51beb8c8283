"""Events fidelity: the same supervisor and agents over the discrete-event world.

Runs go through the real launcher in one process (``cells.launch.run_cell``), with the
assembly cell's calibration (``cells/assembly.calib.json``), as ``lightsout run --fidelity
events`` makes them; the CLI cases go through the real command line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bus.enums import FaultKind
from cells.calibrate import load_calibration, measure, with_fidelity
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "cells" / "assembly.toml"
FAULTS = (
    ScheduledFault(30.0, "R3", FaultKind.GRIPPER_DROP),
    ScheduledFault(45.0, "infeed.end", FaultKind.SENSOR_BLACKOUT, duration_s=2.0),
    ScheduledFault(60.0, "R1", FaultKind.ROBOT_FAULT, duration_s=5.0),
    ScheduledFault(90.0, "infeed", FaultKind.CONVEYOR_JAM, duration_s=30.0),
    ScheduledFault(120.0, "R3", FaultKind.SLOW_ROBOT, duration_s=60.0, factor=2.0),
    ScheduledFault(150.0, "R4", FaultKind.MESSAGE_LOSS, duration_s=20.0, share=0.3),
)
DURATION_S = 300.0


def _run(out: Path, faults: tuple[ScheduledFault, ...] = FAULTS) -> dict[str, Any]:
    cell = with_fidelity(load_cell(CELL), CELL, "events")
    kpis = run_cell(cell, out, RunOptions(seed=3, duration_s=DURATION_S, faults=faults))
    return {"kpis": kpis, "log": (out / "events.jsonl").read_bytes(), "out": out}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    base = tmp_path_factory.mktemp("events")
    return [_run(base / "a"), _run(base / "b")]


def test_an_events_run_produces_and_balances(runs: list[dict[str, Any]]) -> None:
    kpis = runs[0]["kpis"]
    assert kpis["sim"]["fidelity"] == "events"
    assert kpis["units_completed"] >= 8
    assert kpis["ledger_balanced"] is True
    assert kpis["sim"]["world"].get("grasp_missed", 0) == 0


def test_the_same_seed_gives_the_same_log_byte_for_byte(runs: list[dict[str, Any]]) -> None:
    assert runs[0]["log"] == runs[1]["log"]


def test_every_fault_kind_is_felt_and_detected(runs: list[dict[str, Any]]) -> None:
    faults = runs[0]["kpis"]["faults"]
    assert len(faults) == len(FAULTS)
    missed = [f["kind"] for f in faults if f["detected_by"] is None and f["kind"] != "slow_robot"]
    assert missed == [], json.dumps(faults, indent=1)
    lines = [json.loads(x) for x in runs[0]["log"].decode().splitlines()]
    # the drop really let the part go: it left R3's gripper without an op_done for it
    dropped = [e for e in lines if e["kind"] == "op_failed" and "dropped" in e.get("detail", "")]
    assert dropped, "the gripper drop made no operation fail"


def test_operations_last_what_physics_measured(runs: list[dict[str, Any]]) -> None:
    """The events run, measured as a physics run is (``cells.calibrate.measure``), times each
    (robot, step, stations, start) done often enough as the physics calibration did, on
    average, within a third of a second (5 samples or more; their spread is about that)."""
    calib = load_calibration(CELL)
    got = measure([runs[0]["out"]], load_cell(CELL))

    def groups(ops: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
        out = {}
        for o in ops:
            for start, dist in o.get("by_start", {}).items():
                out[(o["robot"], o["op"], o["stations"], start)] = dist
        return out

    physics, events = groups(calib["operations"]), groups(got["operations"])
    checked = 0
    for key, dist in sorted(events.items()):
        ref = physics.get(key)
        if dist["count"] < 5 or ref is None or ref["count"] < 3:
            continue
        assert abs(dist["mean"] - ref["mean"]) <= 0.35, (key, dist["mean"], ref["mean"])
        checked += 1
    assert checked >= 4, sorted((k, d["count"]) for k, d in events.items())


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "clients.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_missing_or_stale_calibration_is_one_line(tmp_path: Path) -> None:
    cell = tmp_path / "assembly.toml"
    shutil.copy(CELL, cell)
    got = _cli(
        "run", str(cell), "--fidelity", "events", "--runs-dir", str(tmp_path / "r"), cwd=ROOT
    )
    assert got.returncode == 2
    assert "no calibration for" in got.stderr and "lightsout calibrate" in got.stderr
    shutil.copy(CELL.with_suffix(".calib.json"), tmp_path / "assembly.calib.json")
    cell.write_text(CELL.read_text() + "\n# edited\n")
    got = _cli(
        "run", str(cell), "--fidelity", "events", "--runs-dir", str(tmp_path / "r"), cwd=ROOT
    )
    assert got.returncode == 2
    assert "stale" in got.stderr
    said = [x for x in got.stderr.splitlines() if not x.startswith("pybullet build time")]
    assert len(said) == 1, got.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_hostile_calibration_entry_is_refused(tmp_path: Path) -> None:
    from bus.errors import ConfigError
    from cells.calibrate import calibration_of

    data = load_calibration(CELL)
    cell = load_cell(CELL)
    for bad in (float("nan"), float("inf"), 1e300, -1.0, 0.0):
        broken = json.loads(json.dumps(data))
        broken["operations"][0]["duration_s"]["samples"][0] = bad
        with pytest.raises(ConfigError, match=r"operations\[0\]\.duration_s"):
            calibration_of(broken, cell, "x.calib.json")
    broken = json.loads(json.dumps(data))
    broken["drops"]["landed"]["floor"] = 7.0
    with pytest.raises(ConfigError, match=r"drops\.landed\.floor"):
        calibration_of(broken, cell, "x.calib.json")
