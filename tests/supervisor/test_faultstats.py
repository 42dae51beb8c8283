"""The fault tracker: every kind paired with its detection and recovery, outages, figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.enums import PackMLState
from supervisor import Supervisor
from supervisor.faultstats import FaultTracker
from supervisor.reliability import figures
from tests.clients.runkit import fault_events
from tests.kit.supervisor import Harness

S = 1_000_000_000
ROBOTS = ("R1", "R2", "R3", "R4")
BOOT = ("Stopped", "Resetting", "Idle", "Starting", "Execute")


def ev(t_s: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t_ns": round(t_s * S), "kind": kind, **fields}


def state(t_s: float, robot: str, dst: str, reason: str = "state complete") -> dict[str, Any]:
    return ev(t_s, "robot_state", robot=robot, dst=dst, reason=reason)


def boot(t_s: float, robot: str) -> list[dict[str, Any]]:
    """A robot brought up to Execute, one state every 0.2 s (Execute at ``t_s + 0.8``)."""
    first = state(t_s, robot, BOOT[0], "heartbeat")
    return [first, *(state(t_s + 0.2 * i, robot, s) for i, s in enumerate(BOOT) if i)]


def fault(t_s: float, kind: str, target: str, **fields: Any) -> dict[str, Any]:
    return ev(t_s, "fault_injected", fault=kind, target=target, **{"duration_s": 0.0, **fields})


def track(events: list[dict[str, Any]], robots: tuple[str, ...] = ROBOTS) -> FaultTracker:
    tr = FaultTracker(robots)
    for e in [e for r in robots for e in boot(0.0, r)] + events:
        tr.feed(e)
    return tr


def only(tr: FaultTracker, now_s: float = 100.0) -> dict[str, Any]:
    """The one fault of the run, as ``kpis.json`` lists it."""
    (f,) = figures(tr, round(now_s * S))["faults"]
    return dict(f)


def paired(f: dict[str, Any]) -> tuple[Any, ...]:
    return (f["detected_at_s"], f["detected_by"], f["recovered_at_s"], f["recovered_by"])


# ---------------------------------------------------------------- every kind


def test_agent_crash_is_found_lost_and_over_when_its_robot_is_back_in_execute() -> None:
    tr = track(
        [
            fault(30.0, "agent_crash", "R1"),
            ev(32.0, "robot_lost", robot="R1"),
            *boot(34.0, "R1"),
        ]
    )
    f = only(tr)
    assert paired(f) == (32.0, "robot_lost", 34.8, "robot_state Execute")
    assert (f["detection_s"], f["recovery_s"]) == (2.0, 2.8)
    # the robot was down from the kill, not from when its silence was noticed
    out = figures(tr, 100 * S)
    assert out["outages"][0] == {
        "robot": "R1",
        "start_s": 30.0,
        "end_s": 34.8,
        "ttr_s": 4.8,
        "repaired": True,
        "cause": "agent_crash",
        "fault": 0,
    }
    assert out["robots"]["R1"]["time_s"]["down"] == 4.8


def test_agent_crash_is_found_by_the_restarted_agent_when_it_reports_before_its_silence() -> None:
    tr = track([fault(30.0, "agent_crash", "R1"), *boot(30.5, "R1")])
    assert paired(only(tr)) == (30.5, "robot_state Stopped", 31.3, "robot_state Execute")


def test_supervisor_crash_starts_at_its_last_commit_is_found_by_the_restart() -> None:
    # the supervisor that comes back logs its restoration, then the crash that killed it
    tr = track(
        [
            ev(10.0, "op_awarded", op="u/a", robot="R1"),
            ev(23.5, "supervisor_restored", from_t_ns=19 * S + S // 2, from_tick=468),
            fault(23.5, "supervisor_crash", "supervisor"),
            ev(23.5, "part_created", part="p", location="feeder:tray"),
            ev(24.25, "op_awarded", op="u/b", robot="R2"),
        ]
    )
    f = only(tr)
    assert (f["at_s"], f["detection_s"]) == (19.5, 4.0)
    assert paired(f) == (23.5, "supervisor_restored", 24.25, "op_awarded")
    (out,) = figures(tr, 100 * S)["outages"]
    assert (out["robot"], out["start_s"], out["end_s"], out["cause"]) == (
        None,
        19.5,
        24.25,
        "supervisor_crash",
    )


def test_a_restart_without_an_injected_crash_is_a_cell_outage_but_no_fault() -> None:
    tr = track([ev(23.5, "supervisor_restored", from_t_ns=20 * S, from_tick=480)])
    out = figures(tr, 100 * S)
    assert out["faults"] == []
    assert [(o["start_s"], o["end_s"], o["cause"]) for o in out["outages"]] == [
        (20.0, 23.5, "supervisor_restart")
    ]


def test_robot_fault_is_found_by_the_abort_and_over_back_in_execute() -> None:
    tr = track(
        [
            fault(20.0, "robot_fault", "R2", duration_s=10.0),
            state(20.042, "R2", "Aborting", "command Abort"),
            state(20.25, "R2", "Aborted"),
            state(30.0, "R2", "Clearing", "command Clear"),
            *boot(30.2, "R2"),
        ]
    )
    f = only(tr)
    assert paired(f) == (20.042, "robot_state Aborting", 31.0, "robot_state Execute")
    assert f["duration_s"] == 10.0
    assert figures(tr, 100 * S)["robots"]["R2"]["time_s"]["down"] == 11.0


def test_a_permanent_fault_is_never_recovered_and_the_run_ends_with_it_open() -> None:
    tr = track(
        [
            fault(20.0, "robot_fault", "R3", permanent=True),
            state(20.042, "R3", "Aborting", "command Abort"),
            state(20.25, "R3", "Aborted"),
        ]
    )
    out = figures(tr, 50 * S)
    (f,) = out["faults"]
    assert f["permanent"] is True
    assert (f["recovered_at_s"], f["recovery_s"], f["recovered_by"]) == (None, None, None)
    r3 = out["robots"]["R3"]
    assert (r3["failures"], r3["down_s"], r3["mttr_s"]) == (1, 30.0, None)
    assert r3["time_s"]["down"] == 30.0
    assert out["outages"][0]["repaired"] is False
    kind = out["by_fault_kind"]["robot_fault"]
    assert (kind["count"], kind["detected"], kind["recovered"]) == (1, 1, 0)
    assert kind["recovery_s"] == {"mean": None, "max": None}


def test_gripper_drop_is_found_by_the_failed_operation_and_over_when_it_is_redone() -> None:
    tr = track(
        [
            ev(13.0, "op_started", op="f1/place_battery", robot="R1"),
            ev(13.5, "part_moved", part="b1", src="feeder:tray", dst="gripper:R1"),
            fault(14.375, "gripper_drop", "R1"),
            ev(14.417, "op_failed", op="f1/place_battery", robot="R1", detail="dropped b1"),
            ev(14.417, "op_requeued", op="f1/place_battery", reason="dropped b1"),
            ev(14.6, "part_moved", part="b1", src="gripper:R1", dst="floor"),
            ev(15.0, "part_scrapped", part="b1", reason="fell"),
            ev(16.0, "op_started", op="f2/place_battery", robot="R1"),  # not the failed one
            ev(18.0, "op_done", op="f2/place_battery", robot="R1"),
            ev(18.5, "op_started", op="f1/place_battery", robot="R2"),
            ev(19.667, "op_done", op="f1/place_battery", robot="R2"),
        ]
    )
    assert paired(only(tr)) == (14.417, "op_failed", 19.667, "op_done")
    # the robot never left Execute: a fault, not a failure
    assert figures(tr, 100 * S)["outages"] == []


def test_gripper_drop_seen_as_the_part_falling_before_the_robot_says_so() -> None:
    tr = track(
        [
            ev(13.0, "op_started", op="f1/load_frame", robot="R1"),
            ev(13.5, "part_moved", part="f1", src="conveyor:infeed", dst="gripper:R1"),
            fault(14.0, "gripper_drop", "R1"),
            ev(14.0, "part_moved", part="f1", src="gripper:R1", dst="floor"),
            ev(14.1, "op_failed", op="f1/load_frame", robot="R1"),
            ev(14.1, "unit_scrapped", unit="f1", parts=["f1"], reason="f1 fell"),
        ]
    )
    # the dropped part was the unit itself: scrapping it is the end of the fault
    assert paired(only(tr)) == (14.0, "part_moved floor", 14.1, "unit_scrapped")


def test_a_drop_armed_on_an_empty_gripper_is_not_any_failure() -> None:
    tr = track(
        [
            fault(14.0, "gripper_drop", "R1"),
            ev(15.0, "op_started", op="f1/place_board", robot="R1"),
            ev(16.0, "op_failed", op="f1/place_board", robot="R1", detail="grasp missed"),
        ]
    )
    f = only(tr)
    assert paired(f) == (None, None, None, None)
    assert (f["detection_s"], f["recovery_s"]) == (None, None)
    kind = figures(tr, 100 * S)["by_fault_kind"]["gripper_drop"]
    assert (kind["detected"], kind["detection_s"]["mean"]) == (0, None)


def test_a_drop_armed_on_an_empty_gripper_is_found_when_the_next_part_falls() -> None:
    tr = track(
        [
            fault(14.0, "gripper_drop", "R1"),
            ev(15.0, "op_started", op="f1/place_board", robot="R1"),
            ev(15.5, "part_moved", part="board-1", src="feeder:board_tray", dst="gripper:R1"),
            ev(16.0, "op_failed", op="f1/place_board", robot="R1", detail="dropped board-1: x"),
            ev(16.2, "part_moved", part="board-1", src="gripper:R1", dst="floor"),
            ev(19.0, "op_done", op="f1/place_board", robot="R3"),
        ]
    )
    assert paired(only(tr)) == (16.0, "op_failed", 19.0, "op_done")


@pytest.mark.parametrize(
    ("kind", "target", "found", "over", "key"),
    [
        ("conveyor_jam", "outfeed", "conveyor_jammed", "conveyor_cleared", "conveyor"),
        ("sensor_blackout", "infeed.end", "sensor_stale", "sensor_restored", "sensor"),
        ("slow_robot", "R3", "robot_slow", "robot_speed_ok", "robot"),
        ("message_loss", "R4", "link_lossy", "link_ok", "robot"),
    ],
)
def test_kinds_the_supervisor_reports_with_a_pair_of_events(
    kind: str, target: str, found: str, over: str, key: str
) -> None:
    tr = track(
        [
            fault(40.0, kind, target, duration_s=15.0),
            ev(40.5, found, **{key: "elsewhere"}),  # another target's: not this fault's
            ev(41.0, found, **{key: target}),
            ev(55.0, over, **{key: target}),
        ]
    )
    f = only(tr)
    assert paired(f) == (41.0, found, 55.0, over)
    assert (f["detection_s"], f["recovery_s"]) == (1.0, 14.0)
    by_kind = figures(tr, 100 * S)["by_fault_kind"][kind]
    cell = kind in ("conveyor_jam", "sensor_blackout")
    assert by_kind["scope"] == ("cell" if cell else "robot")
    # a jam or a blind sensor holds the cell from the fault to its end; a slow robot or a
    # lossy link only slows it (their cost is in performance)
    assert by_kind["downtime_s"] == (15.0 if cell else 0.0)


def test_a_robot_lost_over_a_lossy_link_is_an_outage_of_message_loss() -> None:
    tr = track(
        [
            fault(40.0, "message_loss", "R4", duration_s=15.0),
            ev(40.5, "link_lossy", robot="R4", lost=12),
            ev(43.0, "robot_lost", robot="R4"),
            state(44.0, "R4", "Execute", "heartbeat"),
            ev(55.0, "link_ok", robot="R4"),
        ]
    )
    out = figures(tr, 100 * S)
    assert [(o["robot"], o["start_s"], o["end_s"], o["cause"]) for o in out["outages"]] == [
        ("R4", 43.0, 44.0, "message_loss")
    ]
    assert out["by_fault_kind"]["message_loss"]["downtime_s"] == 1.0


def test_a_robot_heard_again_in_execute_is_back_when_it_is_heard() -> None:
    """Taken for lost over a lossy link, it comes back saying nothing new: it never stopped."""
    tr = track(
        [
            fault(40.0, "message_loss", "R4", duration_s=15.0),
            ev(40.5, "link_lossy", robot="R4", lost=12),
            ev(43.0, "robot_lost", robot="R4"),
            ev(44.0, "robot_joined", robot="R4"),
            ev(44.5, "op_done", robot="R4", op="u1/fasten"),
            ev(55.0, "link_ok", robot="R4"),
        ]
    )
    out = figures(tr, 100 * S)
    assert [(o["robot"], o["start_s"], o["end_s"], o["cause"]) for o in out["outages"]] == [
        ("R4", 43.0, 44.0, "message_loss")
    ]
    # down 1 s of 100 (and 0.8 s bringing it up at the start)
    assert out["robots"]["R4"]["availability"] == pytest.approx(0.982, abs=0.001)


def test_a_restarted_agent_heard_again_is_not_back_until_execute() -> None:
    tr = track(
        [
            fault(30.0, "agent_crash", "R1"),
            ev(32.0, "robot_lost", robot="R1"),
            ev(35.0, "robot_joined", robot="R1"),
            *boot(35.0, "R1"),
        ]
    )
    out = figures(tr, 100 * S)
    assert [(o["robot"], o["start_s"], o["end_s"]) for o in out["outages"]] == [("R1", 30.0, 35.8)]


def test_a_fault_never_detected_stays_open_with_nulls() -> None:
    tr = track([fault(40.0, "sensor_blackout", "outfeed.end", duration_s=5.0)])
    f = only(tr)
    assert paired(f) == (None, None, None, None)
    assert figures(tr, 100 * S)["outages"] == []  # a failure counts once it is noticed


def test_a_detection_logged_in_the_same_tick_just_before_the_fault_still_pairs() -> None:
    # within one tick the supervisor logs what it saw before the requests it was handed
    tr = track(
        [
            ev(40.0, "sensor_stale", sensor="infeed.end"),
            fault(40.0, "sensor_blackout", "infeed.end", duration_s=5.0),
            ev(45.0, "sensor_restored", sensor="infeed.end"),
        ]
    )
    assert paired(only(tr)) == (40.0, "sensor_stale", 45.0, "sensor_restored")


def test_an_event_older_than_the_fault_does_not_detect_it() -> None:
    tr = track(
        [
            ev(13.0, "op_started", op="f1/load_frame", robot="R1"),
            ev(13.5, "part_moved", part="f1", src="conveyor:infeed", dst="gripper:R1"),
            fault(14.0, "gripper_drop", "R1"),
            # the world reports late (after a restart) a fall from before the fault
            ev(12.0, "part_moved", part="f1", src="gripper:R1", dst="floor"),
        ]
    )
    assert paired(only(tr)) == (None, None, None, None)


def test_overlapping_faults_on_different_targets_pair_with_their_own_events() -> None:
    tr = track(
        [
            fault(20.0, "robot_fault", "R2", duration_s=10.0),
            state(20.042, "R2", "Aborting", "command Abort"),
            fault(22.0, "robot_fault", "R1", duration_s=3.0),
            state(22.042, "R1", "Aborting", "command Abort"),
            fault(23.0, "sensor_blackout", "infeed.end", duration_s=4.0),
            state(23.1, "R1", "Aborted"),
            ev(23.5, "sensor_stale", sensor="infeed.end"),
            *boot(25.2, "R1"),
            ev(27.0, "sensor_restored", sensor="infeed.end"),
            *boot(30.2, "R2"),
        ]
    )
    out = figures(tr, 100 * S)
    got = [(f["target"], f["detected_at_s"], f["recovered_at_s"]) for f in out["faults"]]
    assert got == [("R2", 20.042, 31.0), ("R1", 22.042, 26.0), ("infeed.end", 23.5, 27.0)]
    assert out["robots"]["R1"]["down_s"] == 4.0 and out["robots"]["R2"]["down_s"] == 11.0
    # the cell is down while any of them is: 20 to 31
    assert (out["cell"]["failures"], out["cell"]["down_s"]) == (3, 11.0)
    assert out["by_fault_kind"]["robot_fault"]["downtime_s"] == 15.0


# ---------------------------------------------------------------- figures


def report_run_tracker() -> FaultTracker:
    """The report tests' scripted run (``tests.clients.runkit``) through a tracker."""
    tr = FaultTracker(("R1", "R2"))
    for e in fault_events():
        tr.feed(e)
    return tr


def test_outages_run_from_the_fault_to_execute() -> None:
    out = figures(report_run_tracker(), 100 * S)
    got = [
        (o["robot"], o["start_s"], o["end_s"], o["cause"], o["repaired"]) for o in out["outages"]
    ]
    assert got == [
        ("R2", 20.0, 31.0, "robot_fault", True),  # Aborted at 20, back in Execute at 31
        ("R1", 60.0, 70.8, "lost", True),
    ]
    cell = out["cell"]
    assert cell["failures"] == 2
    assert cell["mttr_s"] == pytest.approx((11.0 + 10.8) / 2)
    assert cell["mtbf_s"] == pytest.approx((100 - 21.8) / 2)
    assert out["robots"]["R2"]["mttr_s"] == pytest.approx(11.0)


def test_a_run_without_failures_has_the_run_as_mtbf_and_no_mttr() -> None:
    out = figures(track([]), 100 * S)
    assert (out["cell"]["failures"], out["cell"]["mtbf_s"], out["cell"]["mttr_s"]) == (
        0,
        100.0,
        None,
    )


def test_oee_factors_follow_iso_22400() -> None:
    out = figures(report_run_tracker(), 100 * S)
    r1, r2 = out["robots"]["R1"], out["robots"]["R2"]
    assert r1["time_s"]["production"] == pytest.approx(59.2 + 29.2)  # lost 60-70 s, back at 70.8
    assert r2["time_s"]["production"] == pytest.approx(19.2 + 69.0)
    for r in (r1, r2):
        assert sum(r["time_s"].values()) == pytest.approx(100.0)
    o = out["cell"]["oee"]
    assert o["availability"] == pytest.approx(0.883)
    assert (o["ideal_cycle_s"], o["stations"]) == (40.0, 1)
    assert o["performance"] == pytest.approx(40.0 * 1 / (100 * 0.883), abs=1e-4)
    assert o["quality"] == 0.5
    assert o["oee"] == pytest.approx(o["availability"] * o["performance"] * o["quality"], abs=1e-4)


def test_a_robots_performance_is_its_work_at_the_fastest_observed_pace() -> None:
    tr = track(
        [
            ev(10.0, "op_started", op="u1/place", robot="R1"),
            ev(14.0, "op_done", op="u1/place", robot="R1"),
            ev(10.0, "op_started", op="u2/place", robot="R2"),
            ev(12.0, "op_done", op="u2/place", robot="R2"),  # the fastest: 2 s
            ev(20.0, "op_started", op="u3/place", robot="R1"),
            ev(21.0, "op_failed", op="u3/place", robot="R1"),
        ]
    )
    r1 = figures(tr, 100 * S)["robots"]["R1"]
    assert r1["time_s"]["production"] == pytest.approx(99.2)
    assert r1["oee"]["performance"] == pytest.approx(2.0 / 99.2, abs=1e-4)
    assert r1["oee"]["quality"] == 0.5


def test_by_fault_kind_counts_the_cost_of_each_kind() -> None:
    out = figures(report_run_tracker(), 100 * S)
    rf = out["by_fault_kind"]["robot_fault"]
    assert (rf["count"], rf["detected"], rf["recovered"], rf["downtime_s"]) == (1, 1, 1, 11.0)
    assert rf["availability_lost"] == pytest.approx(11.0 / (100 * 2), abs=1e-4)
    perf, qual = out["cell"]["oee"]["performance"], out["cell"]["oee"]["quality"]
    assert rf["oee_lost"] == pytest.approx(rf["availability_lost"] * perf * qual, abs=1e-4)


# ---------------------------------------------------------------- restart, reproducibility


def test_the_same_events_as_json_lines_give_the_same_figures() -> None:
    events = [
        fault(20.0, "robot_fault", "R2", duration_s=10.0),
        state(20.042, "R2", "Aborting", "command Abort"),
        *boot(30.2, "R2"),
    ]
    live = track(events)
    replayed = FaultTracker(ROBOTS)
    for e in [e for r in ROBOTS for e in boot(0.0, r)] + events:
        replayed.feed(json.loads(json.dumps(e, sort_keys=True)))
    assert figures(replayed, 60 * S) == figures(live, 60 * S)


def test_a_restored_supervisor_rebuilds_its_tracker_from_the_journal(tmp_path: Path) -> None:
    h = Harness(out_dir=tmp_path)
    h.step(*(h.hb(r, PackMLState.EXECUTE) for r in ROBOTS))
    t = h.k * 1_000_000_000 // 24
    h.sup.events.write(t, "fault_injected", target="infeed.end", fault="sensor_blackout")
    h.sup.events.write(t + S // 2, "sensor_stale", sensor="infeed.end")
    h.step()  # committed to the journal with the tick
    before = figures(h.sup.faults, 10 * S)
    assert before["faults"][0]["detected_by"] == "sensor_stale"
    h.sup.close()  # as good as killed

    restored = Supervisor(h.sup.cell, out_dir=tmp_path, restore=True)
    assert figures(restored.faults, 10 * S) == before
    # and it goes on pairing after the restart
    restored.events.write(3 * S, "sensor_restored", sensor="infeed.end")
    (f,) = figures(restored.faults, 10 * S)["faults"]
    restored.close()
    assert (f["recovered_at_s"], f["recovered_by"]) == (3.0, "sensor_restored")


def test_figures_at_the_first_tick_have_nothing_to_divide_by_and_say_so() -> None:
    tr = FaultTracker(ROBOTS)
    tr.feed(fault(0.0, "robot_fault", "R1", duration_s=5.0))
    out = figures(tr, 0)
    assert out["cell"]["availability"] is None and out["cell"]["oee"]["oee"] is None
    assert out["robots"]["R1"]["oee"]["performance"] is None
    assert out["faults"][0]["detected_at_s"] is None
    json.dumps(out, allow_nan=False)  # plain JSON: no NaN or infinity in kpis.json
