"""Plans: an operation turned into legs of joint waypoints, with IK once per waypoint.

Planning is pure geometry: it takes where the parts are (observed, or assumed
from the station table when bidding), solves IK for each waypoint once, seeded
with the previous one so the arm stays on one branch, and returns a ``Plan``
of legs that ``robots.skills`` executes tick by tick. The same planner prices
a bid: ``Plan.duration_ns`` is what the robot promises in ``Bid.finish_ns``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from collections.abc import Sequence
from typing import Protocol

from bus.cellspec import CellSpec, Pose, RobotSpec
from bus.enums import ExecStep, Skill
from bus.errors import PlanError
from bus.messages import Operation, PartPose
from bus.simtime import NS
from robots.kinematics import Kinematics, wrap
from robots.motion import MIN_SEGMENT_S, Q, move_ns

log = logging.getLogger(__name__)

APPROACH_M = 0.12
"""Height of the approach and retreat poses over a grasp or place pose."""
CLEARANCE_M = 0.002
"""A placed part is let go this far above where its bottom face will rest."""
FASTEN_HOVER_M = 0.03
"""Height of the screwdriver over the unit's top while fastening."""
SCREW_S = 0.6
"""Each move between screw points takes at least this long (driving a screw)."""
SCREWS = ((0.4, 0.35), (-0.4, 0.35), (-0.4, -0.35), (0.4, -0.35))
"""Screw points as fractions of the unit base's length and width, in its frame."""
INSPECT_HOVER_M = 0.2
"""Height of the camera (the tool) over the unit's top while inspecting."""
INSPECT_DWELL_S = 0.5
"""How long the camera looks before asking the world what it sees."""
GRASP_S = 0.15
"""How long the gripper closes (standing still) before the grasp must show."""
RELEASE_S = 0.15
"""How long the gripper opens (standing still) before retreating."""
FLAT_RAD = math.radians(1.0)
"""A part lying within this of flat is put down as if flat: its lowest corner hangs less
than the release clearance's worth (1.5 mm for a frame) below its bottom face."""
LOOK_TICKS = {Skill.PICK_PLACE: 3, Skill.FASTEN: 1, Skill.INSPECT: 1}
"""Ticks each skill spends looking at the world when nothing moves: pick_place looks
twice before planning (is the part still?) and once more above the part."""


class LegKind(enum.StrEnum):
    """What a leg of a plan does."""

    MOVE = "move"
    """Follow joint waypoints."""
    GRASP = "grasp"
    """Close the gripper on ``target`` and check it is held."""
    RELEASE = "release"
    """Open the gripper and check ``target`` is let go."""
    FASTEN = "fasten"
    """Ask the world to fasten unit ``target``."""
    INSPECT = "inspect"
    """Look at unit ``target`` for ``hold_s`` and ask the world what it holds."""


@dataclasses.dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a plan; ``step`` is the Execute sub-state while it runs."""

    kind: LegKind
    step: ExecStep
    waypoints: tuple[Q, ...] = ()
    min_s: float = MIN_SEGMENT_S
    hold_s: float = 0.0
    target: str = ""
    carrying: str = ""
    """A part that must stay in the gripper during this leg (else it was dropped)."""
    aim: str = ""
    """Where a release puts the part: the destination station, or ``unit:ID`` (``RobotAct.aim``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The legs of one operation and the arm pose it ends in; ``looks`` counts observe ticks."""

    legs: tuple[Leg, ...]
    start_q: Q
    end_q: Q
    looks: int = 1

    def duration_ns(self, speed: float, tick_ns: int) -> int:
        """How long the plan takes at ``speed``, looking included (a bid's estimate)."""
        total = self.looks * tick_ns
        q = self.start_q
        for leg in self.legs:
            for w in leg.waypoints:
                total += move_ns(q, w, speed, leg.min_s)
                q = w
            if leg.kind in (LegKind.GRASP, LegKind.RELEASE, LegKind.INSPECT):
                total += round(leg.hold_s * NS) + tick_ns
            elif leg.kind is LegKind.FASTEN:
                total += tick_ns
        return total


def part_pose(pp: PartPose) -> Pose:
    """A seen part as a ``Pose`` of its centre and its yaw (from the quaternion)."""
    yaw = math.atan2(2.0 * (pp.qw * pp.qz + pp.qx * pp.qy), 1.0 - 2.0 * (pp.qy**2 + pp.qz**2))
    return Pose(pp.x, pp.y, pp.z, yaw)


def station_pose(cell: CellSpec, name: str) -> Pose:
    """The pose of station ``name``; its z is the surface parts rest on."""
    station = cell.stations().get(name)
    if station is None:
        raise PlanError(f"unknown station {name!r}")
    return station.pose


def resting(cell: CellSpec, kind: str, surface: Pose) -> Pose:
    """Where a part of ``kind`` resting on ``surface`` has its centre (for estimates)."""
    h = _kind_size(cell, kind)[2]
    return Pose(surface.x, surface.y, surface.z + h / 2, surface.yaw)


def assumed_poses(cell: CellSpec, op: Operation) -> tuple[Pose, Pose | None]:
    """The poses a bid assumes before looking: the part (or unit) and, if any, the unit.

    A recovery (``op.pick``) picks the part where the world last saw it at rest.
    """
    base = base_kind(cell, op)
    if op.skill is Skill.PICK_PLACE:
        if op.pick is not None:
            part = part_pose(op.pick)
        else:
            part = resting(cell, op.part_kind, station_pose(cell, op.src))
        unit = resting(cell, base, station_pose(cell, op.dst)) if op.onto_unit else None
        return part, unit
    return resting(cell, base, station_pose(cell, op.at)), None


def plan_op(
    kin: Kinematics,
    cell: CellSpec,
    op: Operation,
    start_q: Sequence[float],
    part: Pose,
    unit: Pose | None,
    *,
    tilt: float = 0.0,
) -> Plan:
    """Plan ``op`` from ``start_q``; ``part`` is the moved part's (or the unit's) centre pose.

    ``tilt`` is how far the moved part lies from flat (``PartPose.tilt``).
    """
    if op.skill is Skill.PICK_PLACE:
        return plan_pick_place(kin, cell, op, start_q, part, unit, tilt=tilt)
    if op.skill is Skill.FASTEN:
        return plan_fasten(kin, cell, op, start_q, part)
    if op.skill is Skill.INSPECT:
        return plan_inspect(kin, cell, op, start_q, part)
    raise PlanError(f"no planner for skill {op.skill!r}")


def plan_pick_place(
    kin: Kinematics,
    cell: CellSpec,
    op: Operation,
    start_q: Sequence[float],
    part: Pose,
    unit: Pose | None,
    *,
    tilt: float = 0.0,
) -> Plan:
    """Above the part, onto its top, grasp, lift, above the destination, place, release, retreat.

    The first leg ends above the part, so the skill can look once more before
    going down (``robots.skills.pick_place``). The part may lie anywhere the
    arm reaches (a recovery picks a fallen part off the floor); it is held as
    it lay, so a part lying ``tilt`` askew is let go higher by as much as its
    lowest corner hangs below its bottom face (``hang``).

    The tool's heading follows the part's at the grasp and the destination's
    at the place, so the part lands turned as the destination asks. A box is
    the same turned by half a turn, so if the wrist cannot make one heading
    the whole operation is tried again with both turned by pi.
    """
    h = _kind_size(cell, op.part_kind)[2]
    # a whole unit is taken by the top of what is stacked on its base (``grip_dz``)
    h_grip = h + op.grip_dz
    grasp = Pose(part.x, part.y, part.z + h / 2 + op.grip_dz, part.yaw)
    if op.onto_unit:
        if unit is None:
            raise PlanError(f"{op.op_id}: placing onto unit {op.unit!r} needs its pose")
        hb = _kind_size(cell, base_kind(cell, op))[2]
        c, s = math.cos(unit.yaw), math.sin(unit.yaw)
        bottom = (
            unit.x + c * op.dx - s * op.dy,
            unit.y + s * op.dx + c * op.dy,
            unit.z + hb / 2 + op.dz,
        )
        place = Pose(bottom[0], bottom[1], bottom[2] + h + CLEARANCE_M, unit.yaw)
    else:
        dst = station_pose(cell, op.dst)
        place = Pose(dst.x, dst.y, dst.z + h_grip + CLEARANCE_M, dst.yaw)
    lift = hang(_kind_size(cell, op.part_kind), tilt)
    place = Pose(place.x, place.y, place.z + lift, place.yaw)
    first: PlanError | None = None
    for flip in (0.0, math.pi):
        try:
            g = _turned(grasp, flip)
            pl = _turned(place, flip)
            q_above = kin.ik(_up(g, APPROACH_M), g.yaw, start_q)
            q_grasp = kin.ik(_xyz(g), g.yaw, q_above)
            q_over = kin.ik(_up(pl, APPROACH_M), pl.yaw, q_above)
            q_place = kin.ik(_xyz(pl), pl.yaw, q_over)
        except PlanError as exc:
            first = first or exc
            continue
        log.debug(
            "%s %s: grasp %s at (%.4f, %.4f, %.4f) yaw %.3f, place at (%.4f, %.4f, %.4f) yaw %.3f",
            kin.spec.name,
            op.op_id,
            op.part,
            g.x,
            g.y,
            g.z,
            g.yaw,
            pl.x,
            pl.y,
            pl.z,
            pl.yaw,
        )
        pick, put = ExecStep.PICK, ExecStep.PLACE
        legs = (
            Leg(LegKind.MOVE, pick, (q_above,)),
            Leg(LegKind.MOVE, pick, (q_grasp,)),
            Leg(LegKind.GRASP, pick, hold_s=GRASP_S, target=op.part),
            Leg(LegKind.MOVE, pick, (q_above,), carrying=op.part),
            Leg(LegKind.MOVE, put, (q_over, q_place), carrying=op.part),
            Leg(LegKind.RELEASE, put, hold_s=RELEASE_S, target=op.part, aim=release_aim(op)),
            Leg(LegKind.MOVE, put, (q_over,)),
        )
        return Plan(legs, tuple(start_q), q_over, LOOK_TICKS[Skill.PICK_PLACE])
    assert first is not None
    raise first


def plan_fasten(
    kin: Kinematics, cell: CellSpec, op: Operation, start_q: Sequence[float], unit: Pose
) -> Plan:
    """Above the unit, down near its top, visit the screw points, fasten, retreat."""
    sx, sy, hb = _kind_size(cell, base_kind(cell, op))
    top = Pose(unit.x, unit.y, unit.z + hb / 2, unit.yaw)
    c, s = math.cos(unit.yaw), math.sin(unit.yaw)
    hover = _up(top, FASTEN_HOVER_M)
    q_above = kin.ik(_up(top, APPROACH_M), top.yaw, start_q)
    q_hover = kin.ik(hover, top.yaw, q_above)
    screws: list[Q] = []
    seed = q_hover
    for fx, fy in SCREWS:
        lx, ly = fx * sx / 2, fy * sy / 2
        point = (hover[0] + c * lx - s * ly, hover[1] + s * lx + c * ly, hover[2])
        seed = kin.ik(point, top.yaw, seed)
        screws.append(seed)
    step = ExecStep.FASTEN
    legs = (
        Leg(LegKind.MOVE, step, (q_above, q_hover)),
        Leg(LegKind.MOVE, step, (*screws, q_hover), min_s=SCREW_S),
        Leg(LegKind.FASTEN, step, target=op.unit),
        Leg(LegKind.MOVE, step, (q_above,)),
    )
    return Plan(legs, tuple(start_q), q_above, LOOK_TICKS[Skill.FASTEN])


def plan_inspect(
    kin: Kinematics, cell: CellSpec, op: Operation, start_q: Sequence[float], unit: Pose
) -> Plan:
    """Above the unit at camera height, look for a while, ask the world what it sees.

    The camera looks from above the top of the unit, a stack included (``grip_dz``).
    """
    hb = _kind_size(cell, base_kind(cell, op))[2]
    top = Pose(unit.x, unit.y, unit.z + hb / 2 + op.grip_dz, unit.yaw)
    q_look = kin.ik(_up(top, INSPECT_HOVER_M), top.yaw, start_q)
    step = ExecStep.INSPECT
    legs = (
        Leg(LegKind.MOVE, step, (q_look,)),
        Leg(LegKind.INSPECT, step, hold_s=INSPECT_DWELL_S, target=op.unit),
    )
    return Plan(legs, tuple(start_q), q_look, LOOK_TICKS[Skill.INSPECT])


class Planner(Protocol):
    """What an agent plans with: IK at physics fidelity, calibrated times at events fidelity."""

    home: Q

    def setup(self) -> None:
        """Build what planning needs (idempotent)."""

    def close(self) -> None:
        """Free it."""

    def homed(self) -> None:
        """The arm went home (a reset)."""

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
        """The plan that runs ``op`` from ``start_q`` with the parts where they were seen."""
        ...

    def estimate(self, op: Operation, start_q: Sequence[float], speed: float) -> tuple[int, Q]:
        """What a bid promises (ns) and the pose the arm ends in."""
        ...


class IKPlanner:
    """Plans by inverse kinematics on the robot's own model (physics fidelity): the planner an
    agent holds (``robots.timed.TimedPlanner`` is the one at events fidelity)."""

    def __init__(self, cell: CellSpec, spec: RobotSpec) -> None:
        self.cell = cell
        self.kin = Kinematics(spec)
        self.home: Q = self.kin.home

    def setup(self) -> None:
        """Build the kinematic model (a private PyBullet client; no-op once built)."""
        self.kin.setup()

    def close(self) -> None:
        """Free the kinematic model."""
        self.kin.close()

    def homed(self) -> None:
        """Nothing to note: a plan starts from the pose it is given."""

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
        """``plan_op`` from where the parts are seen (``speed`` and ``draw`` are for timed plans)."""
        return plan_op(self.kin, self.cell, op, start_q, part, unit, tilt=tilt)

    def estimate(self, op: Operation, start_q: Sequence[float], speed: float) -> tuple[int, Q]:
        """How long ``op`` takes from ``start_q`` (from the station table's poses) and the pose
        it ends in: what a bid promises (PlanError if it cannot be planned)."""
        part, unit = assumed_poses(self.cell, op)
        tilt = op.pick.tilt if op.pick is not None else 0.0
        plan = plan_op(self.kin, self.cell, op, start_q, part, unit, tilt=tilt)
        return plan.duration_ns(speed, self.cell.tick_ns), plan.end_q


def release_aim(op: Operation) -> str:
    """Where ``op`` puts its part: ``unit:ID`` onto a unit, else the destination station."""
    return f"unit:{op.unit}" if op.onto_unit else op.dst


# ---------------------------------------------------------------- helpers


def hang(size: tuple[float, float, float], tilt: float) -> float:
    """How much lower than when flat a box of ``size``, held ``tilt`` askew by its top face's
    centre (where the tool is), reaches: its lowest corner, at worst.

    Zero within ``FLAT_RAD`` of flat (parts on stations), so ordinary places are unchanged.
    """
    if tilt <= FLAT_RAD:
        return 0.0
    sx, sy, sz = size
    t = min(tilt, math.pi / 2)
    return math.hypot(sx, sy) / 2 * math.sin(t) - sz * (1 - math.cos(t))


def base_kind(cell: CellSpec, op: Operation) -> str:
    """The part kind of the base of ``op``'s unit (the cell's first recipe's if unsaid)."""
    return op.base_kind or cell.recipe.base


def _kind_size(cell: CellSpec, kind: str) -> tuple[float, float, float]:
    try:
        return cell.part_kind(kind).size
    except KeyError:
        raise PlanError(f"unknown part kind {kind!r}") from None


def _xyz(pose: Pose) -> tuple[float, float, float]:
    return (pose.x, pose.y, pose.z)


def _up(pose: Pose, dz: float) -> tuple[float, float, float]:
    return (pose.x, pose.y, pose.z + dz)


def _turned(pose: Pose, by: float) -> Pose:
    return Pose(pose.x, pose.y, pose.z, wrap(pose.yaw + by))
