"""The PyBullet world built from a ``CellSpec``: arms, belts, feeders, fixtures, parts.

The world never decides anything (DESIGN "Layout"): robots tell it joint
targets and gripper commands, the supervisor tells it which parts to retire,
and it reports what physics did as ``RobotSense`` / ``WorldSense``. Every part
location change comes with a ``WorldEvent`` so the supervisor's ledger can
follow. Same cell, seed and acts give the same results: dicts are walked in
sorted order, time is sim time and the only randomness is the world's seeded
``random.Random``.

Checks that only need tick resolution (settling, sensors, feeders) run once
per tick, not per physics step, because cost per step is what bounds a run.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pybullet as p
import pybullet_data

from bus.cellspec import MOUNT_RGBA, STAND_RGBA, CellSpec, FeederSpec, FixtureSpec, Pose
from bus.enums import Grip, UnitMode, WorldEventKind
from bus.messages import (
    Commission,
    CommissionCheck,
    Inspection,
    MemberPose,
    PartPose,
    PathSegment,
    RobotAct,
    RobotSense,
    SensorQuiet,
    SensorReading,
    WorldAct,
    WorldEvent,
    WorldSense,
)
from bus.path import path_at, path_end, path_problem
from sim.arms import Arm
from sim.conveyors import Conveyor
from sim.feeders import Feeders, FeedGate
from sim.parts import (
    STIFF_G,
    Part,
    PartFactory,
    Placed,
    Quat,
    UnitGroups,
    Vec3,
    fix,
    lies,
    quat_yaw,
    to_frame,
)
from sim.stations import Fixture, Tray
from sim.wear import Ramp, Tracking

log = logging.getLogger(__name__)

GRASP_REACH = 0.025
"""A part's top centre must be this close to the tool centre point to be grasped (m)."""
SETTLE_SPEED = 0.02
"""A released part slower than this (relative to what carries it) is calm (m/s)."""
SETTLE_TICKS = 2
"""Calm ticks in a row after which a released part has settled."""
SETTLE_MAX_NS = 500_000_000
"""A released part is classified at the latest this long after release."""
ON_UNIT_Z = (-0.005, 0.02)
"""A part rests on a unit base when its bottom is this far above the base's top (m)."""
FASTEN_REACH = 0.12
"""The tool must be this close to a unit base to drive its screws (m)."""
INSPECT_REACH = 0.3
"""The tool (the camera) must be this close to a unit base to see it (m)."""
AUDIT_TICKS = 24
"""Every this many ticks, free parts at rest are checked against their recorded location."""
TORQUE_SCATTER = 0.03
"""A screwdriver's clutch lets each screw go at its set torque times ``1 + N(0, this)``."""
SOLVER_ITERATIONS = 20
"""Constraint solver iterations per physics step (Bullet's default is 50). Contacts
cost in proportion. At 20, a unit swung at 1.5 rad/s keeps its shape and its place in
the gripper to under a millimetre."""


class World:
    """A cell in PyBullet: ``World(cell, seed=...)``, then ``setup()``, ``advance()``, ``shutdown()``."""

    def __init__(self, cell: CellSpec, *, seed: int = 0) -> None:
        self.cell = cell
        self.seed = seed
        self.client = -1
        self.counters: collections.Counter[str] = collections.Counter()
        """What the world refused or could not do, by reason (for the run's report)."""
        self.arms: dict[str, Arm] = {}
        self.conveyors: dict[str, Conveyor] = {}
        self.fixtures: dict[str, Fixture] = {}
        self.trays: dict[str, Tray] = {}
        self._rng = random.Random(seed)
        self.tracking = Tracking(seed)
        """The drives' tracking errors, reported to the supervisor once a second."""
        self.worn_tools: dict[str, Ramp] = {}
        """Robots whose screwdriver wears (``tool_wear``): the share of torque it loses."""
        self._fasten_rng = random.Random(f"fasten/{seed}")
        """The screws' scatter: a stream of its own, so torques change no other draw."""
        self._inspect_rng = random.Random(f"inspection/{seed}")
        """The inspection's chance of error (``Inspection.draw``): a stream of its own."""
        self._t_ns = 0
        self._ticks = 0
        self._feeders = Feeders(cell, self.conveyors, self.trays, self._rng)
        self._base_kinds = cell.base_kinds
        self.stands: dict[str, Fixture] = {}
        self.mounts: dict[str, Fixture] = {}
        self.commissioned: list[Commission] = []
        """Arms made robots since the last ``take_commissioned`` (for the sim server)."""
        self._checks: list[CommissionCheck] = []
        self._factory: PartFactory | None = None
        self._groups = UnitGroups(-1)
        self._parts: dict[str, Part] = {}
        self._blackouts: dict[str, int] = {}
        """Sensors in a blackout fault: name to the sim time it ends."""
        self.modes: dict[str, UnitMode] = {}
        """Each robot's unit mode as its last act said (recorded when it changes)."""
        self.maintained: list[str] = []
        """Robots and belts the supervisor maintained since the last ``take_maintained``: the
        fault injector takes their wear off (``sim.wear.Wear.maintain``)."""
        self._settling: dict[str, list[int]] = {}
        """Released parts not yet at rest: id to [release time, calm ticks]."""
        self._events: list[WorldEvent] = []
        self._sensors: dict[str, str] = {}
        self._observe: dict[str, tuple[str, ...]] = {}
        self._inspect: dict[str, str] = {}
        self._id_floor: dict[str, int] = {}
        self._paths: dict[str, tuple[int, tuple[PathSegment, ...], int]] = {}
        """Each robot's path (number, segments, shift), followed between its ticks."""
        self._heard: dict[str, int] = {}
        """When each sensor last reported (a blacked-out one stops): its silence is judged
        from this, however long the supervisor went without a tick."""
        self._view: tuple[tuple[str, str], ...] = ()
        """What the sensors say now, as the supervisor would read it (for ``news``)."""
        self.records: list[dict[str, Any]] = []
        """What the arms did, as the world saw it (grasps, releases, fastenings,
        inspections, with the part or unit and whether it took): the run's own
        evidence, kept apart from the supervisor's log so an audit can check one
        against the other. Taken with ``take_records``."""

    # ------------------------------------------------------------ lifecycle

    def carry_on(self, ticks: int, last_ids: Mapping[str, int]) -> None:
        """Before ``setup``: start at control tick ``ticks`` (a resumed run), numbering each
        kind's parts after ``last_ids[kind]``."""
        self._ticks = ticks
        self._t_ns = self.cell.tick_at(ticks)
        self._id_floor = dict(last_ids)

    def setup(self) -> None:
        """Connect a headless PyBullet client and build the cell; make the t=0 parts."""
        cid = self.client = int(p.connect(p.DIRECT))
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=1.0 / self.cell.physics_hz,
            deterministicOverlappingPairs=1,
            numSolverIterations=SOLVER_ITERATIONS,
            physicsClientId=cid,
        )
        p.loadURDF("plane.urdf", physicsClientId=cid)
        self._factory = PartFactory(cid, multibody=self._base_kinds)
        self._factory.carry_on(self._id_floor)
        self._groups = UnitGroups(cid)
        for r in sorted(self.cell.robots, key=lambda r: r.name):
            self.arms[r.name] = Arm(cid, r)
        for c in sorted(self.cell.conveyors, key=lambda c: c.name):
            fed = [
                self.cell.part_kind(f.part).size[0]
                for f in self.cell.feeders
                if f.conveyor == c.name
            ]
            self.conveyors[c.name] = Conveyor(cid, c, fed_length=max(fed, default=0.0))
        for fx in sorted(self.cell.fixtures, key=lambda f: f.name):
            self.fixtures[fx.name] = Fixture(cid, fx)
        for st in sorted(self.cell.stands, key=lambda f: f.name):
            self.stands[st.name] = Fixture(cid, st, rgba=STAND_RGBA)
        for m in sorted(self.cell.mounts, key=lambda f: f.name):
            self.mounts[m.name] = Fixture(cid, FixtureSpec(m.name, m.pose), rgba=MOUNT_RGBA)
        for f in sorted(self.cell.feeders, key=lambda f: f.name):
            if f.pose is not None:
                kind = self.cell.part_kind(f.part)
                self.trays[f.name] = Tray(cid, f.name, f.pose, kind)
        self._after_tick()

    def shutdown(self) -> None:
        """Disconnect the PyBullet client."""
        if self.client >= 0:
            p.disconnect(physicsClientId=self.client)
            self.client = -1

    @property
    def t_ns(self) -> int:
        """Sim time in nanoseconds."""
        return self._t_ns

    # ------------------------------------------------------------ acting

    def apply(self, act: RobotAct) -> bool:
        """Take a robot's act for the coming tick; False if it was (partly) refused.

        The gripper acts where the tool is now; the joint target is reached at
        the end of the tick. A malformed ``q`` is refused and counted, and the
        arm keeps its previous target: a buggy agent must not crash the world.
        """
        arm = self.arms.get(act.robot)
        if arm is None:
            self.counters["unknown_robot"] += 1
            log.warning("world: act for unknown robot %r ignored", act.robot)
            return False
        if act.mode is not self.modes.get(arm.name, UnitMode.PRODUCTION):
            self._record(arm.name, "mode", act.mode.value)
        self.modes[arm.name] = act.mode
        if act.grip is Grip.GRASP:
            self._grasp(arm)
            self._record(arm.name, "grasp", arm.holding)
        elif act.grip is Grip.RELEASE:
            self._record(arm.name, "release", arm.holding)
            self._release(arm)
        if act.fasten:
            self._fasten(arm, act.fasten)
            base = self._parts.get(act.fasten)
            self._record(arm.name, "fasten", act.fasten, ok=bool(base and base.fastened))
        if act.inspect:
            self._inspect[arm.name] = act.inspect
        if act.observe:
            self._observe[arm.name] = act.observe
        q = arm.validate(act.q)
        if isinstance(q, str):
            self.counters["refused_q"] += 1
            log.warning("world: %s: joint target refused: %s", arm.name, q)
            return False
        arm.target = q
        return self._take_path(arm, act)

    def _take_path(self, arm: Arm, act: RobotAct) -> bool:
        """Keep, replace or drop the path ``arm`` follows between its robot's ticks."""
        had = self._paths.get(arm.name)
        if act.path_id <= 0:
            self._paths.pop(arm.name, None)
            return True
        if not act.path:
            if had is None or had[0] != act.path_id:
                # a motion we were never sent (its first act lost): stand, do not guess
                self.counters["unknown_path"] += int(had is not None)
                self._paths.pop(arm.name, None)
            return True
        why = path_problem(act.path, len(arm.arm_joints))
        if why:
            self.counters["refused_path"] += 1
            log.warning("world: %s: path refused: %s", arm.name, why)
            self._paths.pop(arm.name, None)
            return False
        self._paths[arm.name] = (act.path_id, act.path, act.path_shift_ns)
        return True

    def follow(self, robot: str) -> None:
        """Robot ``robot`` has no act this tick (the clock did not open it for the robot): its
        target is its path's pose at the end of the tick, what its agent would have sent."""
        arm, path = self.arms.get(robot), self._paths.get(robot)
        if arm is None or path is None:
            return
        _id, segments, shift = path
        q = path_at(segments, shift, self._t_ns + self.cell.tick_ns, segments[-1].q1)
        checked = arm.validate(q)
        if isinstance(checked, str):  # a path is checked when it comes: not reachable
            self._paths.pop(robot, None)
            return
        arm.target = checked
        if self._t_ns + self.cell.tick_ns >= path_end(segments, shift):
            del self._paths[robot]  # over: the target stays at its end

    def robot_news(self, robot: str, holding: str) -> bool:
        """Whether robot ``robot`` must be ticked now, whatever it asked: its gripper holds
        something else than ``holding`` (what it last sensed: a grasp took, a part dropped),
        or an observe or inspect of its is answered."""
        arm = self.arms.get(robot)
        if arm is None:
            return False
        return arm.holding != holding or robot in self._observe or robot in self._inspect

    def news(self, view: tuple[tuple[str, str], ...]) -> bool:
        """Whether the supervisor must be ticked now: events or checks wait for it, or the
        sensors say something else than ``view`` (what it last read, from ``sensor_view``)."""
        return bool(self._events or self._checks) or view != self._view

    def sensor_view(self) -> tuple[tuple[str, str], ...]:
        """What the sensors say now: (sensor, part) of every one reporting, sorted."""
        return self._view

    def apply_world(self, act: WorldAct) -> None:
        """Take the supervisor's act: retire parts (and whatever is joined to them), make
        tested arms on their mount points robots, and note the robots and belts maintained
        (their wear is the fault injector's to take off, after this tick's physics)."""
        for pid in sorted(set(act.retire)):
            self._retire(pid)
        for c in act.commission:
            self._commission(c)
        for name in sorted(set(act.maintain)):
            if name in self.arms or name in self.conveyors:
                self.maintained.append(name)
            else:
                self.counters["maintain_unknown"] += 1
                log.warning("world: cannot maintain %r: no such robot or belt", name[:80])

    def take_maintained(self) -> list[str]:
        """The robots and belts maintained since the last call (``maintained``)."""
        out, self.maintained = self.maintained, []
        return out

    def _commission(self, c: Commission) -> None:
        """Replace the arm ``c.unit`` resting on mount ``c.mount`` by a working robot.

        The built parts leave the world (RETIRED, the supervisor's ledger
        consumes them) and the robot the recipe names is loaded on the mount
        point, in its home pose, with no agent yet: the launcher runs its
        commissioning check and then starts one (``cells.commission``).
        """
        base = self._parts.get(c.unit)
        why = ""
        if base is None or base.unit or base.held_by:
            why = "not a free unit in the world"
        elif base.location != f"mount:{c.mount}":
            why = f"it is at {base.location}, not on {c.mount}"
        elif c.robot in self.arms or c.robot not in self.cell.built_names():
            why = f"robot name {c.robot!r} is taken or not one this cell builds"
        elif any(a.spec.base == self._mount_pose(c.mount) for a in self.arms.values()):
            why = f"a robot already stands on {c.mount}"
        else:
            try:
                spec = self.cell.built_robot(c.robot, c.mount)
            except KeyError as exc:
                why = f"no such mount or no robot recipe: {exc}"
        if why:
            self.counters["commission_refused"] += 1
            log.warning("world: cannot commission %s on %s: %s", c.unit, c.mount, why)
            return
        self._retire(c.unit)
        self.arms = dict(sorted({**self.arms, c.robot: Arm(self.client, spec)}.items()))
        self.commissioned.append(c)
        log.info("world: %s commissioned on %s as %s", c.unit, c.mount, c.robot)

    def _mount_pose(self, mount: str) -> Pose | None:
        fx = self.mounts.get(mount)
        return fx.pose if fx is not None else None

    def take_commissioned(self) -> list[Commission]:
        """Arms made robots since the last call."""
        out, self.commissioned = self.commissioned, []
        return out

    def report_check(self, check: CommissionCheck) -> None:
        """A built robot's commissioning check is over: the supervisor hears it next tick."""
        self._checks.append(check)

    def drop(self, robot: str) -> None:
        """Fault hook: the gripper lets go, exactly as a release."""
        self._release(self.arms[robot])

    def gate_feeders(self, gate: FeedGate) -> None:
        """Feed from outside: every feeder makes parts only while ``gate`` allows (before
        ``setup``, so the t=0 parts are gated too)."""
        self._feeders.gate = gate

    def stop_conveyor(self, name: str, stopped: bool) -> None:
        """Fault hook: stop (or restart) a belt; parts on it stop with it."""
        self.conveyors[name].stopped = stopped

    def place(self, kind: str, pose: Pose) -> str:
        """Put a new part of ``kind`` with its bottom centre at ``pose``; return its id.

        For scenarios and tests: the part is classified where it is (and
        joined to a unit under it) right away, reported as SPAWNED.
        """
        k = self.cell.part_kind(kind)
        pos = (pose.x, pose.y, pose.z + k.size[2] / 2)
        part = self._spawn(kind, pos, pose.yaw, feeder="", location="")
        where, base = self._where(part, pos)
        part.location = where
        self._emit(WorldEventKind.SPAWNED, part, where, "")
        if base is not None:
            self._attach(part, base)
        return part.id

    # ------------------------------------------------------------ time

    def advance(self) -> None:
        """Step physics through one control tick; then settle, sense and feed once."""
        n = self.cell.steps_per_tick
        tick_s = self.cell.tick_ns / 1e9
        arms = list(self.arms.values())
        belts = list(self.conveyors.values())
        for arm in arms:
            arm.plan_tick(n, tick_s)
        cid = self.client
        for i in range(n):
            for belt in belts:
                belt.hold()
            for arm in arms:
                arm.step(i)
            p.stepSimulation(physicsClientId=cid)
        for arm in arms:
            arm.step(n)
            arm.end_tick()
        # from the tick count, so sim time never drifts by rounding (1e9 / 24 is not whole)
        self._ticks += 1
        self._t_ns = self.cell.tick_at(self._ticks)
        self._after_tick()

    # ------------------------------------------------------------ sensing

    def robot_sense(self, name: str) -> RobotSense:
        """What robot ``name`` senses now; answers its last observe / inspect once."""
        arm = self.arms[name]
        seen = tuple(
            pp for pp in (self.part_pose(pid) for pid in self._observe.pop(name, ())) if pp
        )
        unit = self._inspect.pop(name, "")
        inspection = self._inspection(arm, unit) if unit else None
        if inspection is not None:
            # the camera saw the unit only if the arm moved it over the unit (in reach)
            self._record(name, "inspect", unit, ok=bool(inspection.kinds))
        return RobotSense(
            robot=name, q=arm.q, holding=arm.holding, seen=seen, inspection=inspection
        )

    def world_sense(self) -> WorldSense:
        """Events since the last call, and every working sensor's reading, sorted by name.

        A sensor in a blackout reports nothing at all (it is missing, not empty).
        """
        events, self._events = tuple(self._events), []
        checks, self._checks = tuple(self._checks), []
        dark = self._dark()
        sensors = tuple(
            SensorReading(s, pid) for s, pid in sorted(self._sensors.items()) if s not in dark
        )
        quiet = tuple(SensorQuiet(s, self._heard[s]) for s in sorted(dark) if s in self._heard)
        tracking = self.tracking.readings(self._t_ns, self.arms)
        return WorldSense(
            events=events, sensors=sensors, checks=checks, quiet=quiet, tracking=tracking
        )

    def _dark(self) -> set[str]:
        return {s for s, until in self._blackouts.items() if self._t_ns < until}

    def sensor_names(self) -> tuple[str, ...]:
        """Every presence sensor of the cell."""
        conveyors = [f"{name}.end" for name in self.conveyors]
        holders = [*self.fixtures, *self.trays, *self.stands, *self.mounts]
        return tuple(sorted([*conveyors, *holders]))

    def blackout(self, sensor: str, duration_ns: int) -> None:
        """Fault hook: ``sensor`` reports nothing for ``duration_ns`` of sim time."""
        self._blackouts[sensor] = self._t_ns + duration_ns
        self._view = tuple(v for v in self._view if v[0] != sensor)
        if self._heard.get(sensor) == self._t_ns:
            # its reading of now is never handed out: it last reported at the tick before
            self._heard[sensor] = self.cell.tick_at(self._ticks - 1)

    def part_pose(self, pid: str) -> PartPose | None:
        """Where part ``pid`` is (centre and orientation), or None if it is not in the world."""
        part = self._parts.get(pid)
        if part is None:
            return None
        (x, y, z), (qx, qy, qz, qw) = self._pose(part)
        return PartPose(pid, part.kind.name, x, y, z, qx, qy, qz, qw)

    def parts(self) -> Mapping[str, tuple[str, str]]:
        """Every live part: id to (kind, location), read-only."""
        view = {pid: (pt.kind.name, pt.location) for pid, pt in sorted(self._parts.items())}
        return types.MappingProxyType(view)

    def tcp(self, robot: str) -> tuple[Vec3, Quat]:
        """Robot ``robot``'s tool centre point: position and orientation (x, y, z, w)."""
        return self.arms[robot].tcp()

    def fastened(self, unit: str) -> bool:
        """Whether unit base ``unit`` is fastened."""
        part = self._parts.get(unit)
        return part is not None and part.fastened

    # ------------------------------------------------------------ grasp

    def _grasp(self, arm: Arm) -> None:
        if arm.holding:
            return
        tcp, _ = arm.tcp()
        best: Part | None = None
        best_d = GRASP_REACH
        for pid in sorted(self._parts):
            part = self._parts[pid]
            (x, y, z), _orn = self._pose(part)
            d = math.dist(tcp, (x, y, z + part.half[2]))
            if d > best_d:
                continue
            target = self._parts[part.unit] if part.unit else part
            if target.held_by:
                continue
            best, best_d = target, d
        arm.closed = True
        if best is None:
            self.counters["grasp_missed"] += 1
            log.info("world: %s closed on nothing at %s", arm.name, _fmt(tcp))
            return
        cid = fix(
            self.client, (arm.body, arm.tool_link, arm.tool_com()), best.body, self._pose(best)
        )
        arm.grasp, arm.holding = cid, best.id
        best.held_by = arm.name
        self._settling.pop(best.id, None)
        best.location = f"gripper:{arm.name}"
        self._emit(WorldEventKind.GRASPED, best, best.location, arm.name)

    def _release(self, arm: Arm) -> None:
        arm.closed = False
        if not arm.holding:
            return
        part = self._parts[arm.holding]
        p.removeConstraint(arm.grasp, physicsClientId=self.client)
        arm.grasp, arm.holding = -1, ""
        part.held_by = ""
        self._settling[part.id] = [self._t_ns, 0]

    # ------------------------------------------------------------ units

    def _attach(self, part: Part, base: Part) -> None:
        """Join ``part`` to unit ``base`` where it lies, as one rigid body from now on.

        The joint's force bound grows with the unit's mass (``STIFF_G``), so a heavy
        stack stays as stiff as a light one.
        """
        cid = self.client
        mass = base.kind.mass + part.kind.mass + sum(self._parts[m].kind.mass for m in base.members)
        joint = fix(
            cid,
            (base.body, -1, self._pose(base)),
            part.body,
            self._pose(part),
            max_force=STIFF_G * 9.81 * mass,
        )
        self._groups.join(base, part)
        part.unit, part.joint = base.id, joint
        base.members.append(part.id)
        part.location = f"unit:{base.id}"
        self._emit(WorldEventKind.ATTACHED, part, part.location, base.id, rest=True)

    def _fasten(self, arm: Arm, unit: str) -> None:
        base = self._parts.get(unit)
        if base is None or base.unit:
            self.counters["fasten_unknown"] += 1
            log.warning("world: %s: cannot fasten %r: not a unit in the world", arm.name, unit)
            return
        if not self._tool_near(arm, (base,), FASTEN_REACH):
            self.counters["fasten_missed"] += 1
            log.info("world: %s: %s out of the screwdriver's reach", arm.name, unit)
            return
        self._drive_screws(arm, base)
        if not base.fastened:
            base.fastened = True
            self._emit(WorldEventKind.FASTENED, base, base.location, arm.name)

    def _drive_screws(self, arm: Arm, base: Part) -> None:
        """Drive the unit's screws (again, if they were): each to the recipe's torque, short of
        it by the share a worn screwdriver has lost, with the clutch's scatter. What the unit
        keeps (``Part.torques``) is what a torque audit reads at the inspection."""
        if base.kind.name not in self._base_kinds:
            return
        step = next((o for o in self.cell.recipe_for(base.kind.name).ops if o.torque > 0), None)
        if step is None:
            return
        ramp = self.worn_tools.get(arm.name)
        health = 1.0 - (ramp.at(self._t_ns) if ramp is not None else 0.0)
        rng = self._fasten_rng
        base.torques = tuple(
            round(step.torque * health * (1.0 + TORQUE_SCATTER * rng.gauss(0.0, 1.0)), 4)
            for _ in range(step.screws)
        )

    def _inspection(self, arm: Arm, unit: str) -> Inspection:
        base = self._parts.get(unit)
        if base is None or base.unit:
            return Inspection(unit=unit, kinds=(), fastened=False)
        if not self._tool_near(arm, [self._parts[m] for m in (unit, *base.members)], INSPECT_REACH):
            return Inspection(unit=unit, kinds=(), fastened=False)
        kinds = tuple(sorted(self._parts[m].kind.name for m in base.members))
        measured: tuple[MemberPose, ...] = ()
        draw = round(self._inspect_rng.random(), 6)
        if base.kind.name in self._base_kinds and self.cell.recipe_for(base.kind.name).checks:
            measured = self._measure(base)
        return Inspection(
            unit=unit,
            kinds=kinds,
            fastened=base.fastened,
            members=measured,
            torques=base.torques,
            draw=draw,
        )

    def _tool_near(self, arm: Arm, parts: Sequence[Part], reach: float) -> bool:
        """Whether ``arm``'s tool is within ``reach`` of any of ``parts`` (their centres)."""
        tcp = arm.tcp()[0]
        return min(math.dist(tcp, self._pose(pt)[0]) for pt in parts) <= reach

    def measure(self, unit: str) -> tuple[MemberPose, ...]:
        """Where every part joined to unit base ``unit`` sits (``_measure``; () if it is no
        unit base): for benchmarks and tests, what the inspection's gauges would read."""
        base = self._parts.get(unit)
        return () if base is None or base.unit else self._measure(base)

    def _measure(self, base: Part) -> tuple[MemberPose, ...]:
        """Where every part joined to ``base`` sits, in the base's frame from its top centre:
        what a test stand's gauges read."""
        (bx, by, bz), born = self._pose(base)
        inv_pos, inv_orn = p.invertTransform((bx, by, bz), born)
        out = []
        for mid in base.members:
            m = self._parts[mid]
            pos, orn = self._pose(m)
            (lx, ly, lz), lorn = p.multiplyTransforms(inv_pos, inv_orn, pos, orn)
            tilt = PartPose(mid, m.kind.name, 0, 0, 0, *lorn).tilt
            bottom = lz - m.half[2] - base.half[2]
            out.append(MemberPose(mid, m.kind.name, lx, ly, bottom, tilt))
        return tuple(out)

    def _retire(self, pid: str) -> None:
        part = self._parts.get(pid)
        if part is None:
            self.counters["retire_unknown"] += 1
            log.warning("world: cannot retire %r: not in the world", pid)
            return
        if part.unit:
            self._parts[part.unit].members.remove(pid)
        gone = [part] + [self._parts[m] for m in part.members]
        self._unbody(gone)
        for g in gone:
            del self._parts[g.id]
            self._emit(WorldEventKind.RETIRED, g, "retired", "")
        ids = {g.id for g in gone}
        for sensor, seen in self._sensors.items():
            if seen in ids:
                self._sensors[sensor] = ""

    def _unbody(self, gone: Sequence[Part]) -> None:
        """Take the parts of a unit leaving the world out of physics: out of any gripper, their
        joints and bodies removed."""
        cid = self.client
        for g in gone:
            if g.held_by:
                arm = self.arms[g.held_by]
                p.removeConstraint(arm.grasp, physicsClientId=cid)
                arm.grasp, arm.holding, arm.closed = -1, "", False
            if g.joint >= 0:
                p.removeConstraint(g.joint, physicsClientId=cid)
        for g in gone:
            p.removeBody(g.body, physicsClientId=cid)
            self._settling.pop(g.id, None)
            self._groups.drop(g.id)

    def _record(self, robot: str, what: str, target: str, *, ok: bool | None = None) -> None:
        rec: dict[str, Any] = {"t_ns": self._t_ns, "robot": robot, "act": what, "target": target}
        if ok is not None:
            rec["ok"] = ok
        self.records.append(rec)

    def take_records(self) -> list[dict[str, Any]]:
        """The arms' records since the last call (``records``)."""
        out, self.records = self.records, []
        return out

    # ------------------------------------------------------------ once per tick

    def _after_tick(self) -> None:
        self._settle()
        if self._ticks % AUDIT_TICKS == 0:
            self._audit()
        self._feed()
        self._sense()

    def _audit(self) -> None:
        """Re-locate free parts at rest that are no longer where they were recorded.

        A part can move without a grasp: pushed up onto the part ahead in a belt
        queue, it rides away on it. The ledger must follow the physics, so such
        a part is reported SETTLED at its real location.
        """
        for pid in sorted(self._parts):
            part = self._parts[pid]
            if part.unit or part.held_by or pid in self._settling:
                continue
            pos, _orn = self._pose(part)
            where, base = self._where(part, pos)
            if base is not None or where == part.location:
                continue
            (vx, vy, vz), _ = p.getBaseVelocity(part.body, physicsClientId=self.client)
            if (
                where.startswith("conveyor:")
                or math.sqrt(vx * vx + vy * vy + vz * vz) < SETTLE_SPEED
            ):
                log.info("world: %s found at %s, not %s", pid, where, part.location)
                part.location = where
                self._emit(WorldEventKind.SETTLED, part, where, "", rest=True)

    def _settle(self) -> None:
        """Classify released parts that came to rest (or fell for too long)."""
        for pid in sorted(self._settling):
            part = self._parts[pid]
            since, calm = self._settling[pid]
            (vx, vy, vz), _ = p.getBaseVelocity(part.body, physicsClientId=self.client)
            speed = math.sqrt(vx * vx + vy * vy + vz * vz)
            if speed >= SETTLE_SPEED:
                pos, _orn = self._pose(part)
                for belt in self.conveyors.values():
                    if belt.on_belt(part, pos):
                        bx, by = belt.velocity
                        speed = math.sqrt((vx - bx) ** 2 + (vy - by) ** 2 + vz * vz)
                        break
            calm = calm + 1 if speed < SETTLE_SPEED else 0
            self._settling[pid][1] = calm
            if calm < SETTLE_TICKS and self._t_ns - since < SETTLE_MAX_NS:
                continue
            del self._settling[pid]
            pos, _orn = self._pose(part)
            where, base = self._where(part, pos)
            if base is not None:
                self._attach(part, base)
            else:
                if where == "floor":
                    log.info("world: %s came to rest off every station at %s", pid, _fmt(pos))
                part.location = where
                self._emit(WorldEventKind.SETTLED, part, where, "", rest=True)

    def _where(self, part: Part, pos: Vec3) -> tuple[str, Part | None]:
        """The ledger location of ``part`` resting at ``pos``, and the unit base it rests on."""
        if part.kind.name not in self._base_kinds:
            base = self._base_under(part, pos)
            if base is not None:
                return f"unit:{base.id}", base
        for prefix, holders in (
            ("fixture", self.fixtures),
            ("stand", self.stands),
            ("mount", self.mounts),
        ):
            for name, holder in holders.items():
                if holder.holds(part, pos):
                    return f"{prefix}:{name}", None
        for name, belt in self.conveyors.items():
            if belt.on_belt(part, pos):
                return f"conveyor:{name}", None
        for name, tray in self.trays.items():
            if tray.holds(part, pos):
                return f"feeder:{name}", None
        return "floor", None

    def _base_under(self, part: Part, pos: Vec3) -> Part | None:
        """The unit base ``part`` rests on: on the base itself or on a part joined to it (a
        stack), its centre over that part's footprint and its bottom just above its top."""
        bottom = pos[2] - part.half[2]
        for bid in sorted(self._parts):
            base = self._parts[bid]
            if base.kind.name not in self._base_kinds or base is part or base.unit:
                continue
            for below in (base, *(self._parts[m] for m in base.members)):
                (bx, by, bz), born = self._pose(below)
                hx, hy, hz = below.half
                a, c = to_frame(pos[0], pos[1], bx, by, quat_yaw(born))
                if abs(a) > hx or abs(c) > hy:
                    continue
                if ON_UNIT_Z[0] <= bottom - (bz + hz) <= ON_UNIT_Z[1]:
                    return base
        return None

    def _free(self) -> list[Placed]:
        """Parts not joined to a unit, with their poses, in id order."""
        out: list[Placed] = []
        for pid in sorted(self._parts):
            part = self._parts[pid]
            if not part.unit:
                pos, orn = self._pose(part)
                out.append((part, pos, orn))
        return out

    def _feed(self) -> None:
        """Let every feeder make a part if it is due and there is room."""
        self._feeders.feed(self._t_ns, self._free(), self._spawn_fed)

    def _spawn_fed(self, spec: FeederSpec, pos: Vec3, yaw: float, where: str) -> Placed:
        part = self._spawn(spec.part, pos, yaw, spec.name, where)
        self._emit(WorldEventKind.SPAWNED, part, where, "")
        return (part, *self._pose(part))

    def _sense(self) -> None:
        """Read every presence sensor; a part newly at a belt's end has ARRIVED."""
        free = self._free()
        readings: dict[str, str] = {}
        for name, belt in self.conveyors.items():
            sensor, seen = f"{name}.end", belt.end_sensor(free)
            belt.accumulate(seen, free)
            readings[sensor] = seen
            if seen and self._sensors.get(sensor) != seen:
                self._emit(WorldEventKind.ARRIVED, self._parts[seen], f"conveyor:{name}", "")
        for name, fx in self.fixtures.items():
            readings[name] = fx.sensor(free)
        for name, tray in self.trays.items():
            readings[name] = tray.sensor(free)
        for holders in (self.stands, self.mounts):
            for name, holder in holders.items():
                readings[name] = holder.sensor(free)
        self._sensors = readings
        dark = self._dark() if self._blackouts else set()
        for sensor in readings:
            if sensor not in dark:
                self._heard[sensor] = self._t_ns
        self._view = tuple((s, pid) for s, pid in sorted(readings.items()) if s not in dark)

    # ------------------------------------------------------------ helpers

    def _spawn(self, kind: str, pos: Vec3, yaw: float, feeder: str, location: str) -> Part:
        assert self._factory is not None, "World.setup() was not called"
        k = self.cell.part_kind(kind)
        pid = self._factory.next_id(kind)
        body = self._factory.body(k, pos, yaw)
        part = Part(id=pid, kind=k, body=body, location=location, feeder=feeder)
        self._parts[pid] = part
        return part

    def _pose(self, part: Part) -> tuple[Vec3, Quat]:
        pos, orn = p.getBasePositionAndOrientation(part.body, physicsClientId=self.client)
        return (pos[0], pos[1], pos[2]), (orn[0], orn[1], orn[2], orn[3])

    def _emit(
        self, kind: WorldEventKind, part: Part, location: str, other: str, *, rest: bool = False
    ) -> None:
        """Queue an event for the supervisor; ``rest`` adds how the part lies (``_lies``)."""
        pose, touching, blocked = self._lies(part) if rest else (None, (), False)
        ev = WorldEvent(
            self._t_ns, kind, part.id, part.kind.name, location, other, pose, touching, blocked
        )
        log.debug("world: %s", ev)
        self._events.append(ev)

    def _lies(self, part: Part) -> tuple[PartPose, tuple[str, ...], bool]:
        """How a part at rest lies: its pose, the parts it touches, whether it is blocked.

        (``sim.parts.lies``; rare enough, once per part coming to rest, to build the map here.)
        """
        pos, orn = self._pose(part)
        pose = PartPose(part.id, part.kind.name, *pos, *orn)
        bodies = {pt.body: pid for pid, pt in self._parts.items()}
        touching, blocked = lies(self.client, part, (pos, orn), bodies)
        return pose, touching, blocked


def _fmt(v: Vec3) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"


__all__ = ["World"]
