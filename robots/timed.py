"""Timed plans: an agent's motions at events fidelity, from the calibration.

At events fidelity (``sim.events``) no arm has a pose, so an operation cannot
be planned by IK. The agent runs the same skills, PackML machine and bids;
only the legs of its plans change: each move is a stand-still of the length
physics took for it, so the skill's looks, grasp, release, fasten and inspect
happen at the sim times they happened in physics.

A plan's moves come from the calibration (``lightsout calibrate``,
``docs/calibration.md``) of this robot, recipe step and stations: the whole
operation's duration is drawn from the measured samples (``draw`` in [0, 1),
the agent's seeded draw for the attempt), and the grasp and the release fall
where their measured mean times put them, scaled to the drawn duration. The
legs' fixed parts (looks, the grasp's and release's confirmation ticks, the
release's pause, the inspection's dwell) are the skill's own and are taken
off, so that the operation as the supervisor logs it lasts what was drawn.
A robot running slower than it was measured at (a slow_robot fault, creep)
stretches its moves by the ratio of the speeds.

A bid promises the median of what this robot's bids promised in physics from
where this operation will start (the station the arm's last operation ended
at: ``bid_by_start``): a physics bid is the IK plan's length, not what the
operation then takes, and allocation follows the promises. With no bids
measured, it promises the mean duration from that start. An operation the calibration never saw for this
robot borrows, in order, the same step and stations done by another robot
(scaled by the speeds), the same step at other stations, the same skill; with
none, the robot cannot price it and declines (``PlanError``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bus.cellspec import MODEL_HOME, CellSpec, OpTiming, Pose, RobotSpec, start_key
from bus.enums import ExecStep, Skill
from bus.errors import PlanError
from bus.messages import Operation
from bus.simtime import NS
from robots.motion import Q
from robots.plans import (
    GRASP_S,
    INSPECT_DWELL_S,
    RELEASE_S,
    Leg,
    LegKind,
    Plan,
    release_aim,
)

BID_DRAW = 0.5
"""Which of the physics bids from a start a bid promises: the median."""
PICK_TICKS_BEFORE_GRASP = 3
"""Ticks of a pick before its grasp that are not motion: two looks until the part is still,
one more from above it."""
PICK_TICKS_GRASP_TO_RELEASE = 3
"""Ticks between grasp and the part at rest that are not motion: the grasp seen held, and
the two ticks a released part takes to come to rest."""
FASTEN_TICKS = 2
"""Ticks of a fasten that are not motion: one look, the fastening."""
INSPECT_TICKS = 0
"""Ticks of an inspection besides its motion and dwell (measured: the look and the answer
overlap the dwell's rounding)."""


class TimedPlanner:
    """A robot's planner at events fidelity: the calibration's times, no kinematics."""

    def __init__(self, cell: CellSpec, spec: RobotSpec) -> None:
        if cell.calibration is None:
            raise PlanError("events fidelity needs a calibration")
        self.cell = cell
        self.spec = spec
        self.home: Q = MODEL_HOME[spec.model]
        self.tick_ns = cell.tick_ns
        self._by_key: dict[tuple[str, str, str, str], OpTiming] = {}
        self._by_step: dict[tuple[str, str], list[OpTiming]] = {}
        self._by_skill: dict[tuple[str, str], list[OpTiming]] = {}
        for t in cell.calibration.timings:
            self._by_key[(t.robot, t.op, t.src, t.dst)] = t
            self._by_step.setdefault((t.robot, t.op), []).append(t)
            self._by_step.setdefault(("", t.op), []).append(t)
            self._by_skill.setdefault((t.robot, t.skill), []).append(t)
            self._by_skill.setdefault(("", t.skill), []).append(t)
        self._found: dict[tuple[str, str, str], OpTiming | None] = {}
        self.ended_at = "home"
        """Where the arm's last operation left it (times depend on where an operation starts)."""
        self.ended_step = ""
        """The same, finer (``start_key``: the step that left it there); "" at home."""

    def setup(self) -> None:
        """Nothing to build."""

    def close(self) -> None:
        """Nothing to free."""

    def homed(self) -> None:
        """The arm went home (a reset): the next operation starts there."""
        self.ended_at, self.ended_step = "home", ""

    # ------------------------------------------------------------ timings

    def timing(self, op: Operation) -> OpTiming:
        """The calibrated timing ``op`` is run with (PlanError if there is none)."""
        src = op.src or op.at
        if op.pick is not None:
            src = "recovery:floor"
        dst = op.dst if op.skill is Skill.PICK_PLACE else ""
        key = (op.name, src, dst)
        if key not in self._found:
            self._found[key] = self._lookup(op, src, dst)
        found = self._found[key]
        if found is None:
            raise PlanError(f"no calibrated time for {op.name} ({src}->{dst}) or its skill")
        return found

    def _lookup(self, op: Operation, src: str, dst: str) -> OpTiming | None:
        me = self.spec.name
        exact = self._by_key.get((me, op.name, src, dst))
        if exact is not None:
            return exact
        for robot in ("",):
            same = [
                t for t in self._by_step.get((robot, op.name), ()) if (t.src, t.dst) == (src, dst)
            ]
            if same:
                return max(same, key=lambda t: len(t.samples))
        for pool in (
            self._by_step.get((me, op.name), []),
            self._by_step.get(("", op.name), []),
            self._by_skill.get((me, op.skill.value), []),
            self._by_skill.get(("", op.skill.value), []),
        ):
            if pool:
                return max(pool, key=lambda t: (len(t.samples), t.robot, t.src, t.dst))
        return None

    # ------------------------------------------------------------ plans

    def estimate(self, op: Operation, start_q: Sequence[float], speed: float) -> tuple[int, Q]:
        """A bid's promise: the median of the physics bids from where the arm stands (an IK
        plan from one start to one step is one plan, so the same robot bids the same again,
        as in physics, and only a robot that slowed bids longer: ``supervisor.health``)."""
        t = self.timing(op)
        plan = self._plan(op, t, t.promise(self.ended_at, BID_DRAW, step=self.ended_step), speed)
        return plan.duration_ns(speed, self.tick_ns), tuple(start_q)

    def plan(
        self,
        op: Operation,
        start_q: Sequence[float],
        part: Pose,
        unit: Pose | None,
        *,
        tilt: float = 0.0,
        speed: float,
        draw: float = 0.5,
    ) -> Plan:
        """The plan that runs ``op`` with a duration drawn from its samples (``draw``)."""
        t = self.timing(op)
        xs = t.from_start(self.ended_at, step=self.ended_step)
        self.ended_at = (op.dst if op.skill is Skill.PICK_PLACE else op.at) or "home"
        self.ended_step = start_key(op.name, self.ended_at) if self.ended_at != "home" else ""
        i = min(len(xs) - 1, max(0, math.floor(draw * len(xs))))
        return self._plan(op, t, xs[i], speed, start_q=tuple(start_q))

    def _plan(
        self, op: Operation, t: OpTiming, duration_s: float, speed: float, start_q: Q = ()
    ) -> Plan:
        q = start_q or self.home
        stretch = t.speed / speed if speed > 0 else 1.0
        tick = self.tick_ns / NS

        def ticks(seconds: float, fixed: int = 0) -> float:
            """A stretch of motion as whole ticks (at least one), after ``fixed`` ticks off."""
            n = max(1, round(seconds / tick) - fixed)
            return max(1, round(n * stretch)) * tick

        def wait(step: ExecStep, seconds: float, carrying: str = "") -> Leg:
            return Leg(LegKind.MOVE, step, (q,), min_s=seconds, carrying=carrying)

        if op.skill is Skill.PICK_PLACE:
            mean = t.mean_s or duration_s
            share = duration_s / mean if mean > 0 else 1.0
            grasp = (t.grasp_s or 0.35 * mean) * share
            release = (t.release_s or 0.8 * mean) * share
            before = ticks(grasp, PICK_TICKS_BEFORE_GRASP)
            carry = ticks(release - grasp, PICK_TICKS_GRASP_TO_RELEASE)
            hold = math.ceil(RELEASE_S / tick)
            after = ticks(duration_s - release, hold - 1)
            pick, put = ExecStep.PICK, ExecStep.PLACE
            first = round(before / tick * 0.75) * tick or tick
            legs: tuple[Leg, ...] = (
                wait(pick, first),
                wait(pick, max(tick, before - first)),
                Leg(LegKind.GRASP, pick, hold_s=GRASP_S, target=op.part),
                wait(pick, carry * 0.3, carrying=op.part),
                wait(put, carry - carry * 0.3, carrying=op.part),
                Leg(LegKind.RELEASE, put, hold_s=RELEASE_S, target=op.part, aim=release_aim(op)),
                wait(put, after),
            )
            return Plan(legs, q, q, PICK_TICKS_BEFORE_GRASP)
        if op.skill is Skill.FASTEN:
            moves = ticks(duration_s, FASTEN_TICKS)
            n = round(moves / tick)
            a, b = max(1, round(n * 0.25)), max(1, round(n * 0.6))
            legs = (
                wait(ExecStep.FASTEN, a * tick),
                wait(ExecStep.FASTEN, b * tick),
                Leg(LegKind.FASTEN, ExecStep.FASTEN, target=op.unit),
                wait(ExecStep.FASTEN, max(1, n - a - b) * tick),
            )
            return Plan(legs, q, q, 1)
        dwell = math.ceil(INSPECT_DWELL_S / tick)
        legs = (
            wait(ExecStep.INSPECT, ticks(duration_s, INSPECT_TICKS + dwell)),
            Leg(LegKind.INSPECT, ExecStep.INSPECT, hold_s=INSPECT_DWELL_S, target=op.unit),
        )
        return Plan(legs, q, q, 1)


__all__ = ["TimedPlanner"]
