"""The world against real physics: belts, grasps, units, sensors, retire, determinism."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pybullet as p
import pytest

from bus.cellspec import MODEL_HOME, Pose
from bus.enums import Grip, WorldEventKind
from bus.messages import RobotAct, WorldAct, WorldEvent, WorldSense
from sim.world import World
from tests.sim.simkit import Driver, make_cell

TICKS_PER_S = 24


@pytest.fixture
def r2(world: World) -> Iterator[Driver]:
    d = Driver(world, "R2")
    yield d
    d.close()


_LOGS: weakref.WeakKeyDictionary[World, list[WorldEvent]] = weakref.WeakKeyDictionary()


def sense(world: World) -> WorldSense:
    """``world_sense()``, keeping its events in the world's log (it hands each out once)."""
    ws = world.world_sense()
    _LOGS.setdefault(world, []).extend(ws.events)
    return ws


def events(world: World, kind: WorldEventKind | None = None) -> list[WorldEvent]:
    """Every event so far (of ``kind``)."""
    sense(world)
    return [e for e in _LOGS[world] if kind is None or e.kind is kind]


def sensors(world: World) -> dict[str, str]:
    return {s.sensor: s.part for s in sense(world).sensors}


def xyz(world: World, pid: str) -> tuple[float, float, float]:
    pp = world.part_pose(pid)
    assert pp is not None, pid
    return (pp.x, pp.y, pp.z)


def top(world: World, pid: str) -> tuple[float, float, float]:
    x, y, z = xyz(world, pid)
    kind = world.cell.part_kind(world.parts()[pid][0])
    return (x, y, z + kind.size[2] / 2)


def pick(d: Driver, pid: str) -> None:
    """Bring the tool down onto ``pid``'s top centre and grasp it."""
    x, y, z = top(d.world, pid)
    d.move(x, y, z + 0.08, ticks=36)
    d.move(x, y, z, ticks=12)
    d.grip(Grip.GRASP)


# ---------------------------------------------------------------- conveyors


def test_part_rides_the_infeed_and_queues_at_the_stop(world: World) -> None:
    spawned = [e for e in events(world, WorldEventKind.SPAWNED) if e.location == "conveyor:infeed"]
    assert [e.t_ns for e in spawned] == [0]
    pid = spawned[0].part
    xs = []
    for _ in range(14):
        for _ in range(TICKS_PER_S):
            world.advance()
        xs.append(xyz(world, pid)[0])
    # rides at belt speed (0.1 m/s) while free...
    assert xs[3] - xs[2] == pytest.approx(0.1, abs=0.005)
    assert all(b >= a - 1e-4 for a, b in itertools.pairwise(xs))
    # ...and stops, queued at the stop, with its centre on the infeed station
    assert xs[-1] == pytest.approx(xs[-2], abs=1e-3)
    station = world.cell.stations()["infeed"].pose
    x, y, z = xyz(world, pid)
    assert x == pytest.approx(station.x, abs=0.005)
    assert y == pytest.approx(0.55, abs=0.01)
    assert z == pytest.approx(0.15 + 0.004, abs=0.002)
    assert sensors(world)["infeed.end"] == pid
    arrived = [e for e in events(world, WorldEventKind.ARRIVED) if e.part == pid]
    assert [e.location for e in arrived] == ["conveyor:infeed"]
    # it arrived after travelling ~1 m at 0.1 m/s
    assert 9e9 < arrived[0].t_ns < 11e9


def test_feeder_waits_for_room_and_stops_at_its_limit() -> None:
    fast = dataclasses.replace(make_cell().feeders[0], interval=0.5, jitter=0.1)
    cell = make_cell()
    w = World(dataclasses.replace(cell, feeders=(fast, *cell.feeders[1:])), seed=0)
    w.setup()
    try:
        for _ in range(14 * TICKS_PER_S):
            w.advance()
        frames = sorted(pid for pid, (kind, _) in w.parts().items() if kind == "frame")
        assert frames == ["frame-0001", "frame-0002", "frame-0003", "frame-0004"]  # the limit
        xs = [xyz(w, f)[0] for f in frames]
        assert xs == sorted(xs, reverse=True)  # first made, first in the queue
        gaps = [a - b for a, b in itertools.pairwise(xs)]
        # each waited for the belt's start to clear; queued, they touch end to end
        assert all(0.15 - 0.003 < g < 0.15 + 0.03 for g in gaps), gaps
        assert sensors(w)["infeed.end"] == "frame-0001"
    finally:
        w.shutdown()


def test_stopped_conveyor_holds_its_parts(world: World) -> None:
    world.stop_conveyor("infeed", True)
    x0 = xyz(world, "frame-0001")[0]
    for _ in range(2 * TICKS_PER_S):
        world.advance()
    assert xyz(world, "frame-0001")[0] == pytest.approx(x0, abs=1e-3)
    world.stop_conveyor("infeed", False)
    for _ in range(TICKS_PER_S):
        world.advance()
    assert xyz(world, "frame-0001")[0] == pytest.approx(x0 + 0.1, abs=0.01)


def test_outfeed_carries_a_unit_to_its_end(world: World) -> None:
    station = world.cell.stations()["outfeed"].pose
    pid = world.place("frame", Pose(station.x, station.y, station.z))
    assert world.parts()[pid] == ("frame", "conveyor:outfeed")
    for _ in range(9 * TICKS_PER_S):
        world.advance()
    assert sensors(world)["outfeed.end"] == pid
    assert xyz(world, pid)[0] == pytest.approx(1.6 - 0.075, abs=0.005)
    assert any(e.part == pid for e in events(world, WorldEventKind.ARRIVED))


# ---------------------------------------------------------------- grasp


def test_grasp_carry_and_release_into_a_fixture(world: World, r2: Driver) -> None:
    r2.hold(6)  # let the tray part settle
    pid = sensors(world)["board_tray"]
    assert pid == "board-0001"
    pick(r2, pid)
    assert world.robot_sense("R2").holding == pid
    (grasped,) = events(world, WorldEventKind.GRASPED)
    assert (grasped.part, grasped.location, grasped.other) == (pid, "gripper:R2", "R2")
    assert world.parts()[pid] == ("board", "gripper:R2")

    # the part follows the tool, keeping its offset
    tcp0, part0 = world.tcp("R2")[0], xyz(world, pid)
    offset0 = [a - b for a, b in zip(tcp0, part0, strict=True)]
    r2.move(0.05, 0.2, 0.3, ticks=30)
    tcp1, part1 = world.tcp("R2")[0], xyz(world, pid)
    assert part1[2] > part0[2] + 0.12
    offset1 = [a - b for a, b in zip(tcp1, part1, strict=True)]
    assert math.dist(offset0, offset1) < 0.002

    # released 5 cm above F1 it falls under gravity and settles in the fixture
    r2.move(0.0, 0.28, 0.2, ticks=24)
    z_before = xyz(world, pid)[2]
    r2.grip(Grip.RELEASE)
    assert world.robot_sense("R2").holding == ""
    zs = []
    for _ in range(12):
        world.advance()
        zs.append(xyz(world, pid)[2])
    assert zs[0] < z_before - 0.005  # falling
    assert zs[-1] == pytest.approx(0.15 + 0.0015, abs=0.001)  # resting on the fixture top
    settled = events(world, WorldEventKind.SETTLED)
    assert [(e.part, e.location) for e in settled] == [(pid, "fixture:F1")]
    assert world.parts()[pid] == ("board", "fixture:F1")
    assert sensors(world)["F1"] == pid


def test_grasp_needs_the_tool_at_the_part(world: World, r2: Driver) -> None:
    r2.hold(6)
    x, y, z = top(world, "board-0001")
    r2.move(x, y, z + 0.04, ticks=36)  # 4 cm above: out of the fingers' reach
    r2.grip(Grip.GRASP)
    assert world.robot_sense("R2").holding == ""
    assert world.counters["grasp_missed"] == 1
    assert events(world, WorldEventKind.GRASPED) == []


def test_release_on_the_floor_and_tray_refills(world: World, r2: Driver) -> None:
    r2.hold(6)
    pick(r2, "board-0001")
    x, y, z = xyz(world, "board-0001")
    r2.move(x, y, z + 0.1, ticks=6)
    t_up = world.t_ns
    # the tray is empty since the board left it; a new one comes 1 s later
    r2.hold(30)
    spawned = [e for e in events(world, WorldEventKind.SPAWNED) if e.part == "board-0002"]
    assert [e.location for e in spawned] == ["feeder:board_tray"]
    tick = world.cell.tick_ns
    assert t_up + 1e9 - 6 * tick <= spawned[0].t_ns <= t_up + 1e9 + tick
    assert sensors(world)["board_tray"] == "board-0002"
    r2.move(0.3, 0.4, 0.2, ticks=24)
    r2.grip(Grip.RELEASE)
    r2.hold(12)
    assert world.parts()["board-0001"] == ("board", "floor")
    assert xyz(world, "board-0001")[2] == pytest.approx(0.0015, abs=0.001)


def test_drop_hook_lets_the_part_fall(world: World, r2: Driver) -> None:
    r2.hold(6)
    pick(r2, "board-0001")
    r2.move(0.1, 0.3, 0.3, ticks=24)
    world.drop("R2")
    r2.hold(12)
    assert world.robot_sense("R2").holding == ""
    assert world.parts()["board-0001"] == ("board", "floor")


def settled(world: World, pid: str) -> WorldEvent:
    """The last event saying ``pid`` came to rest."""
    rest = (WorldEventKind.SETTLED, WorldEventKind.ATTACHED)
    return [e for e in events(world) if e.part == pid and e.kind in rest][-1]


def tilt_deg(ev: WorldEvent) -> float:
    assert ev.pose is not None
    qx, qy = ev.pose.qx, ev.pose.qy
    return math.degrees(math.acos(max(-1.0, min(1.0, 1 - 2 * (qx * qx + qy * qy)))))


def test_a_dropped_part_is_reported_where_it_came_to_rest(world: World, r2: Driver) -> None:
    r2.hold(6)
    pick(r2, "board-0001")
    r2.move(0.1, 0.3, 0.3, ticks=24)
    world.drop("R2")
    r2.hold(12)
    ev = settled(world, "board-0001")
    assert (ev.kind, ev.location) == (WorldEventKind.SETTLED, "floor")
    assert ev.pose is not None and ev.pose.part == "board-0001"
    # the pose in the event is where physics put it: on the floor, flat, alone, in the open
    assert (ev.pose.x, ev.pose.y, ev.pose.z) == pytest.approx(xyz(world, "board-0001"), abs=1e-3)
    assert ev.pose.z == pytest.approx(0.0015, abs=0.001)
    tilt = tilt_deg(ev)  # flat on one face or the other (a 0.3 m fall may turn it over)
    assert min(tilt, 180 - tilt) < 1.0
    assert ev.touching == () and ev.blocked is False


def test_a_part_resting_on_another_says_which(world: World, r2: Driver) -> None:
    screen = world.place("screen", Pose(0.25, 0.38, 0.0))  # on the floor
    r2.hold(6)
    pick(r2, "board-0001")
    x, y, z = top(world, screen)
    r2.move(x, y, z + 0.01, ticks=36)
    world.drop("R2")
    r2.hold(12)
    ev = settled(world, "board-0001")
    assert ev.location == "floor"
    assert ev.touching == (screen,)
    assert not ev.blocked


def test_a_part_under_a_belt_is_blocked() -> None:
    w = World(make_cell(), seed=0)
    w.setup()
    r1 = Driver(w, "R1")
    try:
        r1.hold(6)
        pick(r1, "board-0001")
        r1.move(-0.05, 0.1, 0.25, ticks=24)
        r1.move(-0.45, 0.35, 0.03, ticks=36)  # low, beside the infeed belt ...
        r1.move(-0.5, 0.55, 0.03, ticks=24)  # ... and in under its end
        w.drop("R1")
        r1.hold(12)
        ev = settled(w, "board-0001")
        assert ev.location == "floor"
        assert ev.pose is not None and ev.pose.z < 0.01
        assert ev.blocked is True
    finally:
        r1.close()
        w.shutdown()


@pytest.mark.parametrize(("x", "y", "blocked"), [(0.1, 0.1, True), (0.2, 0.15, False)])
def test_a_part_tight_beside_a_tray_is_blocked(
    world: World, r2: Driver, x: float, y: float, blocked: bool
) -> None:
    r2.hold(6)
    pick(r2, "board-0001")
    r2.move(0.0, 0.2, 0.25, ticks=24)
    r2.move(x, y, 0.05, ticks=24)
    world.drop("R2")
    r2.hold(12)
    ev = settled(world, "board-0001")
    assert ev.location == "floor" and ev.touching == ()
    assert ev.pose is not None and ev.pose.z < 0.01
    assert (ev.pose.x, ev.pose.y) == pytest.approx((x, y), abs=0.01)
    # the screen tray (x >= 0.13, y <= 0.0525) rises 0.15 m: within 3 cm of the board's
    # footprint at (0.1, 0.1), so no gripper comes straight down to it; at (0.2, 0.15) one can
    assert ev.blocked is blocked


# ---------------------------------------------------------------- units


def build_unit(world: World, r2: Driver) -> tuple[str, str]:
    """A frame in F1 with a battery released onto it by R2."""
    frame = world.place("frame", Pose(0.0, 0.28, 0.15))
    r2.hold(6)
    pick(r2, "battery-0001")
    r2.move(-0.035, 0.28, 0.158 + 0.005 + 0.06, ticks=36)
    r2.move(-0.035, 0.28, 0.158 + 0.005 + 0.01, ticks=12)
    r2.grip(Grip.RELEASE)
    r2.hold(8)
    return frame, "battery-0001"


def test_component_released_on_a_frame_is_attached(world: World, r2: Driver) -> None:
    frame, battery = build_unit(world, r2)
    attached = events(world, WorldEventKind.ATTACHED)
    assert [(e.part, e.location, e.other) for e in attached] == [(battery, f"unit:{frame}", frame)]
    assert world.parts()[battery] == ("battery", f"unit:{frame}")
    assert world.parts()[frame] == ("frame", "fixture:F1")
    assert sensors(world)["F1"] == frame


def test_a_unit_moves_as_one_when_its_frame_is_carried(world: World, r2: Driver) -> None:
    frame, battery = build_unit(world, r2)
    rel0 = [a - b for a, b in zip(xyz(world, battery), xyz(world, frame), strict=True)]
    # the tool on the battery's top still grasps the unit's base, not the battery
    x, y, z = top(world, battery)
    r2.move(x, y, z + 0.05, ticks=24)
    r2.move(x, y, z, ticks=12)
    r2.grip(Grip.GRASP)
    assert world.robot_sense("R2").holding == frame
    r2.move(0.1, 0.35, 0.35, ticks=36)
    assert xyz(world, frame)[2] > 0.3
    rel1 = [a - b for a, b in zip(xyz(world, battery), xyz(world, frame), strict=True)]
    assert math.dist(rel0, rel1) < 0.001
    assert world.parts()[battery] == ("battery", f"unit:{frame}")
    assert sensors(world)["F1"] == ""


def test_inspect_and_fasten_a_unit(world: World, r2: Driver) -> None:
    frame, _ = build_unit(world, r2)
    r2.move(0.0, 0.28, 0.25, ticks=24)
    world.apply(r2.act(r2.q, inspect=frame))
    world.advance()
    insp = world.robot_sense("R2").inspection
    assert insp is not None
    assert (insp.unit, insp.kinds, insp.fastened) == (frame, ("battery",), False)
    assert world.robot_sense("R2").inspection is None  # one answer per request

    world.apply(r2.act(r2.q, fasten=frame))  # 9 cm above the frame: in reach
    world.advance()
    (fastened,) = events(world, WorldEventKind.FASTENED)
    assert (fastened.part, fastened.location, fastened.other) == (frame, "fixture:F1", "R2")
    world.apply(r2.act(r2.q, inspect=frame))
    world.advance()
    insp = world.robot_sense("R2").inspection
    assert insp is not None and insp.fastened

    r2.move(0.2, 0.6, 0.4, ticks=24)  # too far for the camera
    world.apply(r2.act(r2.q, inspect=frame, fasten=frame))
    world.advance()
    insp = world.robot_sense("R2").inspection
    assert insp is not None and insp.kinds == ()
    assert world.counters["fasten_missed"] == 1


def test_observe_answers_part_poses_once(world: World, r2: Driver) -> None:
    world.apply(r2.act(r2.q, observe=("frame-0001", "nope")))
    world.advance()
    (seen,) = world.robot_sense("R2").seen
    assert (seen.part, seen.kind) == ("frame-0001", "frame")
    assert (seen.x, seen.y, seen.z) == xyz(world, "frame-0001")
    assert world.robot_sense("R2").seen == ()


def test_retire_removes_a_unit_and_its_members(world: World, r2: Driver) -> None:
    frame, battery = build_unit(world, r2)
    bodies = p.getNumBodies(physicsClientId=world.client)
    world.apply_world(WorldAct(retire=(frame, "ghost")))
    retired = events(world, WorldEventKind.RETIRED)
    assert sorted((e.part, e.location) for e in retired) == [
        (battery, "retired"),
        (frame, "retired"),
    ]
    assert frame not in world.parts() and battery not in world.parts()
    assert world.part_pose(frame) is None
    assert p.getNumBodies(physicsClientId=world.client) == bodies - 2
    assert world.counters["retire_unknown"] == 1
    assert sensors(world)["F1"] == ""
    r2.hold(4)  # physics goes on without them
    assert sensors(world)["F1"] == ""


def test_retire_a_held_part_empties_the_gripper(world: World, r2: Driver) -> None:
    r2.hold(6)
    pick(r2, "board-0001")
    world.apply_world(WorldAct(retire=("board-0001",)))
    r2.hold(2)
    assert world.robot_sense("R2").holding == ""


# ---------------------------------------------------------------- robustness


def test_malformed_joint_targets_are_refused_and_counted(world: World) -> None:
    home = MODEL_HOME[world.cell.robot("R1").model]
    bad = [home[:6], (*home[:6], math.nan), (*home[:6], math.inf), ()]
    for q in bad:
        act = RobotAct(robot="R1", q=q, grip=Grip.NONE, observe=(), fasten="", inspect="")
        assert world.apply(act) is False
    unknown = RobotAct(robot="R9", q=home, grip=Grip.NONE, observe=(), fasten="", inspect="")
    assert world.apply(unknown) is False
    world.advance()
    assert world.counters["refused_q"] == 4
    assert world.counters["unknown_robot"] == 1
    assert world.robot_sense("R1").q == home
    assert all(math.isfinite(v) for v in world.tcp("R1")[0])


def test_joint_targets_are_clamped_to_limits(world: World) -> None:
    q = (10.0, -10.0, 0.0, -1.3, 0.0, 1.4, 0.0)
    act = RobotAct(robot="R1", q=q, grip=Grip.NONE, observe=(), fasten="", inspect="")
    assert world.apply(act)
    world.advance()
    got = world.robot_sense("R1").q
    assert got[0] == pytest.approx(2.96705972839)
    assert got[1] == pytest.approx(-2.09439510239)
    states = p.getJointStates(world.arms["R1"].body, [0, 1], physicsClientId=world.client)
    assert [s[0] for s in states] == pytest.approx(list(got[:2]))


def test_arm_reaches_its_target_exactly_at_the_tick_end(world: World, r2: Driver) -> None:
    q = r2.ik(0.1, 0.3, 0.25)
    world.apply(r2.act(q))
    world.advance()
    assert world.robot_sense("R2").q == q
    assert math.dist(world.tcp("R2")[0], (0.1, 0.3, 0.25)) < 0.003


# ---------------------------------------------------------------- determinism


def run(seed: int, ticks: int) -> dict[str, tuple[float, ...]]:
    w = World(make_cell(), seed=seed)
    w.setup()
    d = Driver(w, "R2")
    try:
        d.hold(6)
        pick(d, "board-0001")
        d.move(0.0, 0.28, 0.2, ticks=24)
        d.grip(Grip.RELEASE)
        d.hold(ticks)
        out = {}
        for pid in w.parts():
            pp = w.part_pose(pid)
            assert pp is not None
            out[pid] = (pp.x, pp.y, pp.z, pp.qx, pp.qy, pp.qz, pp.qw)
        return out
    finally:
        d.close()
        w.shutdown()


def test_same_seed_same_poses_other_seed_differs() -> None:
    a, b, c = run(7, 150), run(7, 150), run(8, 150)
    assert a == b
    assert a.keys() == c.keys()
    assert a != c


def test_queue_moves_up_when_its_head_is_taken() -> None:
    fast = dataclasses.replace(make_cell().feeders[0], interval=0.5, jitter=0.1)
    w = World(make_cell(feeders=(fast,)), seed=0)
    w.setup()
    try:
        for _ in range(14 * TICKS_PER_S):
            w.advance()
        head, second = xyz(w, "frame-0001"), xyz(w, "frame-0002")
        # zero-pressure accumulation: the belt stopped with the second close behind the head
        assert w.conveyors["infeed"].accumulated
        assert head[0] - second[0] == pytest.approx(0.15, abs=0.025)
        w.apply_world(WorldAct(retire=("frame-0001",)))
        for _ in range(3 * TICKS_PER_S):
            w.advance()
        assert xyz(w, "frame-0002")[0] == pytest.approx(head[0], abs=0.005)
        assert sensors(w)["infeed.end"] == "frame-0002"
        arrived = [e.part for e in events(w, WorldEventKind.ARRIVED)]
        assert arrived == ["frame-0001", "frame-0002"]
    finally:
        w.shutdown()


def test_placing_a_component_on_a_unit_joins_it() -> None:
    w = World(make_cell(feeders=()), seed=0)
    w.setup()
    try:
        frame = w.place("frame", Pose(0.0, -0.28, 0.15))
        screen = w.place("screen", Pose(0.0, -0.28, 0.158))
        assert w.parts()[frame] == ("frame", "fixture:F2")
        assert w.parts()[screen] == ("screen", f"unit:{frame}")
        kinds = [(e.kind, e.part) for e in events(w)]
        assert kinds == [
            (WorldEventKind.SPAWNED, frame),
            (WorldEventKind.SPAWNED, screen),
            (WorldEventKind.ATTACHED, screen),
        ]
        # a unit base is never joined to another unit
        other = w.place("frame", Pose(0.0, -0.28, 0.161))
        assert w.parts()[other] == ("frame", "floor")
    finally:
        w.shutdown()


def test_the_assembly_cell_file_builds() -> None:
    cells = pytest.importorskip("cells")
    path = Path(__file__).resolve().parents[2] / "cells" / "assembly.toml"
    cell = cells.load_cell(path)
    w = World(cell, seed=1)
    w.setup()
    try:
        for _ in range(TICKS_PER_S):
            w.advance()
        assert sorted(w.arms) == sorted(r.name for r in cell.robots)
        readings = sensors(w)
        trays = [f.name for f in cell.feeders if f.pose is not None]
        assert all(readings[t] for t in trays)  # every tray holds its first part
        names = {f"{c.name}.end" for c in cell.conveyors} | {f.name for f in cell.fixtures}
        assert names | set(trays) == set(readings)
        for name, arm in w.arms.items():
            assert w.robot_sense(name).q == MODEL_HOME[arm.spec.model]
    finally:
        w.shutdown()


CONSTRAINT_CHURN = """
from bus.cellspec import Pose
from bus.enums import Grip
from bus.messages import WorldAct
from sim.world import World
from tests.sim.simkit import Driver, make_cell

w = World(make_cell(), seed=0)
w.setup()
d = Driver(w, "R2")
d.hold(6)
b = w.part_pose("board-0001")
d.move(b.x, b.y, b.z + 0.0015, ticks=24)
d.grip(Grip.GRASP)  # a grasp constraint...
frame = w.place("frame", Pose(0.0, 0.28, 0.15))
w.place("battery", Pose(-0.035, 0.28, 0.158))  # ...then a unit joint
d.grip(Grip.RELEASE)  # the grasp goes first
d.hold(2)
w.apply_world(WorldAct(retire=(frame,)))  # then the joint
d.hold(2)
assert w.robot_sense("R2").holding == ""
print("ok")
"""


def test_grasps_and_unit_joints_come_and_go_in_any_order() -> None:
    # PyBullet 3.2.x frees the wrong constraint here if a unit joint is rigid-to-rigid
    # (see PartFactory); that is a segfault, so it runs in a process of its own
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CONSTRAINT_CHURN],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_parts_made_after_a_unit_is_retired_collide_as_usual() -> None:
    # PyBullet hands the ids of removed bodies to new ones: nothing of a retired
    # unit (such as a collision filter between its members) may stick to them
    w = World(make_cell(feeders=()), seed=0)
    w.setup()
    try:
        frame = w.place("frame", Pose(0.0, 0.28, 0.15))
        w.place("battery", Pose(-0.035, 0.28, 0.158))
        w.apply_world(WorldAct(retire=(frame,)))
        w.place("frame", Pose(0.0, 0.28, 0.15))
        battery = w.place("battery", Pose(-0.035, 0.28, 0.158 + 0.03))  # falls onto it
        for _ in range(TICKS_PER_S):
            w.advance()
        assert xyz(w, battery)[2] == pytest.approx(0.158 + 0.0025, abs=0.001)
    finally:
        w.shutdown()


def test_a_units_parts_touch_everything_but_each_other() -> None:
    w = World(make_cell(feeders=()), seed=0)
    w.setup()
    try:
        station = w.cell.stations()["outfeed"].pose
        frame = w.place("frame", Pose(station.x, station.y, station.z))
        battery = w.place("battery", Pose(station.x - 0.035, station.y, station.z + 0.008))
        assert w.parts()[battery] == ("battery", f"unit:{frame}")
        # a loose screen dropped on the riding unit lands on the battery, not through it
        screen = w.place("screen", Pose(station.x, station.y, station.z + 0.008 + 0.03))
        x0 = xyz(w, frame)[0]
        for _ in range(TICKS_PER_S):
            w.advance()
        assert xyz(w, frame)[0] == pytest.approx(x0 + 0.15, abs=0.01)  # the unit rides the belt
        assert xyz(w, screen)[2] == pytest.approx(station.z + 0.008 + 0.005 + 0.0015, abs=0.001)
        cid = w.client
        body = {pid: w._parts[pid].body for pid in (frame, battery, screen)}
        assert p.getContactPoints(body[frame], body[battery], physicsClientId=cid) == ()
        assert p.getContactPoints(body[screen], body[battery], physicsClientId=cid) != ()
    finally:
        w.shutdown()


def test_a_long_queue_waits_without_pushing() -> None:
    """Frames queued behind a head nobody takes for a minute stay flat on the belt."""
    fast = dataclasses.replace(make_cell().feeders[0], interval=2.0, jitter=0.1)
    w = World(make_cell(feeders=(fast,)), seed=0)
    w.setup()
    try:
        for _ in range(60 * TICKS_PER_S):
            w.advance()
        frames = {p: loc for p, (kind, loc) in w.parts().items() if kind == "frame"}
        assert len(frames) >= 3
        assert set(frames.values()) == {"conveyor:infeed"}
        heights = [xyz(w, p)[2] for p in frames]
        assert max(heights) - min(heights) < 0.001  # none rode up onto another
    finally:
        w.shutdown()
