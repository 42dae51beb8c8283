"""Self-diagnosis: a real run with three wearing robots names each one and its cause, from
what the supervisor hears alone; the health model's own rules on fed inputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.enums import FaultKind, WorldEventKind
from bus.messages import JointTracking, WorldEvent
from bus.simtime import NS
from cells.calibrate import with_fidelity
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.report import write_report
from supervisor.belts import BeltTimes
from supervisor.eventlog import EventLog
from supervisor.health import Health
from supervisor.plan import Op

WEAR = (
    ScheduledFault(40.0, "R4", FaultKind.JOINT_DRIFT, 60.0, joint=3),
    ScheduledFault(60.0, "R3", FaultKind.GRIPPER_WEAR, 5.0, share=1.0),
    ScheduledFault(70.0, "R1", FaultKind.CYCLE_CREEP, 20.0, factor=3.0),
)
"""A drive that drifts (and trips), a gripper worn out fast, a robot whose motions creep to
three times as slow; each starts once its robot's baselines are learned."""


@pytest.fixture(scope="module")
def worn(cell: CellSpec, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Diagnosis only (``[cell] maintain = false``): what is seen, with nothing acted on."""
    out = tmp_path_factory.mktemp("worn")
    cell = dataclasses.replace(cell, maintain=False)
    kpis = run_cell(cell, out, RunOptions(seed=1, duration_s=180, faults=WEAR))
    return out, kpis


def log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.mark.timeout(900)
def test_each_wearing_robot_is_diagnosed_with_its_cause_and_nothing_else(
    worn: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = worn
    events = log(out)
    diagnoses = {
        (e["target"], e["component"], e["cause"]): e for e in events if e["kind"] == "diagnosis"
    }
    assert set(diagnoses) == {
        ("R4", "joint 3", "joint_drift"),
        ("R3", "gripper", "gripper_wear"),
        ("R1", "motion", "cycle_creep"),
    }
    for (robot, _, _), d in diagnoses.items():
        started = next(f.at_s for f in WEAR if f.target == robot)
        assert d["t_ns"] > started * NS, "nothing is diagnosed before its wear began"
        ev = d["evidence"]
        assert ev["statistic"] > ev["threshold"] and ev["samples"] >= 1
        assert ev["recent_mean"] > ev["baseline_mean"]
        assert d["robot"] == robot and d["recent"]
    # the joint was named before its drive tripped, which ended R4 for good
    trip = next(e for e in events if e["kind"] == "fault_injected" and e.get("permanent"))
    assert trip["target"] == "R4"
    assert diagnoses[("R4", "joint 3", "joint_drift")]["t_ns"] < trip["t_ns"]
    # acting was off: each diagnosis wanted maintenance, and no robot was taken out
    wanted = [e for e in events if e["kind"] == "maintenance_wanted"]
    assert sorted(e["robot"] for e in wanted) == ["R1", "R3", "R4"]
    assert {e["reason"] for e in wanted} == {"acting on diagnoses is off (--no-maintain)"}
    assert not [e for e in events if e["kind"] in ("maintenance_started", "robot_mode")]


@pytest.mark.timeout(900)
def test_the_kpis_list_the_diagnoses_and_count_the_wear_detected(
    worn: tuple[Path, dict[str, Any]],
) -> None:
    _, kpis = worn
    targets = kpis["health"]["targets"]
    assert [d["cause"] for d in targets["R3"]["diagnoses"]] == ["gripper_wear"]
    assert targets["R2"]["diagnoses"] == []
    assert targets["R2"]["series"]["tracking/joint 1"]["learned"] is True
    by_kind = {f["kind"]: f for f in kpis["faults"]}
    for kind in ("joint_drift", "gripper_wear", "cycle_creep"):
        assert by_kind[kind]["detected_by"] == "diagnosis"
        assert by_kind[kind]["detection_s"] > 0
    # the bottleneck from the times learned: R4 failed for good, so three robots remain
    neck = kpis["bottleneck"]
    assert neck["missing_times"] == [] and neck["binding"] in neck["resources_per_hour"]
    assert neck["bound_per_hour"] == min(neck["resources_per_hour"].values())
    assert 0 < neck["throughput_over_bound"] <= 1.0


@pytest.mark.timeout(900)
def test_the_report_shows_each_diagnosis_and_the_bottleneck(
    worn: tuple[Path, dict[str, Any]],
) -> None:
    out, kpis = worn
    page = write_report(out).read_text()
    table = page[page.index('<table id="diagnoses">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr><td>") == 3
    for cause in ("joint_drift", "gripper_wear", "cycle_creep"):
        assert cause in table
    assert '<table id="bottleneck">' in page and f"<b>{kpis['bottleneck']['binding']}</b>" in page


# ---------------------------------------------------------------- the model on fed inputs


def belt_event(t_s: float, kind: WorldEventKind, part: str, location: str) -> WorldEvent:
    return WorldEvent(round(t_s * NS), kind, part, "frame", location, "")


def ride(health: Health, part: str, start_s: float, transit_s: float) -> None:
    health.world_event(belt_event(start_s, WorldEventKind.SETTLED, part, "conveyor:outfeed"))
    health.world_event(
        belt_event(start_s + transit_s, WorldEventKind.ARRIVED, part, "conveyor:outfeed")
    )
    health.world_event(
        belt_event(start_s + transit_s + 0.5, WorldEventKind.RETIRED, part, "retired")
    )


def test_a_slowing_belt_is_diagnosed_from_its_transits(tmp_path: Path) -> None:
    events = EventLog(None)
    health = Health(["R1"], op_of=lambda op: None)
    for i in range(20):
        transit = 6.0 + 0.05 * (i % 3) + (0.4 * (i - 9) if i >= 10 else 0.0)
        ride(health, f"u{i}", 20.0 * i, transit)
        health.judge(events, round((20.0 * i + 10) * NS))
    (diag,) = [json.loads(line) for line in events.take_fresh()]
    assert (diag["kind"], diag["conveyor"], diag["cause"]) == ("diagnosis", "outfeed", "belt_wear")
    assert diag["evidence"]["baseline_mean"] == pytest.approx(6.05, abs=0.05)


def test_a_part_that_queued_behind_another_is_no_transit() -> None:
    health = Health(["R1"], op_of=lambda op: None)
    health.world_event(belt_event(0.0, WorldEventKind.SPAWNED, "a", "conveyor:infeed"))
    health.world_event(belt_event(10.0, WorldEventKind.ARRIVED, "a", "conveyor:infeed"))
    health.world_event(belt_event(12.0, WorldEventKind.SPAWNED, "b", "conveyor:infeed"))
    health.world_event(belt_event(30.0, WorldEventKind.GRASPED, "a", "gripper:R1"))
    health.world_event(belt_event(31.0, WorldEventKind.ARRIVED, "b", "conveyor:infeed"))
    series = health.report()["targets"]["infeed"]["series"]
    det = health.detectors["transits:infeed/belt"]
    assert "transits/belt" in series and len(det.baseline.samples) == 1  # a's, not b's


@pytest.mark.parametrize(("taken_s", "counted"), [(15.0, True), (30.0, False)])
def test_a_part_at_the_end_spoils_a_ride_only_if_it_stays_until_the_ride_could_reach_it(
    taken_s: float, counted: bool
) -> None:
    """b gets on at 12 s while a waits at the end; on a belt whose parts need 7.6 s to come
    up behind one at its end, a taken at 15 s was gone before b could have queued."""
    health = Health(["R1"], op_of=lambda op: None, belts={"infeed": BeltTimes(11.8, 7.6)})
    health.world_event(belt_event(0.0, WorldEventKind.SPAWNED, "a", "conveyor:infeed"))
    health.world_event(belt_event(10.0, WorldEventKind.ARRIVED, "a", "conveyor:infeed"))
    health.world_event(belt_event(12.0, WorldEventKind.SPAWNED, "b", "conveyor:infeed"))
    health.world_event(belt_event(taken_s, WorldEventKind.GRASPED, "a", "gripper:R1"))
    arrived = max(24.0, taken_s + 1.25)
    health.world_event(belt_event(arrived, WorldEventKind.ARRIVED, "b", "conveyor:infeed"))
    samples = health.detectors["transits:infeed/belt"].baseline.samples
    assert samples == ([10.0, arrived - 12.0] if counted else [10.0])


def test_a_ride_through_a_jam_is_no_transit() -> None:
    jammed: set[str] = set()
    health = Health(["R1"], op_of=lambda op: None, jammed=lambda: jammed)
    health.world_event(belt_event(0.0, WorldEventKind.SETTLED, "a", "conveyor:outfeed"))
    jammed.add("outfeed")
    health.judge(EventLog(None), 5 * NS)
    jammed.clear()
    health.world_event(belt_event(30.0, WorldEventKind.ARRIVED, "a", "conveyor:outfeed"))
    health.world_event(belt_event(31.0, WorldEventKind.RETIRED, "a", "retired"))
    ride(health, "b", 40.0, 6.0)
    assert health.detectors["transits:outfeed/belt"].baseline.samples == [6.0]  # b's only


def test_reports_from_no_drive_are_refused_and_counted() -> None:
    health = Health(["R1"], op_of=lambda op: None)
    health.tracking(
        [
            JointTracking("R9", (0.0,)),
            JointTracking("R1", (float("nan"),)),
            JointTracking("R1", (0.0,) * 8),
            JointTracking("R1", (5.0,)),
            JointTracking("R1", (0.001,) * 7),
        ],
        NS,
    )
    assert health.refused == 4
    assert sorted(health.detectors) == [f"tracking:R1/joint {j}" for j in range(1, 8)]


def test_a_restored_model_diagnoses_as_the_one_that_ran_on() -> None:
    def feed(h: Health, log: EventLog, seconds: range) -> None:
        for s in seconds:
            drift = 0.0 if s < 40 else 3e-4 * (s - 40)
            h.tracking([JointTracking("R1", (1e-4 * ((s * 7) % 5 - 2), drift))], s * NS)
            h.judge(log, s * NS)

    whole, whole_log = Health(["R1"], op_of=lambda op: None), EventLog(None)
    feed(whole, whole_log, range(1, 80))
    half, half_log = Health(["R1"], op_of=lambda op: None), EventLog(None)
    feed(half, half_log, range(1, 45))
    again = Health(["R1"], op_of=lambda op: None)
    again.restore(json.loads(json.dumps(half.snapshot())))
    feed(again, half_log, range(45, 80))
    expected = whole_log.take_fresh()
    assert half_log.take_fresh() == expected
    assert [json.loads(line)["component"] for line in expected] == ["joint 2"]
    again.reset("R1")
    assert again.diagnosed == {} and not again.detectors["tracking:R1/joint 2"].baseline.ready


def test_a_robot_that_wins_nothing_is_still_seen_slowing_in_its_bids(cell: CellSpec) -> None:
    """Its plans slow as it does; its measured times never come, its bids do."""
    spec = cell.recipe.ops[1]  # place_battery
    op = Op(unit="frame-0001", spec=spec, src="battery_tray", dst="unit", at="F1")
    health = Health(["R1", "R2"], op_of=lambda _id: op)
    log = EventLog(None)
    for i in range(30):
        t = (10 + 5 * i) * NS
        slow = 1.0 + (0.1 * (i - 15) if i > 15 else 0.0) + 0.02 * (i % 3)
        bids = [["R2", t + 2 * NS], ["R1", t + round(2.2 * slow * NS)]]
        health.feed({"kind": "op_awarded", "t_ns": t, "op": op.op_id, "robot": "R2", "bids": bids})
        health.judge(log, t)
    (diag,) = [json.loads(line) for line in log.take_fresh()]
    assert (diag["robot"], diag["component"], diag["cause"]) == ("R1", "motion", "cycle_creep")
    assert diag["quantity"].startswith("planned") and diag["t_ns"] > 85 * NS


@pytest.mark.timeout(300)
def test_a_slowing_infeed_whose_frames_queue_is_diagnosed_from_its_queue_advances(
    tmp_path: Path,
) -> None:
    """Frames wait at the infeed's end nearly all the time, so its rides are no transits; the
    time the next frame takes to ride up when one is taken is. The same seed without the wear
    diagnoses nothing (events fidelity, the real supervisor and world)."""
    root = Path(__file__).resolve().parents[2]
    source = root / "cells" / "assembly.toml"
    cell = with_fidelity(load_cell(source), source, "events")
    wear = (ScheduledFault(120.0, "infeed", FaultKind.BELT_WEAR, 300.0, share=0.5),)
    found: dict[str, list[dict[str, Any]]] = {}
    for name, faults in (("worn", wear), ("sound", ())):
        run_cell(cell, tmp_path / name, RunOptions(seed=1, duration_s=420, faults=faults))
        found[name] = [e for e in log(tmp_path / name) if e["kind"] == "diagnosis"]
    assert found["sound"] == []
    (diag,) = found["worn"]
    assert (diag["conveyor"], diag["cause"]) == ("infeed", "belt_wear")
    assert diag["quantity"] == "queue advance time (s)"
    assert 120 * NS < diag["t_ns"] < 420 * NS
    assert diag["evidence"]["baseline_mean"] == pytest.approx(1.25, abs=0.2)
