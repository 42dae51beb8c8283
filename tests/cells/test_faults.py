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


def op_seconds(log: list[dict[str, Any]], robot: str, after_ns: int) -> list[float]:
    """How long each of ``robot``'s operations took, for those started after ``after_ns``."""
    started = {e["op"]: e["t_ns"] for e in log if e["kind"] == "op_started" and e["robot"] == robot}
    return [
        (e["t_ns"] - started[e["op"]]) / NS
        for e in log
        if e["kind"] == "op_done" and e["robot"] == robot and started.get(e["op"], -1) > after_ns
    ]


@pytest.mark.timeout(600)
def test_a_slow_robot_moves_slower_bids_later_and_work_shifts_to_others(
    cell: CellSpec, tmp_path: Path
) -> None:
    slow = ScheduledFault(5.0, "R1", FaultKind.SLOW_ROBOT, 200.0, 4.0)
    base = run_cell(cell, tmp_path / "base", RunOptions(seed=4, duration_s=150))
    kpis = run_cell(cell, tmp_path / "slow", RunOptions(seed=4, duration_s=150, faults=(slow,)))
    before = op_seconds(events(tmp_path / "base"), "R1", 6 * NS)
    after = op_seconds(events(tmp_path / "slow"), "R1", 6 * NS)
    assert after and before
    assert sum(after) / len(after) > 2 * sum(before) / len(before)
    # its bids carry the slowness, so it wins less of the work
    assert kpis["robots"]["R1"]["ops_done"] < base["robots"]["R1"]["ops_done"]
    others = sum(kpis["robots"][r]["ops_done"] for r in ("R2", "R3", "R4"))
    assert others > sum(base["robots"][r]["ops_done"] for r in ("R2", "R3", "R4"))
    assert kpis["ledger_balanced"] is True


# ---------------------------------------------------------------- a dropped part: picked up again or replaced


def drop_run(cell: CellSpec, out: Path, at_s: float, robot: str, duration_s: float) -> Any:
    drop = ScheduledFault(at_s, robot, FaultKind.GRIPPER_DROP)
    return run_cell(cell, out, RunOptions(seed=1, duration_s=duration_s, faults=(drop,)))


REPICK = (29.69, "R3", 50.0)
"""Seed 1: R3 drops screen-0002 on its way to F2; it comes to rest flat on the tray tables,
off every station, where R3 and R4 reach it (and F2)."""


@pytest.fixture(scope="module")
def repick_run(cell: CellSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("repick")
    return out, drop_run(cell, out, *REPICK)


@pytest.mark.timeout(600)
def test_a_dropped_part_within_reach_is_picked_up_again_and_ships_on_its_unit(
    repick_run: tuple[Path, Any],
) -> None:
    out, kpis = repick_run
    log = events(out)
    failed = next(e for e in log if e["kind"] == "op_failed")
    assert failed["detail"].startswith("dropped screen-0002")
    op = failed["op"]
    assert op == "frame-0002/place_screen"
    (rec,) = [e for e in log if e["kind"] == "op_recovery"]
    assert (rec["op"], rec["part"], rec["at"]) == (op, "screen-0002", "floor")
    assert rec["tilt_deg"] < 5
    # only the robots that reach where it lies (and F2) are called, and one of them wins
    after = log[log.index(rec) :]
    auction = next(e for e in after if e["kind"] == "auction" and e["op"] == op)
    assert auction["robots"] == rec["robots"] and auction["part"] == "screen-0002"
    award = next(e for e in after if e["kind"] == "op_awarded" and e["op"] == op)
    assert award["robot"] in rec["robots"]
    # the same part goes floor -> gripper -> unit, the operation is done once, the unit ships
    path = [e["dst"] for e in log if e["kind"] == "part_moved" and e["part"] == "screen-0002"]
    assert path == ["gripper:R3", "floor", f"gripper:{award['robot']}", "unit:frame-0002"]
    assert [e["robot"] for e in log if e["kind"] == "op_done" and e["op"] == op] == [award["robot"]]
    shipped = next(e for e in log if e["kind"] == "unit_shipped" and e["unit"] == "frame-0002")
    assert "screen-0002" in shipped["parts"]
    assert not [e for e in log if e["kind"] in ("part_scrapped", "unit_scrapped")]
    assert kpis["ledger_balanced"] is True
    assert len(replay_ledger(log)) == kpis["ledger"]["wip"]


@pytest.mark.timeout(600)
def test_a_run_with_a_drop_is_reproducible(
    cell: CellSpec, repick_run: tuple[Path, Any], tmp_path: Path
) -> None:
    out, _ = repick_run
    drop_run(cell, tmp_path, *REPICK)
    assert (tmp_path / "events.jsonl").read_bytes() == (out / "events.jsonl").read_bytes()


@pytest.mark.timeout(600)
def test_a_dropped_part_out_of_reach_is_scrapped_and_replaced(
    cell: CellSpec, tmp_path: Path
) -> None:
    # seed 1: R1 drops board-0001 on its way to F1; it lands at R2's foot, closer than
    # R2 reaches and further than the others do
    kpis = drop_run(cell, tmp_path, 17.33, "R1", 45.0)
    log = events(tmp_path)
    failed = next(e for e in log if e["kind"] == "op_failed")
    assert failed["detail"].startswith("dropped board-0001")
    (scrap,) = [e for e in log if e["kind"] == "part_scrapped"]
    assert scrap["part"] == "board-0001"
    assert scrap["reason"] == "fell: out of reach of every robot that could pick it"
    assert not [e for e in log if e["kind"] == "op_recovery"]
    path = [e["dst"] for e in log if e["kind"] == "part_moved" and e["part"] == "board-0001"]
    assert path == ["gripper:R1", "floor"]
    # the next board from the tray goes on the unit instead, and the unit ships
    again = next(
        e for e in log[log.index(scrap) :] if e["kind"] == "auction" and e["op"] == failed["op"]
    )
    assert again["part"] == "board-0002"
    shipped = next(e for e in log if e["kind"] == "unit_shipped" and e["unit"] == "frame-0001")
    assert "board-0002" in shipped["parts"] and "board-0001" not in shipped["parts"]
    assert kpis["ledger"]["scrapped"] == 1
    assert kpis["ledger_balanced"] is True
    assert len(replay_ledger(log)) == kpis["ledger"]["wip"]
