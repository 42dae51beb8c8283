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
STAND_RGBA = (0.35, 0.45, 0.6, 1.0)
"""A test stand: a fixture's block in blue-grey."""
MOUNT_RGBA = (0.3, 0.3, 0.3, 1.0)
"""A mount point of a commissioning bay: a dark plate."""
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
    STAND = "stand"
    """A test stand: a finished unit is put on it and tested there."""
    MOUNT = "mount"
    """A mount point of a commissioning bay: a tested arm is put on it and becomes a robot."""


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
    urdf: str = ""
    """The URDF it is loaded from (relative to pybullet_data); "" for its model's own."""

    @property
    def urdf_path(self) -> str:
        """The URDF to load, relative to pybullet_data."""
        return self.urdf or MODEL_URDF[self.model]

    def reaches(self, pose: Pose) -> bool:
        """Whether the tool can reach ``pose`` pointing down (a geometric check)."""
        lo, hi = MODEL_REACH[self.model]
        return lo <= self.base.distance_xy(pose) <= hi


@dataclasses.dataclass(frozen=True, slots=True)
class PartKind:
    """A kind of part: a box (or an upright cylinder) of ``size`` (x, y, z) metres and ``mass`` kg.

    A cylinder's diameter is ``size[0]`` (``size[1]`` must equal it) and its
    height ``size[2]``; everything that reasons about footprints treats it as
    the box around it, which is what a gripper closing from two sides feels.
    """

    name: str
    size: tuple[float, float, float]
    mass: float
    color: tuple[float, float, float, float]
    shape: str = "box"
    """``box`` or ``cylinder``."""


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
    start: float = 0.0
    """Sim seconds before its first part (0: at once)."""


@dataclasses.dataclass(frozen=True, slots=True)
class FixtureSpec:
    """A fixture; ``pose`` is where the base part of a unit sits (its top face)."""

    name: str
    pose: Pose


@dataclasses.dataclass(frozen=True, slots=True)
class MountSpec:
    """A mount point of a commissioning bay: where a built arm becomes a robot (``pose`` is
    the top of its plate), and the tray whose payload its commissioning check lifts."""

    name: str
    pose: Pose
    payload: str = ""
    """A tray feeder's name; "" for the robot recipe's own ``payload``."""


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
    stack: bool = False
    """The part goes on top of the parts stacked before it (``offset`` was computed from them
    when the cell file was read)."""
    grip_dz: float = 0.0
    """For a move of the whole unit: how far above the base part's top face the tool takes
    hold (the top of what is stacked on it), so a tall unit is gripped at its top."""
    tolerance: float = 0.0
    """For a part placed on the unit: if > 0, an inspection measures it, and a part whose
    centre lies further than this (metres, in the base's plane) from its place is a
    placement defect (``supervisor.inspection``)."""
    torque: float = 0.0
    """For ``fasten``: the torque the screwdriver is set to (N m); a sound tool drives every
    screw to it, with a few per cent of scatter; a worn one (``tool_wear``) short of it."""
    min_torque: float = 0.0
    """For ``fasten``: if > 0, an inspection reads every screw's torque, and a screw below
    this (N m) is a fastening defect."""
    screws: int = 0
    """For ``fasten`` with a ``torque``: how many screws it drives."""


class Output(enum.StrEnum):
    """What becomes of a finished unit."""

    SHIP = "ship"
    """It leaves on an outfeed conveyor and ships at its end."""
    COMMISSION = "commission"
    """It is an arm: put on a free mount point, it becomes a working robot of the cell."""


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltRobotSpec:
    """What an arm built by a recipe becomes once commissioned."""

    model: RobotModel
    urdf: str
    """The URDF the commissioned robot is loaded from (relative to pybullet_data)."""
    capabilities: tuple[Skill, ...]
    speed: float
    prefix: str
    """Built robots are named ``prefix`` + their number in order of commissioning (B1, B2...)."""
    payload: str
    """The tray feeder whose part the commissioning check picks up and lifts."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecipeSpec:
    """How to make one product: a graph of operations around a base part."""

    product: str
    base: str
    ops: tuple[OperationSpec, ...]
    output: Output = Output.SHIP
    fixtures: tuple[str, ...] = ()
    """The fixtures that build this product (empty: every fixture)."""
    tolerance: float = 0.0
    """If > 0, an inspection also measures every joined part against the pose the recipe puts
    it at, and a unit with one off by more than this (metres) fails."""
    robot: BuiltRobotSpec | None = None
    """For ``output = commission``: the robot the arm becomes."""
    overflow: str = ""
    """For ``output = commission``: an outfeed conveyor that takes the arms started while
    every mount point is taken (they ship there); "" to start none then."""
    false_accept: float = 0.0
    """The share of defective units the inspection passes (its miss rate)."""
    false_reject: float = 0.0
    """The share of good units the inspection fails (its false alarm rate)."""
    rework: bool = False
    """Whether a unit whose only defects are fastenings is fastened and inspected again
    (the screws driven anew) rather than scrapped."""

    @property
    def checks(self) -> bool:
        """Whether an inspection measures anything (a tolerance or a torque to check)."""
        return self.tolerance > 0 or any(o.tolerance > 0 or o.min_torque > 0 for o in self.ops)

    def op(self, name: str) -> OperationSpec:
        """The step called ``name``."""
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)


@dataclasses.dataclass(frozen=True, slots=True)
class Station:
    """A place where a part is picked or placed."""

    name: str
    kind: StationKind
    pose: Pose


def start_key(step: str, station: str) -> str:
    """Where an operation leaves the arm, finer than its station (``step@station``): the arm
    leaves a fixture in another pose after fastening than after placing a part there."""
    return f"{step}@{station}"


@dataclasses.dataclass(frozen=True, slots=True)
class OpTiming:
    """How long one (robot, recipe step, stations) took in physics (``lightsout calibrate``).

    ``src`` is where a move picks, or the station a fasten or inspect works at
    (``recovery:WHERE`` for a pick off the floor), ``dst`` where a move puts ("" else).
    ``samples`` are whole-operation durations in sim seconds, sorted; ``grasp_s`` and
    ``release_s`` the mean times from the start to the grasp and to the release (moves).
    ``speed`` is the robot's speed (rad/s) when it was measured.
    """

    robot: str
    op: str
    skill: str
    src: str
    dst: str
    samples: tuple[float, ...]
    grasp_s: float = 0.0
    release_s: float = 0.0
    speed: float = 1.0
    by_start: tuple[tuple[str, tuple[float, ...]], ...] = ()
    """The samples again, by where the arm started (the station its last operation ended
    at, or ``home``): an operation's time depends on it."""
    bid_s: float = 0.0
    """What the robot promised in its bids when idle, on average (0: not measured): a
    physics bid is the plan's length, not the time the operation then takes."""
    bid_by_start: tuple[tuple[str, tuple[float, ...]], ...] = ()
    """The promises by where the arm started (sorted samples)."""

    @property
    def mean_s(self) -> float:
        """The mean duration."""
        return sum(self.samples) / len(self.samples)

    def promise(self, start: str, draw: float, *, step: str = "") -> float:
        """What a bid promises from ``start``: one of the physics bids from there (``draw`` in
        [0, 1) picks it: in physics the promise varies with where the parts lie), or their
        mean from anywhere, else the operations' mean duration from there. ``step`` is the
        finer start (``step@station``, what left the arm there), used when it was measured."""
        bids = dict(self.bid_by_start)
        xs = bids.get(step, ()) if step else ()
        xs = xs or bids.get(start, ())
        if xs:
            return xs[min(len(xs) - 1, int(draw * len(xs)))]
        if self.bid_s > 0:
            return self.bid_s
        xs = self.from_start(start)
        return sum(xs) / len(xs)

    def from_start(self, start: str, least: int = 3, *, step: str = "") -> tuple[float, ...]:
        """The samples of operations that started at ``step`` (the finer start), else at
        ``start``, if there are ``least`` of them; else all."""
        starts = dict(self.by_start)
        for key in (step, start):
            got = starts.get(key, ()) if key else ()
            if len(got) >= least:
                return got
        return self.samples


@dataclasses.dataclass(frozen=True, slots=True)
class Calibration:
    """What the events world and the agents need of a calibration file (``docs/calibration.md``):
    every operation's timing and where dropped parts land (share per place, per recipe step
    and for all, ``""``)."""

    timings: tuple[OpTiming, ...]
    landed: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    fates: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    """What became of dropped parts (``recovered``, ``scrapped``, ...), as ``landed``."""
    source: str = ""
    """The calibration file."""

    def landing(self, op: str) -> tuple[tuple[str, float], ...]:
        """Where a part dropped during step ``op`` lands: (place, share), the step's own shares
        if it has any, else the cell's."""
        table = dict(self.landed)
        return table.get(op) or table.get("", ())

    def fate(self, op: str) -> tuple[tuple[str, float], ...]:
        """What became of parts dropped during step ``op`` (the cell's if it has none)."""
        table = dict(self.fates)
        return table.get(op) or table.get("", ())


MAX_SPEED_SCALE = 2.0
"""The most a robot's motion speed may be scaled up by self-optimization (``[optimize.speed]``)."""
MIN_SPEED_SCALE = 0.1
"""The least it may be scaled down to."""


@dataclasses.dataclass(frozen=True, slots=True)
class OptimizeSpec:
    """Self-optimization (``[optimize]``, ``docs/autonomy.md``): the learned operation times,
    the ``learned`` policy's use of them, and the tuning of each robot's speed scale."""

    enabled: bool = True
    """Off (``enabled = false``, ``--no-optimize``): nothing learned is acted on."""
    alpha: float = 0.3
    """Weight of the newest operation time in its exponentially weighted mean, in (0, 1]."""
    min_samples: int = 2
    """Operations behind a learned time before the ``learned`` policy uses it."""
    speed: tuple[tuple[str, float, float], ...] = ()
    """(robot, least, most) speed scale of each robot tuned; a robot not named is not tuned."""
    drop_window: int = 20
    """The last carries of a robot its drop share is judged over."""
    drops_high: float = 0.1
    """A drop share at or above this over the window lowers the robot's speed scale."""
    clean_carries: int = 30
    """Carries in a row without a drop, since the last change, before the scale is raised."""
    speed_step: float = 0.1
    """How much one change moves the speed scale."""

    def bounds(self, robot: str) -> tuple[float, float] | None:
        """``robot``'s (least, most) speed scale, or None if it is not tuned."""
        for name, lo, hi in self.speed:
            if name == robot:
                return lo, hi
        return None


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
    """The first (often the only) recipe."""
    others: tuple[RecipeSpec, ...] = ()
    """Further recipes of a cell that makes more than one product (``recipes``)."""
    stands: tuple[FixtureSpec, ...] = ()
    """Test stands (a unit is put on one to be tested)."""
    mounts: tuple[MountSpec, ...] = ()
    """Mount points of the commissioning bay (a tested arm becomes a robot on one)."""
    policy: str = "contract_net"
    """How the supervisor allocates work: ``contract_net`` or ``fcfs`` (``[cell] policy``)."""
    sync: str = "event"
    """How the clock runs (``[cell] sync``, ``--sync``): ``event`` opens a tick only for the
    participants that must act then; ``tick`` opens every tick for everyone (the fixed-rate
    reference)."""
    max_step_s: float = 0.5
    """Under the event clock, the longest a participant goes without a tick, in sim seconds
    (``[cell] max_step_s``): the bound on how late a watchdog or a live request is seen."""
    fidelity: str = "physics"
    """The world model (``--fidelity``): ``physics`` (PyBullet) or ``events`` (a discrete-event
    model run from ``calibration``, ``sim.events``)."""
    calibration: Calibration | None = None
    """At events fidelity: the operation times and drop outcomes measured in physics."""
    maintenance_s: float = 120.0
    """How long a robot taken out for a diagnosed wear stays in mode Maintenance, in sim
    seconds (``[cell] maintenance_s``), before it returns to Production restored."""
    maintain: bool = True
    """Whether the supervisor acts on a diagnosis (``[cell] maintain``, ``--no-maintain``):
    off, diagnoses are only logged (``maintenance_wanted``)."""
    optimize: OptimizeSpec = OptimizeSpec()
    """Self-optimization and its limits (``[optimize]``)."""

    @property
    def recipes(self) -> tuple[RecipeSpec, ...]:
        """Every recipe, the first one first."""
        return (self.recipe, *self.others)

    def recipe_for(self, base: str) -> RecipeSpec:
        """The recipe whose units are built on part kind ``base``."""
        for r in self.recipes:
            if r.base == base:
                return r
        raise KeyError(base)

    @property
    def base_kinds(self) -> frozenset[str]:
        """The part kinds units are built on."""
        return frozenset(r.base for r in self.recipes)

    def fixtures_for(self, recipe: RecipeSpec) -> tuple[str, ...]:
        """The fixtures that build ``recipe``'s product."""
        return recipe.fixtures or tuple(f.name for f in self.fixtures)

    def builder(self) -> RecipeSpec | None:
        """The recipe whose output is commissioned as robots, if any."""
        for r in self.recipes:
            if r.output is Output.COMMISSION:
                return r
        return None

    def built_names(self) -> tuple[str, ...]:
        """The names robots built in this cell will have, in the order they are commissioned
        (one per mount point: ``B1``, ``B2``...), so scenarios can name them in advance."""
        recipe = self.builder()
        if recipe is None or recipe.robot is None:
            return ()
        taken = {r.name for r in self.robots}
        out: list[str] = []
        n = 0
        while len(out) < len(self.mounts):
            n += 1
            if f"{recipe.robot.prefix}{n}" not in taken:
                out.append(f"{recipe.robot.prefix}{n}")
        return tuple(out)

    def payload_for(self, mount: str) -> str:
        """The tray whose payload the check of a robot built on ``mount`` lifts."""
        recipe = self.builder()
        default = recipe.robot.payload if recipe is not None and recipe.robot else ""
        for m in self.mounts:
            if m.name == mount:
                return m.payload or default
        raise KeyError(mount)

    def built_robot(self, name: str, mount: str) -> RobotSpec:
        """The robot an arm of the builder recipe becomes at mount point ``mount``.

        Everything but the name and the mount comes from the recipe, so any
        process can rebuild the spec of a commissioned robot from the cell
        file, its name and its mount alone.
        """
        recipe = self.builder()
        if recipe is None or recipe.robot is None:
            raise KeyError(f"{self.name} builds no robots")
        for m in self.mounts:
            if m.name == mount:
                r = recipe.robot
                return RobotSpec(name, r.model, m.pose, r.capabilities, r.speed)
        raise KeyError(mount)

    @property
    def steps_per_tick(self) -> int:
        """Physics steps per control tick."""
        return self.physics_hz // self.control_hz

    @property
    def tick_ns(self) -> int:
        """Length of a control tick in nanoseconds of sim time."""
        return 1_000_000_000 // self.control_hz

    def tick_at(self, tick: int) -> int:
        """The sim time of control tick ``tick``, counted from the tick number so it never
        drifts by rounding (1e9 / 24 is not whole): the world, the agents and the
        supervisor all place ticks with this."""
        return tick * 1_000_000_000 // self.control_hz

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
        for st in self.stands:
            out[st.name] = Station(st.name, StationKind.STAND, st.pose)
        for m in self.mounts:
            out[m.name] = Station(m.name, StationKind.MOUNT, m.pose)
        return out

    def feeder_for(self, station: str) -> FeederSpec | None:
        """The tray feeder whose tray is ``station``, if any."""
        for f in self.feeders:
            if f.name == station and f.pose is not None:
                return f
        return None
