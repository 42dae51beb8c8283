"""Skills run by the agent against the scripted fake world: pick_place, fasten, inspect."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator

import pytest

from bus.cellspec import Pose
from bus.enums import ExecStep, Grip, OpStatus, PackMLCommand, PackMLState
from bus.messages import Award, Bid, CallForBids, Command, OpReport, OpStarted, PartPose
from bus.simtime import NS
from robots.fakes import FakeRun
from robots.kinematics import Kinematics
from robots.plans import APPROACH_M, CLEARANCE_M, hang, plan_pick_place
from tests.kit.cells import FA, IN, MakeRun, assembly_cell, op, runs, to_execute, tray_and_unit

S, C = PackMLState, PackMLCommand
CELL = assembly_cell()
TICK = CELL.tick_ns

BATTERY = op(
    "u1/place_battery",
    part="battery-0001",
    kind="battery",
    src="battery_tray",
    dst="F1",
    onto_unit=True,
    offset=(-0.035, 0.0, 0.0),
)


@pytest.fixture
def make_run() -> Iterator[MakeRun]:
    with runs() as make:
        yield make


def _report(run: FakeRun, *, max_ticks: int = 600) -> OpReport:
    assert run.until(lambda: bool(run.sent(OpReport)), max_ticks=max_ticks)
    (report,) = run.sent(OpReport)
    return report


def _ready(make_run: MakeRun, robot: str = "R2", **cell: float) -> FakeRun:
    run = make_run(assembly_cell(**cell) if cell else CELL, robot)  # type: ignore[arg-type]
    to_execute(run)
    tray_and_unit(run.world)
    return run


def _steps(run: FakeRun, ticks: int) -> list[ExecStep]:
    seen: list[ExecStep] = []
    for _ in range(ticks):
        run.step()
        if not seen or seen[-1] is not run.agent.packml.step:
            seen.append(run.agent.packml.step)
        if run.sent(OpReport):
            break
    return seen


# ---------------------------------------------------------------- pick and place


def test_pick_place_grasps_at_the_part_top_and_releases_over_the_unit(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    grasp, release = run.world.grips
    assert (grasp.grip, release.grip) == (Grip.GRASP, Grip.RELEASE)
    assert grasp.t_ns < release.t_ns
    # grasp at the battery's top centre: tray surface 0.15 + its height
    assert math.dist(grasp.tcp, (-0.22, 0.0, 0.155)) < 0.002
    # release so its bottom lands on the frame top at the offset turned by the frame's yaw
    yaw = 0.1
    frame_top = 0.154 + 0.004
    want = (-0.035 * math.cos(yaw), 0.28 - 0.035 * math.sin(yaw), frame_top + 0.005 + CLEARANCE_M)
    assert math.dist(release.tcp, want) < 0.002
    assert release.part == "battery-0001"
    battery = run.world.parts["battery-0001"]
    assert battery.unit == "frame-0001"
    assert battery.pose.yaw == pytest.approx(yaw, abs=math.radians(3))


def test_pick_place_tool_path_goes_above_the_part_then_above_the_destination(
    make_run: MakeRun,
) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    _report(run)
    grasp, release = run.world.grips
    path = [(t, run.world.tcp("R2", act.q)) for t, act in run.acts]
    before = [p for t, p in path if t < grasp.t_ns]
    carry = [p for t, p in path if grasp.t_ns < t < release.t_ns]
    after = [p for t, p in path if t > release.t_ns]
    # came down onto the part from above, not from the side
    assert (
        max(p[2] for p in before if math.hypot(p[0] + 0.22, p[1]) < 0.01)
        > 0.155 + APPROACH_M - 0.005
    )
    # carried high between the tray and the fixture
    far = [
        p
        for p in carry
        if math.hypot(p[0] + 0.22, p[1]) > 0.03 and math.hypot(p[0], p[1] - 0.28) > 0.06
    ]
    assert far
    assert min(p[2] for p in far) > 0.155 + APPROACH_M - 0.01
    # retreated straight up from the place point
    assert after[-1][2] == pytest.approx(release.tcp[2] + APPROACH_M, abs=0.002)
    assert math.hypot(after[-1][0] - release.tcp[0], after[-1][1] - release.tcp[1]) < 0.002


def test_pick_place_runs_in_pick_then_place(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    steps = _steps(run, 600)
    assert steps == [ExecStep.PICK, ExecStep.PLACE, ExecStep.WAITING]
    (started,) = run.sent(OpStarted)
    assert started.op_id == BATTERY.op_id


def test_joint_targets_move_smoothly(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    _report(run)
    speed = CELL.robot("R2").speed
    for (_, a), (_, b) in itertools.pairwise(run.acts):
        step = max(abs(x - y) for x, y in zip(a.q, b.q, strict=True))
        # the quintic law peaks at 1.875 x the mean speed
        assert step <= 1.9 * speed * TICK / NS


def test_pick_place_onto_a_station(make_run: MakeRun) -> None:
    run = make_run(CELL, "R4")  # R4 (iiwa at x=+0.65) loads the outfeed
    to_execute(run)
    run.world.add_part("frame-0002", "frame", Pose(0.0, -0.28, 0.154, 0.0))
    unload = op(
        "u2/unload", part="frame-0002", kind="frame", src="F2", dst="outfeed", unit="frame-0002"
    )
    run.send(Award(unload, "R4"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    outfeed = CELL.stations()["outfeed"].pose
    release = run.world.grips[-1]
    assert math.dist(release.tcp, (outfeed.x, outfeed.y, outfeed.z + 0.008 + CLEARANCE_M)) < 0.002


def test_missed_grasp_fails_the_op(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.world.never_grasp = True
    run.send(Award(BATTERY, "R2"))
    report = _report(run)
    assert report.status is OpStatus.FAILED
    assert report.detail == "grasp missed: nothing in the gripper, wanted battery-0001"
    assert [g.grip for g in run.world.grips] == [Grip.GRASP]
    assert run.agent.state is S.EXECUTE
    assert run.agent.packml.step is ExecStep.WAITING


def test_a_dropped_part_fails_the_op(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: run.world.holding["R2"] != "", max_ticks=400)
    run.run(3)
    run.world.drop("R2")
    report = _report(run)
    assert report.status is OpStatus.FAILED
    assert report.detail.startswith("dropped battery-0001")


def test_an_unseen_part_fails_the_op(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.world.hidden.add("battery-0001")
    run.send(Award(BATTERY, "R2"))
    report = _report(run, max_ticks=20)
    assert (report.status, report.detail) == (OpStatus.FAILED, "battery-0001 not seen")
    assert not run.world.grips


def test_a_part_away_from_its_station_is_not_fetched(make_run: MakeRun) -> None:
    """The part is not where the operation says: fail, never fetch it from elsewhere.

    (It may be in place already: an operation given out again after its
    robot went quiet must not move the part a second time.)
    """
    run = _ready(make_run)
    run.world.parts["battery-0001"].pose = Pose(0.9, -0.6, 0.1525, 0.0)  # fell far away
    run.send(Award(BATTERY, "R2"))
    report = _report(run, max_ticks=20)
    assert report.status is OpStatus.FAILED
    assert report.detail == "battery-0001 is not at battery_tray (1.27 m away)"
    assert not run.world.grips


def test_a_faster_robot_finishes_sooner(make_run: MakeRun) -> None:
    times = []
    for speed in (1.5, 3.0):
        run = _ready(make_run, speed=speed)
        run.send(Award(BATTERY, "R2"))
        report = _report(run)
        assert report.status is OpStatus.DONE
        times.append(report.t_ns - run.sent(OpStarted)[0].t_ns)
    assert times[1] < 0.75 * times[0]


def test_the_bid_predicts_the_finish(make_run: MakeRun) -> None:
    run = _ready(make_run)
    finish = run.agent.bid(BATTERY)
    run.send(Award(BATTERY, "R2"))
    report = _report(run)
    assert abs(report.t_ns - finish) < 0.5 * NS


# ---------------------------------------------------------------- hold


def test_hold_pauses_in_place_and_unhold_resumes(make_run: MakeRun) -> None:
    plain = _ready(make_run)
    plain.send(Award(BATTERY, "R2"))
    undisturbed = _report(plain).t_ns

    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: run.world.holding["R2"] != "", max_ticks=400)
    run.run(4)  # lifting
    run.send(Command("h1", "R2", C.HOLD))
    assert run.until(lambda: run.agent.state is S.HELD)
    frozen = run.world.q["R2"]
    hold_ticks = 48
    for _ in range(hold_ticks):
        run.step()
        assert run.world.q["R2"] == frozen
        assert run.world.holding["R2"] == "battery-0001"  # the grasp is kept
    assert not run.sent(OpReport)
    run.send(Command("u1", "R2", C.UNHOLD))
    assert run.until(lambda: run.agent.state is S.EXECUTE)
    assert run.agent.packml.step is ExecStep.PICK  # back in the skill it left
    report = _report(run)
    assert report.status is OpStatus.DONE
    late = report.t_ns - undisturbed
    held = hold_ticks * TICK
    assert held < late < held + 2 * NS  # later by about the pause and the acting states


def test_hold_keeps_the_motion_continuous(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    run.run(15)  # approaching the tray
    run.send(Command("h1", "R2", C.HOLD))
    assert run.until(lambda: run.agent.state is S.HELD)
    run.run(10)
    run.send(Command("u1", "R2", C.UNHOLD))
    assert _report(run).status is OpStatus.DONE
    speed = CELL.robot("R2").speed
    for (_, a), (_, b) in itertools.pairwise(run.acts):
        assert max(abs(x - y) for x, y in zip(a.q, b.q, strict=True)) <= 1.9 * speed * TICK / NS


def test_suspend_and_unsuspend_also_pause_and_resume(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    run.run(10)
    run.send(Command("s1", "R2", C.SUSPEND))
    assert run.until(lambda: run.agent.state is S.SUSPENDED)
    frozen = run.world.q["R2"]
    run.run(10)
    assert run.world.q["R2"] == frozen
    run.send(Command("s2", "R2", C.UNSUSPEND))
    assert _report(run).status is OpStatus.DONE


# ---------------------------------------------------------------- fasten and inspect


def test_fasten_visits_the_screws_then_fastens(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(op("u1/fasten", FA, at="F1"), "R2"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    assert run.world.fastened == ["frame-0001"]
    fasten_t = next(t for t, a in run.acts if a.fasten)
    low = [run.world.tcp("R2", a.q) for t, a in run.acts if t <= fasten_t]
    near_top = [p for p in low if p[2] < 0.158 + 0.035]
    # it went down to ~3 cm over the frame and moved about over it
    assert near_top
    xs = [p[0] for p in near_top]
    assert max(xs) - min(xs) > 0.05  # screws at 40% of the frame's half length either side
    assert run.agent.packml.step is ExecStep.WAITING


def test_inspect_reports_what_the_world_saw(make_run: MakeRun) -> None:
    run = _ready(make_run, robot="R3")
    run.world.parts["frame-0001"].pose = Pose(0.0, -0.28, 0.154, 0.0)  # in F2, R3's side
    run.world.parts["frame-0001"].members.append("battery-0001")
    run.world.parts["frame-0001"].fastened = True
    run.send(Award(op("u1/inspect", IN, at="F2"), "R3"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    assert report.inspection is not None
    assert report.inspection.unit == "frame-0001"
    assert report.inspection.kinds == ("battery",)
    assert report.inspection.fastened
    look_t = next(t for t, a in run.acts if a.inspect)
    look = run.world.tcp("R3", dict(run.acts)[look_t].q)
    assert look[2] == pytest.approx(0.158 + 0.2, abs=0.003)


def test_ops_run_one_after_the_other(make_run: MakeRun) -> None:
    run = _ready(make_run)
    fasten = op("u1/fasten", FA, at="F1")
    run.send(Award(BATTERY, "R2"))
    run.send(Award(fasten, "R2"))
    assert run.until(lambda: len(run.sent(OpReport)) == 2, max_ticks=1500)
    reports = run.sent(OpReport)
    assert [(r.op_id, r.status) for r in reports] == [
        (BATTERY.op_id, OpStatus.DONE),
        (fasten.op_id, OpStatus.DONE),
    ]
    starts = run.sent(OpStarted)
    assert starts[1].t_ns >= reports[0].t_ns


def test_fasten_refuses_a_unit_that_is_not_at_the_station(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.world.parts["frame-0001"].pose = Pose(-0.22, 0.25, 0.154, 0.0)  # knocked off the fixture
    run.send(Award(op("u1/fasten", FA, at="F1"), "R2"))
    report = _report(run, max_ticks=20)
    assert report.status is OpStatus.FAILED
    assert report.detail == "unit frame-0001 is not at F1 (0.22 m away)"
    assert not run.world.fastened


def test_reset_after_a_stop_lets_go_of_the_part_and_goes_home(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: run.world.holding["R2"] != "", max_ticks=400)
    run.send(Command("s1", "R2", C.STOP))
    assert run.until(lambda: run.agent.state is S.STOPPED)
    assert run.world.holding["R2"] == "battery-0001"  # a stop keeps the grasp
    run.send(Command("r1", "R2", C.RESET))
    assert run.until(lambda: run.agent.state is S.IDLE)
    assert run.world.holding["R2"] == ""
    assert run.world.grips[-1].grip is Grip.RELEASE
    assert run.world.q["R2"] == pytest.approx(run.agent.kin.home)


def _infeed_frame(run: FakeRun, dx: float) -> Pose:
    """A frame ``dx`` before the infeed station; returns the station's resting pose."""
    st = CELL.stations()["infeed"].pose
    rest = Pose(st.x, st.y, st.z + 0.004, 0.0)
    run.world.add_part("frame-0001", "frame", Pose(rest.x - dx, rest.y, rest.z, 0.0))
    return rest


def test_pick_waits_for_a_part_still_sliding_to_the_stop(make_run: MakeRun) -> None:
    run = make_run(CELL, "R1")
    to_execute(run)
    rest = _infeed_frame(run, 0.03)
    stops = run.t_ns + NS // 2
    run.world.slide("frame-0001", rest, start_ns=run.t_ns, end_ns=stops)
    load = op("u1/load", part="frame-0001", kind="frame", src="infeed", dst="F1")
    run.send(Award(load, "R1"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    first_move = next(t for (t, a), (_, b) in itertools.pairwise(run.acts) if a.q != b.q)
    assert first_move >= stops  # it did not set off before the part had stopped
    assert math.dist(run.world.grips[0].tcp, (rest.x, rest.y, rest.z + 0.004)) < 0.002


def test_pick_plans_again_if_the_part_moved_during_the_approach(make_run: MakeRun) -> None:
    run = make_run(CELL, "R1")
    to_execute(run)
    rest = _infeed_frame(run, 0.03)
    # still while the robot looks, pushed to the stop while it moves over it
    run.world.slide("frame-0001", rest, start_ns=run.t_ns + NS // 4, end_ns=run.t_ns + NS // 2)
    load = op("u1/load", part="frame-0001", kind="frame", src="infeed", dst="F1")
    run.send(Award(load, "R1"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    assert math.dist(run.world.grips[0].tcp, (rest.x, rest.y, rest.z + 0.004)) < 0.002


def test_the_same_script_gives_the_same_run(make_run: MakeRun) -> None:
    logs = []
    for _ in range(2):
        run = _ready(make_run)
        run.send(CallForBids(BATTERY))
        run.send(Award(BATTERY, "R2"))
        _report(run)
        logs.append((run.acts, run.log))
    assert logs[0] == logs[1]


def test_a_crashing_skill_fails_its_op_not_the_robot(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = _ready(make_run)

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("robots.plans.IKPlanner.plan", broken)
    run.send(Award(BATTERY, "R2"))
    report = _report(run, max_ticks=20)
    assert report.status is OpStatus.FAILED
    assert report.detail == "internal error: ZeroDivisionError('oops')"
    assert run.agent.state is S.EXECUTE
    assert "crashed" in caplog.text


# ---------------------------------------------------------------- recovery: a pick from where a part fell

FLOOR = Pose(0.35, 0.3, 0.0025, 0.4)
"""A battery lying on the floor where R2 reaches it (0.49 m from its base)."""


def _lying(pose: Pose, *, part: str = "battery-0001", kind: str = "battery") -> PartPose:
    q = math.sin(pose.yaw / 2), math.cos(pose.yaw / 2)
    return PartPose(part, kind, pose.x, pose.y, pose.z, 0.0, 0.0, q[0], q[1])


def test_a_recovery_picks_the_part_where_it_fell_and_puts_it_on_the_unit(
    make_run: MakeRun,
) -> None:
    run = _ready(make_run)
    run.world.parts["battery-0001"].pose = FLOOR
    run.send(Award(dataclasses.replace(BATTERY, src="", pick=_lying(FLOOR)), "R2"))
    report = _report(run)
    assert report.status is OpStatus.DONE, report.detail
    assert report.detail == (
        "battery-0001 moved from where it lay (0.350, 0.300, 0.003) to unit frame-0001 at F1"
    )
    grasp = next(g for g in run.world.grips if g.grip is Grip.GRASP)
    assert math.dist(grasp.tcp, (FLOOR.x, FLOOR.y, FLOOR.z + 0.0025)) < 0.005
    battery = run.world.parts["battery-0001"]
    assert battery.unit == "frame-0001"
    assert math.hypot(battery.pose.x + 0.035, battery.pose.y - 0.28) < 0.01


def test_a_recovery_bid_prices_the_pick_where_the_part_lies(make_run: MakeRun) -> None:
    run = _ready(make_run)
    near = dataclasses.replace(BATTERY, op_id="u1/near", src="", pick=_lying(FLOOR))
    far = dataclasses.replace(BATTERY, op_id="u1/far", src="", pick=_lying(Pose(0.9, -0.6, 0.0025)))
    run.send(CallForBids(near))
    run.send(CallForBids(far))
    run.run(2)
    bids = {b.op_id: b.finish_ns for b in run.sent(Bid)}
    assert bids["u1/near"] > run.t_ns
    assert bids["u1/far"] == -1  # R2 cannot reach it: it declines


def test_a_part_lying_askew_is_not_grasped(make_run: MakeRun) -> None:
    run = _ready(make_run)
    run.world.parts["battery-0001"].pose = FLOOR
    run.world.parts["battery-0001"].tilt = math.radians(12.0)
    run.send(Award(dataclasses.replace(BATTERY, src="", pick=_lying(FLOOR)), "R2"))
    report = _report(run, max_ticks=100)
    assert report.status is OpStatus.FAILED
    assert report.detail == "battery-0001 lies 12 degrees from flat: cannot grasp"
    assert not run.world.grips


def test_a_part_held_askew_is_let_go_higher_by_its_hang() -> None:
    spec = CELL.robot("R2")
    screen = dataclasses.replace(
        BATTERY, part="screen-0001", part_kind="screen", dx=0.0, dz=0.005, pick=None
    )
    part = Pose(0.3, 0.35, 0.0015, 0.2)
    unit = Pose(0.0, 0.28, 0.154, 0.0)
    tilt = math.radians(4.0)
    with Kinematics(spec) as kin:
        flat = plan_pick_place(kin, CELL, screen, kin.home, part, unit)
        askew = plan_pick_place(kin, CELL, screen, kin.home, part, unit, tilt=tilt)
        z_flat = kin.fk(flat.legs[4].waypoints[-1])[2]
        z_askew = kin.fk(askew.legs[4].waypoints[-1])[2]
    lift = hang((0.15, 0.075, 0.003), tilt)
    assert lift == pytest.approx(math.hypot(0.15, 0.075) / 2 * math.sin(tilt), abs=1e-4)
    assert z_askew - z_flat == pytest.approx(lift, abs=0.001)
    assert hang((0.15, 0.075, 0.003), math.radians(0.5)) == 0.0  # parts on stations: as before
