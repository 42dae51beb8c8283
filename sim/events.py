"""The events world (``--fidelity events``): the cell as a discrete-event model, no physics.

The same sim server, clock, cell bus, supervisor and agents run over it; only
the world differs. Where the PyBullet world (``sim.world``) integrates bodies,
this one keeps each part's *place* and a pose derived from it:

* a part on a belt has a position along it and travels at the belt's speed,
  queueing behind the part ahead and at the stop (a jam or a worn belt
  changes the speed, ``sim.wear``); the end sensor sees the part at the stop;
* a part on a fixture, stand, mount or tray sits at that station's pose; a
  part on a unit sits at its recipe offset on the base, exactly (so no
  placement is ever out of its tolerance here: a drifting joint misplaces
  parts only in physics); screws are driven as in physics, to the recipe's
  torque with the clutch's scatter, short of it by a worn screwdriver's loss
  (``tool_wear``), and the inspection draws its chance of error as there;
* an arm has no pose at all: an agent at events fidelity times its motions
  from the calibration (``robots.timed``) and says with each grasp which part
  it closes on and with each release where it puts it (``RobotAct.aim``);
* a part let go without an aim (a gripper drop, a worn gripper, a robot
  aborted while holding) lands where the calibration's drop shares say:
  back at its source, or on the floor beside it, lying flat or, as often as
  physics made drops unrecoverable, upside down (the supervisor scraps it).

Events, sensors and the ledger's locations are the physics world's, so the
supervisor cannot tell the two apart except by timing. ``EventWorld`` is a
``World`` (the sim server, host and fault injector take either) whose every
method that touched PyBullet is replaced here.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.etree import ElementTree

from bus.cellspec import (
    MODEL_ARM_JOINTS,
    MODEL_FINGER_JOINTS,
    MODEL_HOME,
    MODEL_TOOL,
    CellSpec,
    ConveyorSpec,
    FeederSpec,
    PartKind,
    Pose,
    RobotSpec,
    StationKind,
)
from bus.enums import Grip, WorldEventKind
from bus.errors import ConfigError
from bus.messages import MemberPose, PartPose, RobotAct
from sim.arms import Arm
from sim.conveyors import END_SENSOR_RANGE, QUEUE_GAP, STATION_INSET, Conveyor
from sim.feeders import SPAWN_CLEARANCE, SPAWN_DROP, FeederState
from sim.parts import Part, Placed, Quat, Vec3, yaw_quat
from sim.world import SETTLE_TICKS, World

log = logging.getLogger(__name__)

FLOOR_OFFSET_M = 0.1
"""A part dropped on the floor lands this far from where it was picked, towards the robot."""
NEVER_NS = 1 << 62
"""A sim time no run reaches (no world event is due)."""
UPSIDE_DOWN: Quat = (1.0, 0.0, 0.0, 0.0)
"""Half a turn about x: the orientation of a part that landed on its face."""

_JOINT_INFO: dict[str, tuple[tuple[tuple[float, float], ...], tuple[str, ...], str]] = {}
"""Per URDF: joint limits, joint names and the root link's name, read once."""


def _joint_info(spec: RobotSpec) -> tuple[tuple[tuple[float, float], ...], tuple[str, ...], str]:
    """The arm's joint limits and names from its URDF, read once per model.

    Read from the file's XML, not by loading it in PyBullet: loading the model reads its
    meshes, which took over half a second of every events run (a tenth of a short one), and
    an arm at events fidelity has no body. The joints are indexed as PyBullet indexes them,
    depth first from the root link with the children in the file's order, and a joint with
    no limit gets PyBullet's (0, -1) for a fixed joint, (0, 0) for another
    (``tests/sim/test_events_world.py`` checks both models against PyBullet)."""
    known = _JOINT_INFO.get(spec.urdf_path)
    if known is None:
        import pybullet_data

        path = Path(spec.urdf_path)
        if not path.exists():  # as PyBullet looks: where we are, then in its data
            path = Path(pybullet_data.getDataPath()) / path
        joints = urdf_joints(path)
        infos = [joints[j] for j in MODEL_ARM_JOINTS[spec.model]]
        limits = tuple(lim for _name, lim in infos)
        names = tuple(name for name, _lim in infos)
        known = _JOINT_INFO[spec.urdf_path] = (limits, names, urdf_root(path))
    return known


def urdf_joints(path: Path) -> list[tuple[str, tuple[float, float]]]:
    """Every joint of a URDF as PyBullet indexes them: (name, (lower, upper))."""
    robot = ElementTree.parse(path).getroot()
    children: dict[str, list[ElementTree.Element]] = {}
    for joint in robot.findall("joint"):
        parent = joint.find("parent")
        children.setdefault(parent.get("link", "") if parent is not None else "", []).append(joint)
    out: list[tuple[str, tuple[float, float]]] = []
    stack = list(reversed(children.get(_root_link(robot, path), [])))
    while stack:
        joint = stack.pop()
        limit = joint.find("limit")
        if joint.get("type") == "fixed":
            lim = (0.0, -1.0)
        elif limit is None:
            lim = (0.0, 0.0)
        else:
            lim = (float(limit.get("lower", "0")), float(limit.get("upper", "0")))
        out.append((joint.get("name", ""), lim))
        child = joint.find("child")
        below = children.get(child.get("link", "") if child is not None else "", [])
        stack.extend(reversed(below))
    return out


def urdf_root(path: Path) -> str:
    """The root link of a URDF: the one no joint has for a child."""
    return _root_link(ElementTree.parse(path).getroot(), path)


def _root_link(robot: ElementTree.Element, path: Path) -> str:
    kids = {c.get("link") for c in robot.iter("child")}
    roots = [link.get("name", "") for link in robot.findall("link") if link.get("name") not in kids]
    if len(roots) != 1:
        raise ValueError(f"{path}: {len(roots)} root links, not one")
    return roots[0]


class Hand(Arm):
    """An arm with no body: its joints are whatever its agent last sent, its tool is where it
    last grasped or released (``at``), for telemetry."""

    def __init__(self, spec: RobotSpec) -> None:  # no Arm.__init__: there is no body to load
        self.client = -1
        self.spec = spec
        self.name = spec.name
        self.body = -1
        self.arm_joints = MODEL_ARM_JOINTS[spec.model]
        self.finger_joints = MODEL_FINGER_JOINTS[spec.model]
        self.joints = list(self.arm_joints + self.finger_joints)
        self.tool_link, self.tool_offset = MODEL_TOOL[spec.model]
        limits, names, root = _joint_info(spec)
        self.limits = list(limits)
        self.joint_names = names
        self.link_names = (root,)
        self._links = []
        self.q = MODEL_HOME[spec.model]
        self.target = self.q
        self.closed = False
        self.grasp = -1
        self.holding = ""
        self.drift = [0.0] * len(self.arm_joints)
        self._plan = []
        b = spec.base
        self.at: Vec3 = (b.x, b.y, b.z + 0.5)
        """Where the tool last worked (for telemetry; no motion is simulated)."""
        self.source = ""
        """The ledger location the held part was taken from (where a dropped part falls)."""
        self.op_id = ""

    def tcp(self) -> tuple[Vec3, Quat]:
        """Where the tool last worked, pointing down."""
        return self.at, UPSIDE_DOWN

    def link_poses(self) -> list[tuple[Vec3, Quat]]:
        """The base only: an events world has no link frames."""
        b = self.spec.base
        qa, qb, qc, qd = yaw_quat(b.yaw)
        return [((b.x, b.y, b.z), (qa, qb, qc, qd))]

    def tool_com(self) -> tuple[Vec3, Quat]:
        """The tool's frame (there is no link)."""
        return self.tcp()


class Belt(Conveyor):
    """A belt with no body: parts on it have a position along it (``along``) and move at its
    speed, queueing at the stop and behind each other. The geometry (``local``, ``point``,
    ``on_belt``) is the physics belt's."""

    def __init__(self, spec: ConveyorSpec, *, fed_length: float = 0.0) -> None:  # no bodies
        self.client = -1
        self.spec = spec
        self.name = spec.name
        self.yaw = spec.yaw
        self.length = spec.length
        self.stopped = False
        self.accumulated = False
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        self.dir = (c, s)
        if spec.role is StationKind.INFEED and fed_length > 0:
            self.stop_along = min(self.length, self.length - STATION_INSET + fed_length / 2)
        else:
            self.stop_along = self.length
        self._vel = [c * spec.speed, s * spec.speed, 0.0]
        self._zero = [0.0, 0.0, 0.0]
        self.speed = spec.speed
        self.along: dict[str, float] = {}
        """Parts on the belt: id to the distance of their centre from the belt's start."""

    def hold(self) -> None:
        """Nothing to hold in place."""

    def move(self, dt: float, half: Mapping[str, float]) -> bool:
        """Carry every part ``dt`` seconds on, the head up to the stop and each one up to the
        part ahead; True if any moved. ``half`` is each part's half length along the belt."""
        if self.stopped or self.accumulated or not self.along:
            return False
        step = self.speed * dt
        limit = self.stop_along
        moved = False
        for pid in sorted(self.along, key=lambda k: (-self.along[k], k)):
            a, h = self.along[pid], half[pid]
            new = max(a, min(a + step, limit - h))
            if new != a:
                self.along[pid] = new
                moved = True
            limit = min(limit, self.along[pid] - h)
        return moved

    def head(self, half: Mapping[str, float]) -> str:
        """The part the end sensor sees: the one nearest the stop within its range."""
        best, best_gap = "", END_SENSOR_RANGE
        for pid in sorted(self.along):
            gap = self.stop_along - (self.along[pid] + half[pid])
            if gap <= best_gap:
                best, best_gap = pid, gap
        return best

    def queue(self, head: str, half: Mapping[str, float]) -> None:
        """An infeed halts while a part waits close behind the head (zero-pressure
        accumulation, as the physics belt)."""
        if self.spec.role is not StationKind.INFEED or not head:
            self.accumulated = False
            return
        rear = self.along[head] - half[head]
        self.accumulated = any(
            rear - (a + half[pid]) <= QUEUE_GAP for pid, a in self.along.items() if pid != head
        )


class EventWorld(World):
    """A cell as places and durations: ``EventWorld(cell, seed=...)``, used as a ``World``."""

    def __init__(self, cell: CellSpec, *, seed: int = 0) -> None:
        if cell.mounts:
            raise ConfigError(
                cell.source,
                "mounts",
                "a cell that builds robots has no events fidelity yet (commissioning needs "
                "physics); use --fidelity physics",
            )
        if cell.calibration is None:
            raise ConfigError(cell.source, "fidelity", "events fidelity needs a calibration")
        super().__init__(cell, seed=seed)
        self.calibration = cell.calibration
        self._poses: dict[str, tuple[Vec3, Quat]] = {}
        """Every live part's centre and orientation (a part on a belt: kept with ``along``)."""
        self._ids: dict[str, int] = {}
        self._due: dict[str, tuple[int, str, str]] = {}
        """Released parts landing: id to (sim time, robot, aim)."""
        self._half_along: dict[str, float] = {}
        self._stations = cell.stations()
        self._offsets = {
            (r.base, o.part): o.offset
            for r in cell.recipes
            for o in r.ops
            if o.dst == "unit" and o.part
        }

    # ------------------------------------------------------------ lifecycle

    def carry_on(self, ticks: int, last_ids: Mapping[str, int]) -> None:
        """A resumed run: not at events fidelity (its world state cannot be rebuilt yet)."""
        raise ConfigError(
            self.cell.source, "fidelity", "resume is not available at events fidelity"
        )

    def setup(self) -> None:
        """Build the arms, belts and stations; make the t=0 parts."""
        for r in sorted(self.cell.robots, key=lambda r: r.name):
            self.arms[r.name] = Hand(r)
        for c in sorted(self.cell.conveyors, key=lambda c: c.name):
            fed = [
                self.cell.part_kind(f.part).size[0]
                for f in self.cell.feeders
                if f.conveyor == c.name
            ]
            self.conveyors[c.name] = Belt(c, fed_length=max(fed, default=0.0))
        self._after_tick()

    def shutdown(self) -> None:
        """Nothing to free."""

    # ------------------------------------------------------------ acting

    def apply(self, act: RobotAct) -> bool:
        """As the physics world, with the grasp and release where ``act.aim`` says."""
        arm = self.arms.get(act.robot)
        if isinstance(arm, Hand):
            arm.op_id = act.op_id
            if act.grip is Grip.GRASP:
                self._grasp_at(arm, act.aim)
                self._record(arm.name, "grasp", arm.holding)
                act = _no_grip(act)
            elif act.grip is Grip.RELEASE:
                self._record(arm.name, "release", arm.holding)
                self._release_to(arm, act.aim)
                act = _no_grip(act)
        return super().apply(act)

    def _grasp_at(self, arm: Hand, aim: str) -> None:
        arm.closed = True
        if arm.holding:
            return
        part = self._parts.get(aim)
        if part is not None and part.unit:
            part = self._parts[part.unit]  # a unit is taken whole
        if part is None or part.held_by or part.id in self._due:
            self.counters["grasp_missed"] += 1
            log.info("world: %s closed on nothing (aimed at %r)", arm.name, aim[:64])
            return
        arm.at = self._pose(part)[0]
        arm.source = part.location
        self._off_belt(part)
        arm.holding, part.held_by = part.id, arm.name
        part.location = f"gripper:{arm.name}"
        self._emit(WorldEventKind.GRASPED, part, part.location, arm.name)

    def _release(self, arm: Arm) -> None:
        """Let go with no aim (a drop, a worn gripper, a reset): the part falls."""
        if isinstance(arm, Hand):
            self._release_to(arm, "")

    def _release_to(self, arm: Hand, aim: str) -> None:
        arm.closed = False
        if not arm.holding:
            return
        part = self._parts[arm.holding]
        arm.holding, part.held_by = "", ""
        # it comes to rest as in physics: a couple of ticks after the gripper opens
        self._due[part.id] = (self.cell.tick_at(self._ticks + SETTLE_TICKS), arm.name, aim)

    def _tool_near(self, arm: Arm, parts: Sequence[Part], reach: float) -> bool:
        """An arm has no pose here: its tool is where its agent aims (``RobotAct.aim``)."""
        return True

    def _measure(self, base: Part) -> tuple[MemberPose, ...]:
        """Every part joined to ``base`` sits exactly at its recipe offset (no placement errs in
        a model of places)."""
        out = []
        for mid in base.members:
            m = self._parts[mid]
            dx, dy, dz = self._offsets.get((base.kind.name, m.kind.name), (0.0, 0.0, 0.0))
            out.append(MemberPose(m.id, m.kind.name, dx, dy, dz, 0.0))
        return tuple(out)

    def place(self, kind: str, pose: Pose) -> str:
        """Put a new part of ``kind`` with its bottom centre at ``pose`` where it is (a station,
        or the floor); return its id."""
        k = self.cell.part_kind(kind)
        part = self._spawn(kind, (pose.x, pose.y, pose.z + k.size[2] / 2), pose.yaw, "", "")
        station = self._station_at(pose)
        self._put(part, station, self._pose(part))
        return part.id

    def _commission(self, c: object) -> None:
        self.counters["commission_refused"] += 1

    def _unbody(self, gone: Sequence[Part]) -> None:
        """The parts of a unit leaving the world: out of any gripper, off the belts, no longer
        landing."""
        for g in gone:
            if g.held_by:
                arm = self.arms[g.held_by]
                arm.holding, arm.closed = "", False
            self._off_belt(g)
            self._poses.pop(g.id, None)
            self._due.pop(g.id, None)

    # ------------------------------------------------------------ time

    def advance(self) -> None:
        """One control tick: belts carry their parts, arms reach their targets, released
        parts land, feeders feed, sensors read."""
        dt = self.cell.tick_ns / 1e9
        for belt in self.conveyors.values():
            if isinstance(belt, Belt) and belt.move(dt, self._half_along):
                for pid in belt.along:
                    self._poses[pid] = self._on_belt_pose(belt, pid)
                    self._move_members(self._parts[pid])
        for arm in self.arms.values():
            arm.q = arm.target
        self._ticks += 1
        self._t_ns = self.cell.tick_at(self._ticks)
        self._after_tick()

    def quiet_until_ns(self) -> int:
        """The earliest sim time at which anything of the world may change if no one acts: a
        released part landing, a feeder's part due, a blackout ending, a part on a belt
        reaching its end sensor or its stop, a belt's start clearing for a feeder that
        waits. Until then ticks may pass unseen (``advance_quiet``); ``t_ns`` means now."""
        now = self._t_ns
        horizon = NEVER_NS
        for when, _robot, _aim in self._due.values():
            horizon = min(horizon, when)
        for until in self._blackouts.values():
            if until > now:
                horizon = min(horizon, until)
        waiting: dict[str, float] = {}
        for f in self._feeders.states:
            spec = f.spec
            if spec.pose is not None:
                where = f"feeder:{spec.name}"
                if any(p.location == where for p in self._parts.values()):
                    continue
                if f.next_ns is None:
                    return now  # an emptied tray: its refill is scheduled at the next tick
                horizon = min(horizon, f.next_ns)
            elif f.next_ns is not None:
                if f.next_ns > now:
                    horizon = min(horizon, f.next_ns)
                else:
                    # due but waiting: for a part to leave (an act wakes us then), or for
                    # its room at the belt's start (a crossing on the belt: a horizon)
                    belt = self.conveyors[spec.conveyor]
                    assert isinstance(belt, Belt)
                    mine = sum(1 for pid in belt.along if self._parts[pid].feeder == spec.name)
                    if mine < spec.limit:
                        size = self.cell.part_kind(spec.part).size[0]
                        need = size + SPAWN_DROP + SPAWN_CLEARANCE
                        waiting[spec.conveyor] = max(waiting.get(spec.conveyor, 0.0), need)
        for name, belt in self.conveyors.items():
            if not isinstance(belt, Belt):
                continue
            if not belt.along:
                if name in waiting:
                    return now  # an empty belt and a feeder due: its part comes next tick
                continue
            if belt.stopped or belt.accumulated:
                continue
            horizon = min(horizon, now + self._belt_quiet_ns(belt, waiting.get(name, 0.0)))
        return horizon

    def _belt_quiet_ns(self, belt: Belt, room: float) -> int:
        """How long the parts on ``belt`` ride before anything about them changes but their
        positions: the head entering the end sensor's range or reaching the stop, a part
        closing up to one that stands (within the queue gap: an infeed then halts), or, if a
        feeder waits for room (``room`` > 0), the last part's rear clearing the start."""
        half = self._half_along
        order = sorted(belt.along, key=lambda k: (-belt.along[k], k))
        dist = float("inf")
        limit, standing = belt.stop_along, False
        for n, pid in enumerate(order):
            front, rear = belt.along[pid] + half[pid], belt.along[pid] - half[pid]
            gap = limit - front
            if n == 0:
                dist = min(dist, gap - END_SENSOR_RANGE if gap > END_SENSOR_RANGE else gap)
            elif standing:
                dist = min(dist, gap - QUEUE_GAP if gap > QUEUE_GAP else gap)
            standing = gap <= 1e-12
            limit = rear
        if room > 0:
            # a clear start makes the part at the next tick (dist 0): no horizon past now
            last = belt.along[order[-1]] - half[order[-1]]
            dist = min(dist, max(0.0, room - last))
        if dist <= 0 or belt.speed <= 0:
            return 0
        return int(dist / belt.speed * 1e9)

    def advance_quiet(self, ticks: int) -> None:
        """``ticks`` control ticks in which, by ``quiet_until_ns``, nothing but positions on
        the belts changes: the belts carry their parts tick by tick (the same arithmetic as
        ``advance``), and the clock moves on. The last tick's sensing is ``advance``'s."""
        dt = self.cell.tick_ns / 1e9
        for belt in self.conveyors.values():
            if isinstance(belt, Belt) and belt.along:
                moved = False
                for _ in range(ticks):
                    moved = belt.move(dt, self._half_along) or moved
                if moved:
                    for pid in belt.along:
                        self._poses[pid] = self._on_belt_pose(belt, pid)
                        self._move_members(self._parts[pid])
        for arm in self.arms.values():
            arm.q = arm.target
        self._ticks += ticks
        self._t_ns = self.cell.tick_at(self._ticks)

    def _after_tick(self) -> None:
        for pid in sorted(self._due):
            when, robot, aim = self._due[pid]
            if when <= self._t_ns:
                del self._due[pid]
                self._land(self._parts[pid], robot, aim)
        self._feed()
        self._sense()

    # ------------------------------------------------------------ landing

    def _land(self, part: Part, robot: str, aim: str) -> None:
        """A released part comes to rest: where it was put, or where a dropped part falls."""
        if aim.startswith("unit:"):
            base = self._parts.get(aim[5:])
            if base is not None and not base.unit and not base.held_by and base is not part:
                self._join(part, base)
                return
            aim = ""
        if aim and aim in self._stations and self._free_station(aim, part):
            st = self._stations[aim]
            self._put(part, aim, self._station_pose(st.pose, part))
            return
        self._fall(part, robot)

    def _fall(self, part: Part, robot: str) -> None:
        """Land a dropped part by the calibrated shares: back where it was picked (if that is
        free), else on the floor beside it, upside down as often as drops were scrapped."""
        arm = self.arms.get(robot)
        source = arm.source if isinstance(arm, Hand) else ""
        step = arm.op_id.rpartition("/")[2] if isinstance(arm, Hand) else ""
        shares = self.calibration.landing(step) or (("floor", 1.0),)
        place = _draw(shares, self._rng.random())
        station = source.partition(":")[2]
        if (
            place in ("source", "feeder")
            and station in self._stations
            and self._free_station(station, part)
        ):
            self._put(part, station, self._station_pose(self._stations[station].pose, part))
            return
        # on the floor beside where it was picked, towards the robot that dropped it
        (x, y, _z), _ = self._poses[part.id]
        if arm is not None:
            bx, by = arm.spec.base.x, arm.spec.base.y
            d = math.hypot(bx - x, by - y) or 1.0
            x, y = x + (bx - x) / d * FLOOR_OFFSET_M, y + (by - y) / d * FLOOR_OFFSET_M
        askew = self._rng.random() < self._askew_share(step, shares)
        yaw = self._rng.uniform(-math.pi, math.pi)
        orn = UPSIDE_DOWN if askew else _yaw(yaw)
        self._put(part, "", ((x, y, part.half[2]), orn))

    def _askew_share(self, step: str, shares: tuple[tuple[str, float], ...]) -> float:
        """The share of floor landings that must be unrecoverable for the calibrated share
        of drops scrapped (``fate``) to come out."""
        floor = dict(shares).get("floor", 0.0)
        scrapped = dict(self.calibration.fate(step)).get("scrapped", 0.0)
        return min(1.0, scrapped / floor) if floor > 0 else 0.0

    def _put(self, part: Part, station: str, pose: tuple[Vec3, Quat]) -> None:
        """Part at rest at ``station`` ("" for the floor) with ``pose``: SETTLED there."""
        self._poses[part.id] = pose
        kind = self._stations[station].kind if station else None
        if kind in (StationKind.INFEED, StationKind.OUTFEED):
            belt = self.conveyors[station]
            assert isinstance(belt, Belt)
            along, _ = belt.local(pose[0])
            belt.along[part.id] = min(along, belt.stop_along - self._half_along[part.id])
            self._poses[part.id] = self._on_belt_pose(belt, part.id)
            where = f"conveyor:{station}"
        elif kind is StationKind.TRAY:
            where = f"feeder:{station}"
        elif kind is not None:
            where = f"{kind.value}:{station}"
        else:
            where = "floor"
        self._move_members(part)
        part.location = where
        self._emit(WorldEventKind.SETTLED, part, where, "", rest=True)

    def _join(self, part: Part, base: Part) -> None:
        """Join ``part`` to unit ``base`` at its recipe offset."""
        part.unit = base.id
        base.members.append(part.id)
        self._poses[part.id] = self._member_at(base, part)
        part.location = f"unit:{base.id}"
        self._emit(WorldEventKind.ATTACHED, part, part.location, base.id, rest=True)

    def _member_at(self, base: Part, member: Part) -> tuple[Vec3, Quat]:
        (bx, by, bz), born = self._poses[base.id]
        dx, dy, dz = self._offsets.get((base.kind.name, member.kind.name), (0.0, 0.0, 0.0))
        yaw = _quat_yaw(born)
        c, s = math.cos(yaw), math.sin(yaw)
        z = bz + base.half[2] + dz + member.half[2]
        return (bx + c * dx - s * dy, by + s * dx + c * dy, z), born

    def _move_members(self, base: Part) -> None:
        for m in base.members:
            self._poses[m] = self._member_at(base, self._parts[m])

    def _free_station(self, name: str, part: Part) -> bool:
        """Whether a part may rest at station ``name``: nothing else free sits there (a belt
        takes any number)."""
        kind = self._stations[name].kind
        if kind in (StationKind.INFEED, StationKind.OUTFEED):
            return True
        prefix = "feeder" if kind is StationKind.TRAY else kind.value
        where = f"{prefix}:{name}"
        return not any(p.location == where for p in self._parts.values() if p is not part)

    def _station_at(self, pose: Pose) -> str:
        """The station whose pose is nearest ``pose`` within 3 cm ("" for none: the floor)."""
        best, best_d = "", 0.03
        for name, st in sorted(self._stations.items()):
            d = math.hypot(st.pose.x - pose.x, st.pose.y - pose.y)
            if d <= best_d and abs(st.pose.z - pose.z) < 0.01:
                best, best_d = name, d
        return best

    def _station_pose(self, at: Pose, part: Part) -> tuple[Vec3, Quat]:
        return (at.x, at.y, at.z + part.half[2]), _yaw(at.yaw)

    # ------------------------------------------------------------ belts, feeders, sensors

    def _on_belt_pose(self, belt: Belt, pid: str) -> tuple[Vec3, Quat]:
        (_, _, z), orn = self._poses[pid]
        x, y = belt.point(belt.along[pid])
        return (x, y, z), orn

    def _off_belt(self, part: Part) -> None:
        for belt in self.conveyors.values():
            if isinstance(belt, Belt):
                belt.along.pop(part.id, None)

    def _feed(self) -> None:
        """The physics world's feeders, on places: a tray refills ``interval`` after it is
        emptied; a belt feeder makes a part every ``interval`` +/- ``jitter`` while the belt's
        start is clear and fewer than ``limit`` of its parts ride it."""
        now = self._t_ns
        for f in self._feeders.states:
            spec = f.spec
            if spec.pose is not None:
                where = f"feeder:{spec.name}"
                if any(p.location == where for p in self._parts.values()):
                    f.next_ns = None
                    continue
                if f.next_ns is None:
                    f.schedule(now, self._rng)
                if f.next_ns is not None and now >= f.next_ns and self._feeders.may(spec.name):
                    jx, jy, jyaw = self._feeders._jitter()
                    hz = self.cell.part_kind(spec.part).size[2] / 2
                    pos = (spec.pose.x + jx, spec.pose.y + jy, spec.pose.z + hz)
                    part = self._spawn_at(spec, pos, spec.pose.yaw + jyaw, where)
                    self._feeders.tell(spec.name, part.id)
                    f.next_ns = None
            elif f.next_ns is not None and now >= f.next_ns:
                self._feed_belt(f, spec, now)

    def _feed_belt(self, f: FeederState, spec: FeederSpec, now: int) -> None:
        belt = self.conveyors[spec.conveyor]
        assert isinstance(belt, Belt)
        mine = sum(1 for pid in belt.along if self._parts[pid].feeder == spec.name)
        if mine >= spec.limit:
            return
        hx, _, hz = (s / 2 for s in self.cell.part_kind(spec.part).size)
        along = hx + SPAWN_DROP
        room = along + hx + SPAWN_CLEARANCE
        if any(a - self._half_along[pid] < room for pid, a in belt.along.items()):
            return  # the start of the belt is not clear yet
        if not self._feeders.may(spec.name):
            return  # out of material (a factory's store): try again next tick
        jx, jy, jyaw = self._feeders._jitter()
        x, y = belt.point(along + jx, jy)
        part = self._spawn_at(spec, (x, y, belt.spec.height + hz), belt.yaw + jyaw, "")
        belt.along[part.id] = along + jx
        part.location = f"conveyor:{belt.name}"
        self._emit(WorldEventKind.SPAWNED, part, part.location, "")
        self._feeders.tell(spec.name, part.id)
        f.schedule(now, self._rng)

    def _spawn_at(self, spec: FeederSpec, pos: Vec3, yaw: float, where: str) -> Part:
        part = self._spawn(spec.part, pos, yaw, spec.name, where)
        if where:
            self._emit(WorldEventKind.SPAWNED, part, where, "")
        return part

    def _sense(self) -> None:
        """Every presence sensor from the parts' places; a part newly at a belt's end has
        ARRIVED."""
        readings: dict[str, str] = {}
        for name, belt in self.conveyors.items():
            assert isinstance(belt, Belt)
            sensor, seen = f"{name}.end", belt.head(self._half_along)
            belt.queue(seen, self._half_along)
            readings[sensor] = seen
            if seen and self._sensors.get(sensor) != seen:
                self._emit(WorldEventKind.ARRIVED, self._parts[seen], f"conveyor:{name}", "")
        at: dict[str, str] = {}
        for pid in sorted(self._parts):
            part = self._parts[pid]
            if not part.unit and not part.held_by and pid not in self._due:
                at.setdefault(part.location.partition(":")[2], pid)
        for names in (self.cell.fixtures, self.cell.stands):
            for fx in names:
                readings[fx.name] = at.get(fx.name, "")
        for f in self.cell.feeders:
            if f.pose is not None:
                readings[f.name] = at.get(f.name, "")
        self._sensors = readings
        dark = self._dark() if self._blackouts else set()
        for sensor in readings:
            if sensor not in dark:
                self._heard[sensor] = self._t_ns
        self._view = tuple((s, pid) for s, pid in sorted(readings.items()) if s not in dark)

    def sensor_names(self) -> tuple[str, ...]:
        """Every presence sensor of the cell."""
        conveyors = [f"{c.name}.end" for c in self.cell.conveyors]
        holders = [f.name for f in (*self.cell.fixtures, *self.cell.stands)]
        trays = [f.name for f in self.cell.feeders if f.pose is not None]
        return tuple(sorted([*conveyors, *holders, *trays]))

    # ------------------------------------------------------------ parts

    def _spawn(self, kind: str, pos: Vec3, yaw: float, feeder: str, location: str) -> Part:
        k = self.cell.part_kind(kind)
        n = self._ids.get(kind, 0) + 1
        self._ids[kind] = n
        part = Part(id=f"{kind}-{n:04d}", kind=k, body=-1, location=location, feeder=feeder)
        self._parts[part.id] = part
        self._poses[part.id] = (pos, _yaw(yaw))
        self._half_along[part.id] = _half_length(k)
        return part

    def _pose(self, part: Part) -> tuple[Vec3, Quat]:
        return self._poses[part.id]

    def _free(self) -> list[Placed]:
        return [(p, *self._poses[p.id]) for _, p in sorted(self._parts.items()) if not p.unit]

    def _lies(self, part: Part) -> tuple[PartPose, tuple[str, ...], bool]:
        """How a part at rest lies: its pose; nothing touches it, nothing blocks it (parts do
        not pile up in a model of places)."""
        pos, orn = self._poses[part.id]
        return PartPose(part.id, part.kind.name, *pos, *orn), (), False


def _no_grip(act: RobotAct) -> RobotAct:
    """The act with its grip taken care of (the physics world's grasp must not run too)."""
    return dataclasses.replace(act, grip=Grip.NONE)


def _draw(shares: tuple[tuple[str, float], ...], u: float) -> str:
    """The place whose cumulative share first exceeds ``u`` (shares in their order)."""
    names = [n for n, _ in shares]
    cum: list[float] = []
    total = 0.0
    for _, s in shares:
        total += s
        cum.append(total)
    i = bisect.bisect_right(cum, u * total)
    return names[min(i, len(names) - 1)]


def _yaw(yaw: float) -> Quat:
    a, b, c, d = yaw_quat(yaw)
    return (a, b, c, d)


def _quat_yaw(q: Quat) -> float:
    qx, qy, qz, qw = q
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def _half_length(kind: PartKind) -> float:
    """Half a part's length along the belt (parts ride lengthwise)."""
    return kind.size[0] / 2


__all__ = ["Belt", "EventWorld", "Hand"]
