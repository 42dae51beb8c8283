"""A ``CellSpec`` of the reference assembly cell, built directly (no cell-file loader).

Also small helpers to make operations and to bring an agent to Execute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from bus.cellspec import (
    CellSpec,
    ConveyorSpec,
    FeederSpec,
    FixtureSpec,
    OperationSpec,
    PartKind,
    Pose,
    RecipeSpec,
    RobotModel,
    RobotSpec,
    StationKind,
)
from bus.enums import PackMLCommand, PackMLState, Skill
from bus.messages import Command, Operation
from robots.agent import RobotAgent
from robots.fakes import FakeRun, FakeWorld

PP, FA, IN = Skill.PICK_PLACE, Skill.FASTEN, Skill.INSPECT


def assembly_cell(*, speed: float = 1.5, control_hz: int = 24) -> CellSpec:
    """The reference layout: four arms around two fixtures, trays between them."""
    robots = (
        RobotSpec("R1", RobotModel.IIWA, Pose(-0.65, 0.0, 0.0), (PP, IN), speed),
        RobotSpec("R2", RobotModel.PANDA, Pose(0.0, 0.65, 0.0), (PP, FA), speed),
        RobotSpec("R3", RobotModel.PANDA, Pose(0.0, -0.65, 0.0), (PP, FA, IN), speed),
        RobotSpec("R4", RobotModel.IIWA, Pose(0.65, 0.0, 0.0), (PP, FA, IN), speed),
    )
    parts = (
        PartKind("frame", (0.15, 0.075, 0.008), 0.05, (0.25, 0.25, 0.3, 1.0)),
        PartKind("battery", (0.07, 0.06, 0.005), 0.045, (0.1, 0.45, 0.15, 1.0)),
        PartKind("board", (0.07, 0.06, 0.003), 0.02, (0.1, 0.3, 0.7, 1.0)),
        PartKind("screen", (0.15, 0.075, 0.003), 0.03, (0.05, 0.05, 0.05, 1.0)),
    )
    conveyors = (
        ConveyorSpec("infeed", StationKind.INFEED, (-1.6, 0.55), (-0.42, 0.55), 0.15, 0.12, 0.1),
        ConveyorSpec("outfeed", StationKind.OUTFEED, (0.42, -0.55), (1.6, -0.55), 0.15, 0.12, 0.15),
    )
    feeders = (
        FeederSpec("frames", "frame", "infeed", None, 10.0, 3.0, 4),
        FeederSpec("battery_tray", "battery", "", Pose(-0.22, 0.0, 0.15), 1.0, 0.0, 1),
        FeederSpec("board_tray", "board", "", Pose(0.0, 0.0, 0.15), 1.0, 0.0, 1),
        FeederSpec("screen_tray", "screen", "", Pose(0.22, 0.0, 0.15), 1.0, 0.0, 1),
    )
    fixtures = (FixtureSpec("F1", Pose(0.0, 0.28, 0.15)), FixtureSpec("F2", Pose(0.0, -0.28, 0.15)))
    recipe = RecipeSpec(
        "phone",
        "frame",
        (
            OperationSpec("load_frame", PP, "frame", "infeed", "fixture", "", ()),
            OperationSpec(
                "place_battery",
                PP,
                "battery",
                "battery_tray",
                "unit",
                "",
                ("load_frame",),
                (-0.035, 0.0, 0.0),
            ),
            OperationSpec("fasten", FA, "", "", "", "unit", ("load_frame",)),
            OperationSpec("inspect", IN, "", "", "", "unit", ("fasten",)),
        ),
    )
    return CellSpec(
        "assembly",
        "<test>",
        240,
        control_hz,
        1.0,
        robots,
        parts,
        conveyors,
        feeders,
        fixtures,
        recipe,
    )


def op(
    op_id: str,
    skill: Skill = PP,
    *,
    part: str = "",
    kind: str = "",
    src: str = "",
    dst: str = "",
    at: str = "",
    unit: str = "frame-0001",
    onto_unit: bool = False,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Operation:
    """An operation as the supervisor would send it."""
    dx, dy, dz = offset
    return Operation(op_id, unit, op_id, skill, part, kind, src, dst, at, onto_unit, dx, dy, dz)


def to_execute(run: FakeRun) -> None:
    """Reset and Start the agent of ``run`` until it is in Execute."""
    run.send(Command("boot-reset", run.agent.name, PackMLCommand.RESET))
    assert run.until(lambda: run.agent.state is PackMLState.IDLE, max_ticks=200)
    run.send(Command("boot-start", run.agent.name, PackMLCommand.START))
    assert run.until(lambda: run.agent.state is PackMLState.EXECUTE, max_ticks=200)


MakeRun = Callable[[CellSpec, str], FakeRun]


@contextlib.contextmanager
def runs() -> Iterator[MakeRun]:
    """A factory of agents set up in fresh fake worlds (``run.agent``, ``run.world``).

    Everything it made is shut down on exit, so PyBullet clients do not pile up.
    """
    made: list[FakeRun] = []

    def make(cell: CellSpec, name: str) -> FakeRun:
        agent = RobotAgent(cell, name)
        agent.setup()
        run = FakeRun(agent, FakeWorld(cell))
        made.append(run)
        return run

    try:
        yield make
    finally:
        for run in made:
            run.agent.shutdown()
            run.world.close()


def tray_and_unit(world: FakeWorld, *, part: str = "battery-0001", kind: str = "battery") -> None:
    """A part of ``kind`` on its tray and a frame (the unit) in fixture F1."""
    trays = {"battery": (-0.22, 0.0), "board": (0.0, 0.0), "screen": (0.22, 0.0)}
    x, y = trays[kind]
    h = world.cell.part_kind(kind).size[2]
    world.add_part(part, kind, Pose(x, y, 0.15 + h / 2, 0.3))
    world.add_part("frame-0001", "frame", Pose(0.0, 0.28, 0.154, 0.1))
