"""Degrading faults in the world: a drifting joint moves the real tool and trips its drive,
a worn belt slows its parts, a worn gripper loses them; scenario files take them."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from bus.cellspec import CellSpec
from bus.enums import FaultKind, Grip
from bus.errors import ConfigError
from bus.messages import ControlRequest
from cells.faults import parse_scenario
from sim.faulting import FaultInjector
from sim.wear import TRACKING_NOISE_RAD, TRIP_RAD
from sim.world import World
from tests.sim.simkit import Driver, make_cell


@pytest.fixture(scope="module")
def still_world() -> Iterator[World]:
    """One world for the checks that change nothing in it."""
    w = World(make_cell(), seed=0)
    w.setup()
    yield w
    w.shutdown()


def run(world: World, faults: FaultInjector, ticks: int) -> list[ControlRequest]:
    """Advance ``ticks`` control ticks as the host does: physics, then the faults."""
    notes: list[ControlRequest] = []
    for _ in range(ticks):
        world.advance()
        notes += faults.after_advance()
    return notes


def test_a_drifting_joint_moves_the_tool_is_reported_and_trips_its_drive(world: World) -> None:
    faults = FaultInjector(world)
    note = faults.inject("joint_drift", "R2", 4.0, factor=2)
    assert isinstance(note, ControlRequest) and note.factor == 2.0
    still = world.tcp("R2")[0]
    readings = []
    notes: list[ControlRequest] = []
    for _ in range(60 * 24):
        world.advance()
        notes += faults.after_advance()
        readings += [t for t in world.world_sense().tracking if t.robot == "R2"]
        if notes:
            break
    arm = world.arms["R2"]
    # commanded still, yet the tool moved: the joint really is off
    assert arm.q == arm.target
    assert math.dist(world.tcp("R2")[0], still) > 0.005
    assert abs(arm.drift[1]) == pytest.approx(TRIP_RAD)
    assert [d for i, d in enumerate(arm.drift) if i != 1] == [0.0] * 6
    # the drives reported it once a second: the drifting joint grew, the others are noise
    assert len(readings) >= 2
    assert abs(readings[-1].errors[1]) > 0.5 * TRIP_RAD
    assert all(abs(e) < 6 * TRACKING_NOISE_RAD for r in readings for e in r.errors[2:])
    # and the trip is a permanent robot fault for the supervisor
    (trip,) = notes
    assert (trip.target, trip.action, trip.permanent) == ("R2", "robot_fault", True)


def test_a_drift_with_no_joint_draws_one_and_says_which(still_world: World) -> None:
    note = FaultInjector(still_world).inject("joint_drift", "R1", 100.0, factor=0)
    assert isinstance(note, ControlRequest) and 1 <= note.factor <= 7


def test_a_worn_belt_slows_gradually_and_its_parts_with_it(world: World) -> None:
    faults = FaultInjector(world)
    belt = world.conveyors["infeed"]
    nominal = belt.speed
    assert isinstance(faults.inject("belt_wear", "infeed", 2.0, factor=0.5), ControlRequest)
    run(world, faults, 24)
    assert belt.speed == pytest.approx(0.75 * nominal, rel=0.05)
    run(world, faults, 48)
    assert belt.speed == pytest.approx(0.5 * nominal)
    (frame,) = [p for p, (kind, loc) in world.parts().items() if loc == "conveyor:infeed"][:1]
    before = world.part_pose(frame)
    run(world, faults, 12)
    after = world.part_pose(frame)
    assert before is not None and after is not None
    moved = math.dist((before.x, before.y), (after.x, after.y))
    assert moved == pytest.approx(0.5 * nominal * 0.5, rel=0.15)


def test_a_worn_gripper_lets_its_part_fall(world: World) -> None:
    faults = FaultInjector(world)
    assert isinstance(faults.inject("gripper_wear", "R2", 0.001, factor=1.0), ControlRequest)
    d = Driver(world, "R2")
    try:
        run(world, faults, 6)
        pp = world.part_pose("board-0001")
        assert pp is not None
        kind = world.cell.part_kind("board")
        d.move(pp.x, pp.y, pp.z + kind.size[2] / 2 + 0.08, ticks=36)
        d.move(pp.x, pp.y, pp.z + kind.size[2] / 2, ticks=12)
        assert world.apply(d.act(d.q, Grip.GRASP))
        run(world, faults, 1)
        assert world.robot_sense("R2").holding == "board-0001"
        run(world, faults, 40)
        assert world.robot_sense("R2").holding == ""
    finally:
        d.close()


@pytest.mark.parametrize(
    ("kind", "target", "factor", "why"),
    [
        ("joint_drift", "R1", 9, "joint"),
        ("joint_drift", "R1", 1.5, "joint"),
        ("gripper_wear", "R1", 1.5, "share of carries"),
        ("belt_wear", "R1", 0.5, "no conveyor"),
        ("belt_wear", "infeed", 1.0, "share of belt speed"),
        ("cycle_creep", "R1", 1.0, "cycle creep"),
        ("cycle_creep", "R9", 2.0, "no robot"),
        ("tool_wear", "R1", 1.0, "share of torque"),
        ("tool_wear", "infeed", 0.5, "no robot"),
    ],
)
def test_bad_wear_is_refused_with_why(
    still_world: World, kind: str, target: str, factor: float, why: str
) -> None:
    answer = FaultInjector(still_world).inject(kind, target, 10.0, factor=factor)
    assert isinstance(answer, str) and why in answer


def test_a_scenario_takes_the_wear_kinds_with_their_own_keys(cell: CellSpec) -> None:
    faults = parse_scenario(
        {
            "faults": [
                {"at": 10, "target": "R1", "kind": "joint_drift", "duration": 300, "joint": 3},
                {"at": 10, "target": "R2", "kind": "gripper_wear", "duration": 100},
                {"at": 10, "target": "outfeed", "kind": "belt_wear", "duration": 100, "share": 0.3},
                {"at": 10, "target": "R3", "kind": "cycle_creep", "duration": 100, "factor": 2.5},
                {"at": 10, "target": "R4", "kind": "tool_wear", "duration": 100, "share": 0.4},
                {"at": 20, "target": "R4", "kind": "tool_wear", "duration": 100},
            ]
        },
        cell,
        source="s.toml",
    )
    by_kind = {f.kind: f for f in faults}
    assert by_kind[FaultKind.JOINT_DRIFT].amount == 3.0
    assert by_kind[FaultKind.GRIPPER_WEAR].amount == 0.5  # the default share
    assert by_kind[FaultKind.BELT_WEAR].amount == 0.3
    assert by_kind[FaultKind.CYCLE_CREEP].amount == 2.5
    assert [f.amount for f in faults if f.kind is FaultKind.TOOL_WEAR] == [0.4, 0.5]


@pytest.mark.parametrize(
    ("entry", "key", "why"),
    [
        ({"kind": "gripper_wear", "target": "R1", "duration": 9, "factor": 2}, "factor", "only"),
        ({"kind": "joint_drift", "target": "R1", "duration": 9, "joint": 8}, "joint", "1 to 7"),
        ({"kind": "belt_wear", "target": "R1", "duration": 9}, "target", "infeed"),
        ({"kind": "cycle_creep", "target": "R1"}, "duration", "needs a duration"),
        ({"kind": "tool_wear", "target": "R1", "duration": 9, "share": 1.0}, "share", "torque"),
        ({"kind": "tool_wear", "target": "R1", "duration": 9, "factor": 2}, "factor", "only"),
    ],
)
def test_a_bad_wear_entry_names_its_key(
    cell: CellSpec, entry: dict[str, object], key: str, why: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario({"faults": [{"at": 1, **entry}]}, cell, source="s.toml")
    assert f"faults[0].{key}" in str(err.value) and why in str(err.value)
