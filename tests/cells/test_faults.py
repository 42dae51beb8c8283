"""Faults with their real effect: killed processes come back, the ledger survives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from bus.errors import ConfigError
from bus.simtime import NS
from cells.audit import audit_run
from cells.faults import ScheduledFault, parse_scenario
from cells.launch import RunOptions, run_cell
from supervisor.faultstats import FaultTracker
from supervisor.reliability import figures

ROOT = Path(__file__).resolve().parents[2]


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def secs(t_ns: int) -> float:
    """Sim time as ``kpis.json`` writes it: seconds to the millisecond."""
    return round(t_ns / NS, 3)


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
    # kpis.json lists the crash: from the last commit before the kill, found by the restart
    (fault,) = kpis["faults"]
    assert (fault["kind"], fault["target"]) == ("supervisor_crash", "supervisor")
    assert fault["at_s"] == secs(back["from_t_ns"])
    assert (fault["detected_at_s"], fault["detected_by"]) == (secs(back["t_ns"]), back["kind"])
    assert fault["detected_at_s"] <= fault["recovered_at_s"] < secs(back["t_ns"]) + 5
    (outage,) = [o for o in kpis["outages"] if o["cause"] == "supervisor_crash"]
    assert (outage["robot"], outage["start_s"]) == (None, fault["at_s"])
    assert kpis["by_fault_kind"]["supervisor_crash"]["recovered"] == 1


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
    # kpis.json: detected when lost, recovered back in Execute, down from the kill
    (fault,) = kpis["faults"]
    execute = next(e for e in back if e["dst"] == "Execute")
    assert (fault["kind"], fault["target"], fault["at_s"]) == ("agent_crash", "R1", kill_at)
    assert (fault["detected_at_s"], fault["recovered_at_s"]) == (
        secs(lost["t_ns"]),
        secs(execute["t_ns"]),
    )
    (outage,) = kpis["outages"]
    assert (outage["robot"], outage["start_s"], outage["end_s"]) == (
        "R1",
        kill_at,
        secs(execute["t_ns"]),
    )
    assert kpis["robots"]["R1"]["availability"] < kpis["robots"]["R2"]["availability"]


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


def test_process_faults_need_members_that_can_be_killed(cell: CellSpec, tmp_path: Path) -> None:
    """Processes, or members stepped on the clock's thread: threads with sockets of their own
    cannot be killed alone."""
    crash = ScheduledFault(1.0, "R1", FaultKind.AGENT_CRASH)
    for opts in (
        RunOptions(duration_s=2, faults=(crash,), threads=True),
        RunOptions(duration_s=2, faults=(crash,), endpoint=f"ipc://{tmp_path / 's'}"),
    ):
        with pytest.raises(ConfigError, match="--processes, or in one process over inproc"):
            run_cell(cell, tmp_path / "run", opts)
        assert not (tmp_path / "run").exists()


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
    known = "at, target, kind, duration, factor, share, permanent, joint, hidden"
    assert err.reason == f"unknown key (known: {known})"


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


@pytest.mark.timeout(600)
def test_a_lossy_link_is_noticed_and_no_operation_runs_twice(
    cell: CellSpec, tmp_path: Path
) -> None:
    """A third of the messages between the supervisor and R3 lost for a minute, reproducibly."""
    loss = ScheduledFault(20.0, "R3", FaultKind.MESSAGE_LOSS, 60.0, share=0.3)
    opts = RunOptions(seed=4, duration_s=140, faults=(loss,))
    kpis = run_cell(cell, tmp_path / "a", opts)
    log = events(tmp_path / "a")
    lossy = [e for e in log if e["kind"] == "link_lossy" and e["robot"] == "R3"]
    ok = [e for e in log if e["kind"] == "link_ok" and e["robot"] == "R3"]
    assert lossy and 20 * NS < lossy[0]["t_ns"] < 25 * NS  # noticed within seconds
    assert ok and ok[-1]["t_ns"] > 80 * NS  # and fine again only after it ended
    assert not any(e["kind"] == "link_lossy" and e["robot"] != "R3" for e in log)
    # the repeats did their work: awards re-sent, duplicate reports ignored
    assert kpis["counters"]["awards_resent"] + kpis["counters"]["stale_reports"] > 0
    assert [c.detail for c in audit_run(tmp_path / "a", window_s=70) if not c.ok] == []
    assert kpis["units_completed"] >= 6
    run_cell(cell, tmp_path / "b", opts)
    assert (tmp_path / "a" / "events.jsonl").read_bytes() == (
        tmp_path / "b" / "events.jsonl"
    ).read_bytes()


@pytest.mark.timeout(600)
def test_a_jammed_belt_is_noticed_held_and_cleared(cell: CellSpec, tmp_path: Path) -> None:
    """The outfeed stops: units not arriving tell the supervisor, which holds the unloads."""
    jam = ScheduledFault(50.0, "outfeed", FaultKind.CONVEYOR_JAM, 40.0)
    kpis = run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=130, faults=(jam,)))
    log = events(tmp_path)
    (jammed,) = [e for e in log if e["kind"] == "conveyor_jammed"]
    (cleared,) = [e for e in log if e["kind"] == "conveyor_cleared"]
    assert jammed["conveyor"] == cleared["conveyor"] == "outfeed"
    # cleared when a unit reaches the end again: the belt runs at 90 s, the unit rides on
    assert 50 * NS < jammed["t_ns"] < 90 * NS <= cleared["t_ns"] < 100 * NS
    # held: no unload starts while the belt is known jammed
    unloads = [e["t_ns"] for e in log if e["kind"] == "op_started" and e["op"].endswith("/unload")]
    assert not [t for t in unloads if jammed["t_ns"] <= t < cleared["t_ns"]]
    assert kpis["ledger_balanced"]
    assert any(e["kind"] == "unit_shipped" and e["t_ns"] > cleared["t_ns"] for e in log)


@pytest.mark.timeout(600)
def test_a_slow_robot_is_noticed_from_its_times(cell: CellSpec, tmp_path: Path) -> None:
    """The whole cell slows down (work cannot go elsewhere): the robots' own times show it.

    (One slow robot alone soon wins no work, so it shows nothing and costs nothing.)
    """
    slow = tuple(
        ScheduledFault(30.0, r.name, FaultKind.SLOW_ROBOT, 80.0, factor=2.5) for r in cell.robots
    )
    run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=200, faults=slow))
    log = events(tmp_path)
    noticed = [e for e in log if e["kind"] == "robot_slow"]
    back = [e for e in log if e["kind"] == "robot_speed_ok"]
    assert len({e["robot"] for e in noticed}) >= 2
    assert all(30 * NS < e["t_ns"] < 110 * NS and e["ratio"] >= 1.6 for e in noticed)
    assert back and all(e["t_ns"] > 110 * NS for e in back)
    assert {e["robot"] for e in back} <= {e["robot"] for e in noticed}


def first_hold(log: list[dict[str, Any]], robot: str, after_ns: int) -> int:
    """When ``robot`` first picks a part up after ``after_ns``."""
    return next(
        e["t_ns"]
        for e in log
        if e["kind"] == "part_moved" and e["dst"] == f"gripper:{robot}" and e["t_ns"] > after_ns
    )


@pytest.mark.timeout(600)
def test_kpis_list_every_fault_with_its_detection_and_recovery(
    cell: CellSpec, tmp_path: Path
) -> None:
    # drop R3's part just after it picks one up (near the tray, so the part falls clear)
    run_cell(cell, tmp_path / "base", RunOptions(seed=2, duration_s=20))
    drop_at = first_hold(events(tmp_path / "base"), "R3", 12 * NS) / NS + 0.1
    scenario = (
        ScheduledFault(drop_at, "R3", FaultKind.GRIPPER_DROP),
        ScheduledFault(25.0, "R4", FaultKind.ROBOT_FAULT, 8.0),
        ScheduledFault(35.0, "infeed.end", FaultKind.SENSOR_BLACKOUT, 6.0),
    )
    kpis = run_cell(cell, tmp_path / "run", RunOptions(seed=2, duration_s=60, faults=scenario))
    log = events(tmp_path / "run")
    faults = {f["kind"]: f for f in kpis["faults"]}
    assert [(f["kind"], f["target"]) for f in kpis["faults"]] == [
        ("gripper_drop", "R3"),
        ("robot_fault", "R4"),
        ("sensor_blackout", "infeed.end"),
    ]
    for f in kpis["faults"]:
        assert f["at_s"] <= f["detected_at_s"] <= f["recovered_at_s"], f
        assert f["detection_s"] + f["recovery_s"] == pytest.approx(
            f["recovered_at_s"] - f["at_s"], abs=0.002
        )
    # the robot notices its empty gripper in a tick or two; the failed step is then redone
    drop = faults["gripper_drop"]
    assert (drop["detected_by"], drop["recovered_by"]) == ("op_failed", "op_done")
    assert drop["detection_s"] <= 0.2
    # the abort follows the fault at once; it is over when R4 is back in Execute after 8 s
    fault = faults["robot_fault"]
    assert fault["detected_by"] == "robot_state Aborting" and fault["detection_s"] <= 0.2
    r4 = [e for e in log if e["kind"] == "robot_state" and e["robot"] == "R4"]
    back = next(e for e in r4 if e["dst"] == "Execute" and e["t_ns"] > 25 * NS)
    assert fault["recovered_at_s"] == secs(back["t_ns"])
    assert 8.0 <= fault["recovered_at_s"] - fault["at_s"] <= 10.0
    # a blind sensor is stale after 0.5 s and restored when it reads again
    blind = faults["sensor_blackout"]
    assert 0.5 <= blind["detection_s"] <= 0.6
    assert blind["recovered_at_s"] == pytest.approx(41.0, abs=0.05)
    # per kind, and the cost of each: R4's outage, the cell's while blind, none for the drop
    kinds = kpis["by_fault_kind"]
    assert {k: (v["count"], v["detected"], v["recovered"]) for k, v in kinds.items()} == {
        "gripper_drop": (1, 1, 1),
        "robot_fault": (1, 1, 1),
        "sensor_blackout": (1, 1, 1),
    }
    outages = [(o["robot"], o["start_s"], o["end_s"], o["cause"]) for o in kpis["outages"]]
    assert outages == [
        ("R4", 25.0, fault["recovered_at_s"], "robot_fault"),
        (None, 35.0, blind["recovered_at_s"], "sensor_blackout"),
    ]
    assert kinds["robot_fault"]["downtime_s"] == pytest.approx(fault["recovered_at_s"] - 25.0)
    assert kinds["gripper_drop"]["downtime_s"] == 0.0
    robots = kpis["robots"]
    assert robots["R4"]["failures"] == 1 and robots["R4"]["time_s"]["down"] > 8.0
    assert robots["R4"]["availability"] < min(robots[r]["availability"] for r in ("R1", "R2", "R3"))
    assert kpis["availability"] == pytest.approx(
        sum(r["availability"] for r in robots.values()) / 4, abs=1e-4
    )
    oee = kpis["oee"]
    assert 0 < oee["oee"] <= oee["availability"]
    assert oee["oee"] == pytest.approx(
        oee["availability"] * oee["performance"] * oee["quality"], abs=1e-3
    )
    assert (kpis["failures"], kpis["mttr_s"]) == (
        2,
        pytest.approx((outages[0][2] - 25 + 6.0) / 2, abs=0.05),
    )
    # the figures are the event log's: the same log (same seed) gives the same kpis.json
    tracker = FaultTracker(robots)
    for e in log:
        tracker.feed(e)
    again = figures(tracker, round(kpis["duration_s"] * NS))
    assert again["faults"] == kpis["faults"]
    assert again["by_fault_kind"] == kpis["by_fault_kind"]
    assert again["cell"]["oee"] == kpis["oee"]
    assert kpis["ledger_balanced"] is True


@pytest.mark.timeout(600)
def test_a_run_with_killed_processes_is_reproducible(cell: CellSpec, tmp_path: Path) -> None:
    """Restarted processes rejoin at a set sim time: the same scenario, the same event log."""
    faults = (
        ScheduledFault(30.0, "R2", FaultKind.AGENT_CRASH),
        ScheduledFault(60.0, "supervisor", FaultKind.SUPERVISOR_CRASH),
    )
    opts = RunOptions(seed=2, duration_s=100, processes=True, faults=faults)
    for name in ("a", "b"):
        kpis = run_cell(cell, tmp_path / name, opts)
        assert kpis["sim"]["restarts"] == {"R2": 1, "supervisor": 1}
    first = (tmp_path / "a" / "events.jsonl").read_bytes()
    assert first == (tmp_path / "b" / "events.jsonl").read_bytes()
    log = events(tmp_path / "a")
    back = [e["t_ns"] for e in log if e["kind"] == "robot_joined" and e["robot"] == "R2"]
    assert back[-1] == pytest.approx(35 * NS, abs=0.1 * NS)  # RESTART_S after the kill


# ---------------------------------------------------------------- a dropped part: picked up again or replaced


def drop_run(cell: CellSpec, out: Path, at_s: float, robot: str, duration_s: float) -> Any:
    drop = ScheduledFault(at_s, robot, FaultKind.GRIPPER_DROP)
    return run_cell(cell, out, RunOptions(seed=1, duration_s=duration_s, faults=(drop,)))


REPICK = (12.01, "R3", 50.0)
"""Seed 1: R3 drops frame-0001 while loading it; it comes to rest flat on the floor by the
infeed, where R3 reaches it (and F1)."""


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
    assert failed["detail"].startswith("dropped frame-0001")
    op = failed["op"]
    assert op == "frame-0001/load_frame"
    (rec,) = [e for e in log if e["kind"] == "op_recovery"]
    assert (rec["op"], rec["part"], rec["at"]) == (op, "frame-0001", "floor")
    assert rec["tilt_deg"] < 5 and rec["pose"][2] < 0.01  # flat on the floor
    # only the robots that reach where it lies (and F1) are called, and one of them wins
    after = log[log.index(rec) :]
    auction = next(e for e in after if e["kind"] == "auction" and e["op"] == op)
    assert auction["robots"] == rec["robots"] and auction["part"] == "frame-0001"
    award = next(e for e in after if e["kind"] == "op_awarded" and e["op"] == op)
    assert award["robot"] in rec["robots"]
    # the same part goes floor -> gripper -> fixture, the operation is done once, it ships
    path = [e["dst"] for e in log if e["kind"] == "part_moved" and e["part"] == "frame-0001"]
    assert path[:4] == ["gripper:R3", "floor", f"gripper:{award['robot']}", "fixture:F1"]
    assert [e["robot"] for e in log if e["kind"] == "op_done" and e["op"] == op] == [award["robot"]]
    shipped = next(e for e in log if e["kind"] == "unit_shipped" and e["unit"] == "frame-0001")
    assert "frame-0001" in shipped["parts"]
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
def test_a_dropped_part_that_cannot_be_picked_is_scrapped_and_replaced(
    cell: CellSpec, tmp_path: Path
) -> None:
    # seed 1: R3 drops board-0001 on its way to F1; it comes to rest against the frame,
    # where no gripper can close on it
    kpis = drop_run(cell, tmp_path, 18.15, "R3", 45.0)
    log = events(tmp_path)
    failed = next(e for e in log if e["kind"] == "op_failed")
    assert failed["detail"].startswith("dropped board-0001")
    (scrap,) = [e for e in log if e["kind"] == "part_scrapped"]
    assert scrap["part"] == "board-0001"
    assert scrap["reason"] == "fell: it lies against frame-0001"
    assert not [e for e in log if e["kind"] == "op_recovery"]
    path = [e["dst"] for e in log if e["kind"] == "part_moved" and e["part"] == "board-0001"]
    assert path == ["gripper:R3", "floor"]
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
