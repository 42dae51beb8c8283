"""Skills: an operation run tick by tick as a generator, in the Execute sub-states.

A skill is a generator that yields what it wants the world to do this tick (a
``Want``) and is sent the next tick's ``RobotSense``; it returns an
``Outcome`` when done and raises ``SkillFailed`` or ``PlanError`` when it
cannot finish. Written this way a skill reads top to bottom like the
operation it performs (look, plan, approach, grasp, ...), and pausing it for
Hold is just not stepping it (``SkillRun.pause`` / ``resume`` shift its
motion in time).

Every check counts ticks, never wall time, and a question to the world that
went unanswered (because a Hold came in between) is simply asked again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Generator

from bus.cellspec import GRASP_TILT_MAX, CellSpec, Pose, RobotSpec
from bus.enums import ExecStep, Grip, Skill
from bus.messages import Inspection, Operation, PartPose, RobotSense
from bus.simtime import NS
from robots.errors import SkillFailed
from robots.kinematics import wrap
from robots.motion import Q, Trajectory
from robots.plans import Leg, LegKind, Plan, Planner, part_pose, station_pose

log = logging.getLogger(__name__)

ASK_TRIES = 3
"""Ticks a question to the world (observe, inspect) is asked before giving up."""
UNIT_AT_STATION_M = 0.05
"""A unit seen further than this from the station an operation names is not where it should be."""
PART_AT_SOURCE_M = 0.12
"""A part seen further than this from the station it is to be picked at is not there: the
operation fails rather than fetch it from wherever it is (it may already be in place)."""
STILL_M = 0.002
"""A part whose looks differ by less than this is at rest (and has not moved since planning)."""
STILL_TRIES = 72
"""Looks (ticks) spent waiting for a part to come to rest before planning anyway."""
SETTLE_TICKS = 2
"""Extra ticks a grasp or release may take to show in ``RobotSense.holding``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Want:
    """What a skill asks for this tick; ``q=None`` keeps the last joint target."""

    q: Q | None = None
    grip: Grip = Grip.NONE
    observe: tuple[str, ...] = ()
    fasten: str = ""
    inspect: str = ""
    aim: str = ""
    """Where the tool works (``RobotAct.aim``): the part a grasp takes, where a release puts it."""
    wake_ns: int = 0
    """The program needs no step before this sim time unless the gripper's hold changes
    (the event clock's lookahead; 0: the next tick)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """A finished operation: what was done and, for inspect, what was seen."""

    detail: str
    inspection: Inspection | None = None


Program = Generator[Want, RobotSense, Outcome]


class SkillContext:
    """What a running skill may use: the cell, the arm's model and the clock.

    The agent owns it; ``now`` is the sim time of the tick being stepped and
    ``q`` the joint target last sent (where the arm is by the end of the tick
    before), which is where every new motion starts.
    """

    def __init__(
        self,
        cell: CellSpec,
        spec: RobotSpec,
        planner: Planner,
        *,
        q: Q,
        enter: Callable[[ExecStep], None],
        draw: float = 0.5,
    ) -> None:
        self.cell = cell
        self.spec = spec
        self.planner = planner
        self.draw = draw
        """The attempt's seeded draw in [0, 1): which calibrated duration a timed plan takes."""
        self.tick_ns = cell.tick_ns
        self.q = q
        self.now = 0
        self.enter = enter
        self.motion: Trajectory | None = None
        self.plan: Plan | None = None


class SkillRun:
    """One operation being executed: steps its program, pauses and resumes it."""

    def __init__(self, op: Operation, ctx: SkillContext) -> None:
        self.op = op
        self.ctx = ctx
        self._program = program_for(op, ctx)
        self._started = False
        self._paused_at: int | None = None

    @property
    def paused(self) -> bool:
        """Whether the run is frozen by a Hold or Suspend."""
        return self._paused_at is not None

    def advance(self, now: int, sense: RobotSense) -> Want | Outcome:
        """Step the program for the tick at ``now``; the ``Outcome`` once it has finished.

        Raises ``SkillFailed`` or ``PlanError`` when the operation cannot finish.
        """
        self.ctx.now = now
        try:
            if not self._started:
                self._started = True
                want = next(self._program)
            else:
                want = self._program.send(sense)
        except StopIteration as stop:
            outcome: Outcome = stop.value
            return outcome
        if want.q is not None:
            self.ctx.q = want.q
        return want

    def pause(self, now: int) -> None:
        """Freeze: the arm stands where it was last sent; the program is not stepped."""
        if self._paused_at is None:
            self._paused_at = now
            if self.ctx.motion is not None:
                self.ctx.motion.pause(now)

    def resume(self, now: int) -> int:
        """Go on from where it froze, shifting the motion's rest; return the pause length (ns)."""
        if self._paused_at is None:
            return 0
        if self.ctx.motion is not None:
            self.ctx.motion.resume(now)
        paused, self._paused_at = max(0, now - self._paused_at), None
        return paused

    def close(self) -> None:
        """Abandon the program (Stop, Abort)."""
        self._program.close()


# ---------------------------------------------------------------- programs


def program_for(op: Operation, ctx: SkillContext) -> Program:
    """The program that runs ``op``."""
    if op.skill is Skill.PICK_PLACE:
        return pick_place(op, ctx)
    if op.skill is Skill.FASTEN:
        return fasten(op, ctx)
    return inspect(op, ctx)


def pick_place(op: Operation, ctx: SkillContext) -> Program:
    """Look where the part (and the unit to put it on) is, then pick it and place it.

    A part that has just arrived may still be sliding to the conveyor's stop:
    the skill waits until two looks agree before planning, and looks once more
    from above the part, planning again if it has moved since. The pick is
    planned where the part is seen, so a recovery (``op.pick``: the part fell)
    runs the same way from wherever it lies, unless it lies too askew to grasp.
    """
    ctx.enter(ExecStep.PICK)
    names = (op.part, op.unit) if op.onto_unit and op.unit != op.part else (op.part,)
    seen = yield from observe_still(ctx, names)
    unit = part_pose(seen[op.unit]) if op.onto_unit else None
    if unit is not None:
        _check_at(ctx, op.unit, unit, op.dst)
    tilt = _graspable(op.part, seen[op.part])
    part = part_pose(seen[op.part])
    # the part must be where the operation says (its station, or where a recovery found it)
    expected = station_pose(ctx.cell, op.src) if op.src else part_pose(op.pick) if op.pick else None
    off = part.distance_xy(expected) if expected is not None else 0.0
    if off > PART_AT_SOURCE_M:
        raise SkillFailed(f"{op.part} is not at {op.src or 'where it fell'} ({off:.2f} m away)")
    plan = _plan(ctx, op, part, unit, tilt)
    yield from run_legs(ctx, plan.legs[:1])
    again = yield from observe(ctx, (op.part,))
    now = part_pose(again[op.part])
    if _moved(now, part) > STILL_M:
        log.debug(
            "%s: %s moved %.1f mm; planning again", ctx.spec.name, op.part, _moved(now, part) * 1e3
        )
        tilt = _graspable(op.part, again[op.part])
        plan = _plan(ctx, op, now, unit, tilt)
        yield from run_plan(ctx, plan)
    else:
        yield from run_legs(ctx, plan.legs[1:])
    where = f"unit {op.unit} at {op.dst}" if op.onto_unit else op.dst
    src = op.src or f"where it lay ({part.x:.3f}, {part.y:.3f}, {part.z:.3f})"
    return Outcome(f"{op.part} moved from {src} to {where}")


def fasten(op: Operation, ctx: SkillContext) -> Program:
    """Look where the unit is, then drive its screws."""
    ctx.enter(ExecStep.FASTEN)
    seen = yield from observe(ctx, (op.unit,))
    unit = _check_at(ctx, op.unit, part_pose(seen[op.unit]), op.at)
    yield from run_plan(ctx, _plan(ctx, op, unit, None))
    return Outcome(f"unit {op.unit} fastened at {op.at}")


def inspect(op: Operation, ctx: SkillContext) -> Program:
    """Look where the unit is, hover over it and report what the camera sees."""
    ctx.enter(ExecStep.INSPECT)
    seen = yield from observe(ctx, (op.unit,))
    unit = _check_at(ctx, op.unit, part_pose(seen[op.unit]), op.at)
    found = yield from run_plan(ctx, _plan(ctx, op, unit, None))
    return Outcome(f"unit {op.unit} inspected at {op.at}", found)


# ---------------------------------------------------------------- building blocks


def _plan(
    ctx: SkillContext, op: Operation, part: Pose, unit: Pose | None, tilt: float = 0.0
) -> Plan:
    """Plan ``op`` from the arm's pose now with the robot's planner (IK, or calibrated times)."""
    return ctx.planner.plan(op, ctx.q, part, unit, tilt=tilt, speed=ctx.spec.speed, draw=ctx.draw)


def _check_at(ctx: SkillContext, unit: str, pose: Pose, station: str) -> Pose:
    """The unit must be where the operation says: a unit elsewhere is not this op's unit."""
    where = station_pose(ctx.cell, station)
    off = pose.distance_xy(where)
    if off > UNIT_AT_STATION_M:
        raise SkillFailed(f"unit {unit} is not at {station} ({off:.2f} m away)")
    return pose


def observe(
    ctx: SkillContext, names: tuple[str, ...]
) -> Generator[Want, RobotSense, dict[str, PartPose]]:
    """Ask the world where ``names`` are; the answer comes in the next tick's ``seen``."""
    missing: list[str] = list(names)
    for _ in range(ASK_TRIES):
        sense = yield Want(observe=names)
        seen = {pp.part: pp for pp in sense.seen}
        missing = [n for n in names if n not in seen]
        if not missing:
            return seen
    raise SkillFailed(f"{', '.join(missing)} not seen")


def observe_still(
    ctx: SkillContext, names: tuple[str, ...]
) -> Generator[Want, RobotSense, dict[str, PartPose]]:
    """Look until two looks in a row agree (the parts are at rest), at most ``STILL_TRIES``."""
    last = yield from observe(ctx, names)
    for _ in range(STILL_TRIES):
        seen = yield from observe(ctx, names)
        if all(_moved(part_pose(seen[n]), part_pose(last[n])) <= STILL_M for n in names):
            return seen
        last = seen
    log.debug("%s: %s still moving; going on", ctx.spec.name, ", ".join(names))
    return last


def _graspable(part: str, seen: PartPose) -> float:
    """The tilt of a part about to be picked; SkillFailed if it lies too askew to grasp."""
    tilt = seen.tilt
    if tilt > GRASP_TILT_MAX:
        raise SkillFailed(f"{part} lies {math.degrees(tilt):.0f} degrees from flat: cannot grasp")
    return tilt


def _moved(a: Pose, b: Pose) -> float:
    """How far apart two poses of a part are: metres, with a degree of turn counted as 1 mm."""
    turn = abs(wrap(a.yaw - b.yaw))
    return math.dist((a.x, a.y, a.z), (b.x, b.y, b.z)) + math.degrees(turn) * 0.001


def run_plan(ctx: SkillContext, plan: Plan) -> Generator[Want, RobotSense, Inspection | None]:
    """Execute every leg of ``plan``; return the inspection if the plan had one."""
    ctx.plan = plan
    return (yield from run_legs(ctx, plan.legs))


def run_legs(
    ctx: SkillContext, legs: tuple[Leg, ...]
) -> Generator[Want, RobotSense, Inspection | None]:
    """Execute ``legs`` in order; return the inspection if one of them was an inspect."""
    found: Inspection | None = None
    for leg in legs:
        ctx.enter(leg.step)
        if leg.kind is LegKind.MOVE:
            yield from _move(ctx, leg)
        elif leg.kind is LegKind.GRASP:
            yield from _grasp(ctx, leg)
        elif leg.kind is LegKind.RELEASE:
            yield from _release(ctx, leg)
        elif leg.kind is LegKind.FASTEN:
            yield Want(fasten=leg.target)
        elif leg.kind is LegKind.INSPECT:
            found = yield from _inspect(ctx, leg)
    return found


def _follow(
    ctx: SkillContext, traj: Trajectory, carrying: str
) -> Generator[Want, RobotSense, None]:
    """Send the trajectory's pose for the end of each tick until it is done."""
    ctx.motion = traj
    try:
        while True:
            sense = yield Want(q=traj.at(ctx.now + ctx.tick_ns), wake_ns=traj.end_ns)
            if carrying and sense.holding != carrying:
                raise SkillFailed(f"dropped {carrying}: gripper holds {sense.holding or 'nothing'}")
            if traj.done(ctx.now):
                return
    finally:
        ctx.motion = None


def _move(ctx: SkillContext, leg: Leg) -> Generator[Want, RobotSense, None]:
    traj = Trajectory.through(ctx.now, ctx.q, leg.waypoints, speed=ctx.spec.speed, min_s=leg.min_s)
    yield from _follow(ctx, traj, leg.carrying)


def _still(
    ctx: SkillContext, seconds: float, carrying: str = ""
) -> Generator[Want, RobotSense, None]:
    """Stand still for ``seconds`` of sim time (pauses stretch it)."""
    traj = Trajectory(ctx.now, ctx.q)
    traj.wait(seconds)
    yield from _follow(ctx, traj, carrying)


def _ticks(ctx: SkillContext, seconds: float) -> int:
    return max(1, round(seconds * NS / ctx.tick_ns))


def _grasp(ctx: SkillContext, leg: Leg) -> Generator[Want, RobotSense, None]:
    """Close on the part and wait, standing still, until the world says it is held."""
    sense = yield Want(grip=Grip.GRASP, aim=leg.target)
    # looked at every tick until ``last`` (or until the hold changes, under the event clock)
    last = ctx.now + (_ticks(ctx, leg.hold_s) + SETTLE_TICKS) * ctx.tick_ns
    while sense.holding != leg.target:
        if ctx.now >= last:
            break
        sense = yield Want(wake_ns=last)
    if sense.holding == leg.target:
        return
    held = f"holding {sense.holding}" if sense.holding else "nothing in the gripper"
    raise SkillFailed(f"grasp missed: {held}, wanted {leg.target}")


def _release(ctx: SkillContext, leg: Leg) -> Generator[Want, RobotSense, None]:
    """Open, wait until the part is let go, then give it a moment to settle."""
    sense = yield Want(grip=Grip.RELEASE, aim=leg.aim)
    last = ctx.now + SETTLE_TICKS * ctx.tick_ns
    while sense.holding == leg.target and ctx.now < last:
        sense = yield Want(wake_ns=last)
    if sense.holding == leg.target:
        raise SkillFailed(f"release failed: still holding {leg.target}")
    yield from _still(ctx, leg.hold_s)


def _inspect(ctx: SkillContext, leg: Leg) -> Generator[Want, RobotSense, Inspection]:
    """Look for ``hold_s``, then ask the world what is on the unit (again if unanswered)."""
    yield from _still(ctx, leg.hold_s)
    for _ in range(ASK_TRIES):
        sense = yield Want(inspect=leg.target)
        if sense.inspection is not None and sense.inspection.unit == leg.target:
            return sense.inspection
    raise SkillFailed(f"no inspection of unit {leg.target} from the world")
