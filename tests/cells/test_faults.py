"""Faults with their real effect: killed processes come back, the ledger survives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.errors import ConfigError
from cells.faults import FaultKind, ScheduledFault, parse_scenario
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


@pytest.fixture(scope="module")
def cell() -> CellSpec:
    return load_cell(ROOT / "cells" / "assembly.toml")


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def replay_ledger(log: list[dict[str, Any]]) -> dict[str, str]:
    """The live parts and their locations, rebuilt from the event log alone."""
    live: dict[str, str] = {}
    for e in log:
        if e["kind"] == "part_created":
            live[e["part"]] = e["location"]
        elif e["kind"] == "part_moved":
            live[e["part"]] = e["dst"]
        elif e["kind"] in ("unit_shipped", "unit_scrapped"):
            for p in e["parts"]:
                live.pop(p, None)
        elif e["kind"] == "part_scrapped":
            live.pop(e["part"], None)
    return dict(sorted(live.items()))


@pytest.mark.timeout(600)
def test_a_killed_supervisor_comes_back_from_its_journal_with_nothing_lost(
    cell: CellSpec, tmp_path: Path
) -> None:
    crash = ScheduledFault(40.0, "supervisor", FaultKind.SUPERVISOR_CRASH)
    kpis = run_cell(
        cell, tmp_path, RunOptions(seed=5, duration_s=100, processes=True, faults=(crash,))
    )
    assert kpis["sim"]["killed"] == [[40 * NS, "supervisor"]]
    assert kpis["sim"]["restarts"] == {"supervisor": 1}
    log = events(tmp_path)
    restored = [e for e in log if e["kind"] == "supervisor_restored"]
    assert len(restored) == 1
    back = restored[0]
    # what came back is exactly what the events before the crash say the ledger was
    before = log[: log.index(back)]
    assert back["ledger"] == replay_ledger(before)
    assert back["created"] == sum(1 for e in before if e["kind"] == "part_created")
    assert back["from_t_ns"] <= 40 * NS
    # and the cell went on producing after it, with every part accounted for
    after = log[log.index(back) :]
    assert any(e["kind"] == "unit_shipped" for e in after)
    assert kpis["ledger_balanced"] is True
    assert len(replay_ledger(log)) == kpis["ledger"]["wip"]
    assert all(r["state"] == "Execute" for r in kpis["robots"].values())


@pytest.mark.timeout(600)
def test_a_killed_agent_is_detected_its_work_reauctioned_and_it_rejoins(
    cell: CellSpec, tmp_path: Path
) -> None:
    kill_at = 30.0
    crash = ScheduledFault(kill_at, "R1", FaultKind.AGENT_CRASH)
    kpis = run_cell(
        cell, tmp_path, RunOptions(seed=6, duration_s=80, processes=True, faults=(crash,))
    )
    log = events(tmp_path)
    lost = next(e for e in log if e["kind"] == "robot_lost" and e["robot"] == "R1")
    # detection within 3 heartbeat intervals of sim time of the kill
    assert lost["t_ns"] - kill_at * NS <= 3 * cell.heartbeat_s * NS
    # its operations were given back at once
    requeued = [e for e in log if e["kind"] == "op_requeued" and e["reason"] == "R1 lost"]
    assert all(e["t_ns"] == lost["t_ns"] for e in requeued)
    # it came back through Stopped, Resetting, Idle to Execute
    back = [
        e
        for e in log
        if e["t_ns"] > lost["t_ns"] and e["kind"] == "robot_state" and e["robot"] == "R1"
    ]
    assert [e["dst"] for e in back][:5] == ["Stopped", "Resetting", "Idle", "Starting", "Execute"]
    assert kpis["robots"]["R1"]["state"] == "Execute"
    assert kpis["ledger_balanced"] is True


def scenario(cell: CellSpec, **entry: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_scenario({"faults": [entry]}, cell, source="bad.toml")
    assert str(info.value).startswith("bad.toml: faults[0]")
    return info.value


def test_unknown_kind(cell: CellSpec) -> None:
    err = scenario(cell, at=1.0, target="R1", kind="meteor")
    assert "'meteor' is not one of" in err.reason


def test_unknown_target(cell: CellSpec) -> None:
    err = scenario(cell, at=1.0, target="R9", kind="agent_crash")
    assert err.key == "faults[0].target"


def test_negative_time(cell: CellSpec) -> None:
    err = scenario(cell, at=-5, target="R1", kind="agent_crash")
    assert "must not be negative" in err.reason


def test_process_faults_need_processes(cell: CellSpec, tmp_path: Path) -> None:
    crash = ScheduledFault(1.0, "R1", FaultKind.AGENT_CRASH)
    with pytest.raises(ConfigError, match="--processes"):
        run_cell(cell, tmp_path, RunOptions(duration_s=2, faults=(crash,)))


@pytest.mark.timeout(600)
def test_a_blind_intake_sensor_holds_the_intake_until_it_sees_again(
    cell: CellSpec, tmp_path: Path
) -> None:
    blind = ScheduledFault(20.0, "infeed.end", FaultKind.SENSOR_BLACKOUT, 25.0)
    kpis = run_cell(cell, tmp_path, RunOptions(seed=3, duration_s=90, faults=(blind,)))
    log = events(tmp_path)
    stale = next(e for e in log if e["kind"] == "sensor_stale")
    back = next(e for e in log if e["kind"] == "sensor_restored")
    assert stale["sensor"] == back["sensor"] == "infeed.end"
    # detected within half a second of going dark, seen again when it comes back
    assert 20 * NS < stale["t_ns"] <= 20.6 * NS
    assert 45 * NS <= back["t_ns"] <= 45.1 * NS
    # the intake was held: no unit started while the sensor was blind ...
    assert not [
        e for e in log if e["kind"] == "unit_started" and stale["t_ns"] <= e["t_ns"] < back["t_ns"]
    ]
    # ... and the cell went on after it
    assert [e for e in log if e["kind"] == "unit_started" and e["t_ns"] >= back["t_ns"]]
    assert any(e["kind"] == "fault_injected" and e["fault"] == "sensor_blackout" for e in log)
    assert kpis["ledger_balanced"] is True


def test_unknown_sensor(cell: CellSpec) -> None:
    err = scenario(cell, at=1.0, target="eyeball", kind="sensor_blackout", duration=2.0)
    assert "infeed.end" in err.reason


def test_a_slow_robot_takes_its_factor_from_the_file(cell: CellSpec) -> None:
    entry = {"at": 1.0, "target": "R3", "kind": "slow_robot", "duration": 60.0, "factor": 3.0}
    (fault,) = parse_scenario({"faults": [entry]}, cell, source="s.toml")
    assert (fault.kind, fault.duration_s, fault.factor) == (FaultKind.SLOW_ROBOT, 60.0, 3.0)


def test_unknown_key_lists_the_known_ones(cell: CellSpec) -> None:
    err = scenario(cell, at=1.0, target="R1", kind="robot_fault", duration=1.0, severity=3)
    assert err.key == "faults[0].severity"
    assert err.reason == "unknown key (known: at, target, kind, duration, factor, permanent)"


def bid_seconds(log: list[dict[str, Any]], robot: str, after_ns: int) -> list[float]:
    """How long after each call for bids ``robot`` promised to be done, for calls after ``after_ns``.

    A bid is the finish time of the plan the robot would run, so this is how
    long it expects the operation (and any queued before it) to take.
    """
    called: dict[str, int] = {}
    out: list[float] = []
    for e in log:
        if e["kind"] == "auction":
            called[e["op"]] = e["t_ns"]
        elif e["kind"] == "op_awarded" and called.get(e["op"], -1) > after_ns:
            out += [(finish - called[e["op"]]) / NS for r, finish in e["bids"] if r == robot]
    return out


@pytest.mark.timeout(600)
def test_a_slow_robot_bids_later_and_work_shifts_to_others(cell: CellSpec, tmp_path: Path) -> None:
    slow = ScheduledFault(5.0, "R1", FaultKind.SLOW_ROBOT, 200.0, 4.0)
    base = run_cell(cell, tmp_path / "base", RunOptions(seed=4, duration_s=150))
    kpis = run_cell(cell, tmp_path / "slow", RunOptions(seed=4, duration_s=150, faults=(slow,)))
    # it plans at the slower speed, and its bids (the finish times of those plans) say so
    before = bid_seconds(events(tmp_path / "base"), "R1", 6 * NS)
    after = bid_seconds(events(tmp_path / "slow"), "R1", 6 * NS)
    assert after and before
    assert sum(after) / len(after) > 2 * sum(before) / len(before)
    # so it wins less of the work (every step has another robot that can do it)
    assert kpis["robots"]["R1"]["ops_done"] < base["robots"]["R1"]["ops_done"]
    others = sum(kpis["robots"][r]["ops_done"] for r in ("R2", "R3", "R4"))
    assert others > sum(base["robots"][r]["ops_done"] for r in ("R2", "R3", "R4"))
    assert kpis["ledger_balanced"] is True
