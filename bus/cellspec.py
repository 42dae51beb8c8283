"""The typed description of a cell that every package builds from.

``cells/`` reads and validates a TOML cell file into a ``CellSpec``; ``sim/``,
``robots/`` and ``supervisor/`` only ever see the ``CellSpec``. It lives in
``bus/`` because it is shared vocabulary, like the messages.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from bus.enums import Skill


class RobotModel(enum.StrEnum):
    """Arm models the world can build (URDFs from pybullet_data)."""

    IIWA = "iiwa"
    """KUKA LBR iiwa 7 R800, with a 0.10 m tool flange."""
    PANDA = "panda"
    """Franka Emika Panda with its hand."""


MODEL_URDF: dict[RobotModel, str] = {
    RobotModel.IIWA: "kuka_iiwa/model.urdf",
    RobotModel.PANDA: "franka_panda/panda.urdf",
}
"""URDF of each model, relative to ``pybullet_data.getDataPath()``."""

MODEL_ARM_JOINTS: dict[RobotModel, tuple[int, ...]] = {
    RobotModel.IIWA: (0, 1, 2, 3, 4, 5, 6),
    RobotModel.PANDA: (0, 1, 2, 3, 4, 5, 6),
}
"""Joint indices of the arm (what ``RobotAct.q`` and ``RobotSense.q`` list, in order)."""

MODEL_FINGER_JOINTS: dict[RobotModel, tuple[int, ...]] = {
    RobotModel.IIWA: (),
    RobotModel.PANDA: (9, 10),
}
"""Joint indices of the fingers (driven open or closed by the world, for looks)."""

MODEL_TOOL: dict[RobotModel, tuple[int, float]] = {
    RobotModel.IIWA: (6, 0.10),
    RobotModel.PANDA: (11, 0.0),
}
"""The tool centre point: (link index, offset in metres along that link's z axis).
The world grasps at this point and the agent's IK aims it; both read this table."""

MODEL_HOME: dict[RobotModel, tuple[float, ...]] = {
    RobotModel.IIWA: (0.0, 0.4, 0.0, -1.3, 0.0, 1.4, 0.0),
    RobotModel.PANDA: (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785),
}
"""Joint positions of the home pose: tool above the base, pointing down."""

MODEL_REACH: dict[RobotModel, tuple[float, float]] = {
    RobotModel.IIWA: (0.40, 0.74),
    RobotModel.PANDA: (0.30, 0.76),
}
"""Horizontal distance from the base (min, max) at which the tool, pointing down,
reaches a work height between 0 and 0.4 m to within 5 mm. Measured with each
model's IK (see ``robots.kinematics``)."""


GRASP_TILT_MAX = math.radians(5.0)
"""A part whose top face is turned further than this from facing up is not picked up. The
tool comes straight down, so such a part (leaning on something, on its edge, upside
down) would not be held square; 5 degrees is more than a part lying on any face of the
cell leans, and a frame (the longest part) held at 5 degrees hangs 7 mm lower at one
corner, which a planner can still allow for when putting it down."""


FIXTURE_FOOTPRINT = (0.16, 0.10)
"""A fixture block's footprint (metres); it stands from the floor up to its pose's z."""
TRAY_MARGIN = 0.015
"""How much a tray is wider than its part on every side (metres)."""
BELT_THICKNESS = 0.02
"""Thickness of a belt slab below its top face (metres)."""
FIXTURE_RGBA = (0.5, 0.5, 0.55, 1.0)
TRAY_RGBA = (0.6, 0.55, 0.4, 1.0)
BELT_RGBA = (0.2, 0.2, 0.2, 1.0)
"""Colours of fixtures, trays and belts: what the world draws and what a bag's scene shows."""


class StationKind(enum.StrEnum):
    """Where along the flow a station sits."""

    INFEED = "infeed"
    """The stop at the end of an infeed conveyor: parts are picked here."""
    OUTFEED = "outfeed"
    """The start of an outfeed conveyor: units are placed here and ship at its end."""
    TRAY = "tray"
    """A feeder's tray: one part waits here at a time."""
    FIXTURE = "fixture"
    """A fixture that holds a unit while it is assembled."""


@dataclasses.dataclass(frozen=True, slots=True)
class Pose:
    """A position in metres and a heading (yaw, radians) in the cell frame."""

    x: float
    y: float
    z: float
    yaw: float = 0.0

    def distance_xy(self, other: Pose) -> float:
        """Horizontal distance to ``other``."""
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclasses.dataclass(frozen=True, slots=True)
class RobotSpec:
    """One robot: its arm model, where it stands and what it can do."""

    name: str
    model: RobotModel
    base: Pose
    capabilities: tuple[Skill, ...]
    speed: float = 1.0
    """Joint speed of planned motions in rad/s: a move takes its largest joint
    displacement divided by this (the smooth time law peaks near 1.9 times it)."""

    def reaches(self, pose: Pose) -> bool:
        """Whether the tool can reach ``pose`` pointing down (a geometric check)."""
        lo, hi = MODEL_REACH[self.model]
        return lo <= self.base.distance_xy(pose) <= hi


@dataclasses.dataclass(frozen=True, slots=True)
class PartKind:
    """A kind of part: a box of ``size`` (x, y, z) metres and ``mass`` kg."""

    name: str
    size: tuple[float, float, float]
    mass: float
    color: tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True, slots=True)
class ConveyorSpec:
    """A belt from ``start`` to ``end`` (x, y) with its top at ``height``.

    An infeed conveyor's station is its end (a stop holds parts there); an
    outfeed conveyor's station is its start, and parts reaching its end ship.
    """

    name: str
    role: StationKind
    start: tuple[float, float]
    end: tuple[float, float]
    height: float
    width: float
    speed: float

    @property
    def yaw(self) -> float:
        """Heading of the belt's travel."""
        return math.atan2(self.end[1] - self.start[1], self.end[0] - self.start[0])

    @property
    def length(self) -> float:
        """Length of the belt in metres."""
        return math.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1])


@dataclasses.dataclass(frozen=True, slots=True)
class FeederSpec:
    """A source of parts: onto a conveyor's start, or onto a tray at ``pose``.

    A conveyor feeder makes a part every ``interval`` +/- ``jitter`` seconds
    (seeded) while the belt's start is clear and fewer than ``limit`` of its
    parts are on the belt; a tray feeder makes one ``interval`` seconds after
    its tray is emptied.
    """

    name: str
    part: str
    conveyor: str
    pose: Pose | None
    interval: float
    jitter: float
    limit: int


@dataclasses.dataclass(frozen=True, slots=True)
class FixtureSpec:
    """A fixture; ``pose`` is where the base part of a unit sits (its top face)."""

    name: str
    pose: Pose


@dataclasses.dataclass(frozen=True, slots=True)
class OperationSpec:
    """One step of a recipe.

    For ``pick_place``, ``src`` and ``dst`` are station names, or ``unit`` for
    the fixture that holds the unit, or ``fixture`` for any free fixture. For
    ``fasten`` and ``inspect``, ``at`` is ``unit``. ``part`` names the part kind
    moved (the recipe's base part kind moves the whole unit). ``offset`` is
    where the part goes on the unit, relative to the top centre of the unit's
    base part in its own frame (metres): the bottom face of the placed part
    lands there.
    """

    name: str
    skill: Skill
    part: str
    src: str
    dst: str
    at: str
    after: tuple[str, ...]
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True, slots=True)
class RecipeSpec:
    """How to make one product: a graph of operations around a base part."""

    product: str
    base: str
    ops: tuple[OperationSpec, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Station:
    """A place where a part is picked or placed."""

    name: str
    kind: StationKind
    pose: Pose


@dataclasses.dataclass(frozen=True, slots=True)
class CellSpec:
    """A whole cell, validated; every package builds from this."""

    name: str
    source: str
    physics_hz: int
    control_hz: int
    heartbeat_s: float
    robots: tuple[RobotSpec, ...]
    parts: tuple[PartKind, ...]
    conveyors: tuple[ConveyorSpec, ...]
    feeders: tuple[FeederSpec, ...]
    fixtures: tuple[FixtureSpec, ...]
    recipe: RecipeSpec

    @property
    def steps_per_tick(self) -> int:
        """Physics steps per control tick."""
        return self.physics_hz // self.control_hz

    @property
    def tick_ns(self) -> int:
        """Length of a control tick in nanoseconds of sim time."""
        return 1_000_000_000 // self.control_hz

    def robot(self, name: str) -> RobotSpec:
        """The robot called ``name``."""
        for r in self.robots:
            if r.name == name:
                return r
        raise KeyError(name)

    def part_kind(self, name: str) -> PartKind:
        """The part kind called ``name``."""
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(name)

    def conveyor(self, name: str) -> ConveyorSpec:
        """The conveyor called ``name``."""
        for c in self.conveyors:
            if c.name == name:
                return c
        raise KeyError(name)

    def stations(self) -> dict[str, Station]:
        """Every station by name: conveyor ends, trays and fixtures."""
        out: dict[str, Station] = {}
        for c in self.conveyors:
            x, y = c.end if c.role is StationKind.INFEED else c.start
            # the pick/place point sits a part's half-length in from the belt's end
            inset = 0.1
            dx, dy = math.cos(c.yaw) * inset, math.sin(c.yaw) * inset
            if c.role is StationKind.INFEED:
                x, y = x - dx, y - dy
            else:
                x, y = x + dx, y + dy
            out[c.name] = Station(c.name, c.role, Pose(x, y, c.height, c.yaw))
        for f in self.feeders:
            if f.pose is not None:
                out[f.name] = Station(f.name, StationKind.TRAY, f.pose)
        for fx in self.fixtures:
            out[fx.name] = Station(fx.name, StationKind.FIXTURE, fx.pose)
        return out

    def feeder_for(self, station: str) -> FeederSpec | None:
        """The tray feeder whose tray is ``station``, if any."""
        for f in self.feeders:
            if f.name == station and f.pose is not None:
                return f
        return None
