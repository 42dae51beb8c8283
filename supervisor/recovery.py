"""Dropped parts: pick them up again where a robot can, else scrap them and use another.

A gripper can let go mid-move (the ``gripper_drop`` fault): the robot reports
its operation failed and the part falls where physics puts it. When the
world says it has come to rest (a ``settled`` or ``attached`` event with its
pose, the parts it touches and whether a gripper can come down to it), the
supervisor decides, before the operation is auctioned again:

* it lies where the operation picks it (back on its tray, on the infeed):
  the operation is simply auctioned again;
* it lies where the operation was to put it (a frame fell into its fixture,
  a component onto its spot on its unit): the operation is settled as done;
* it lies anywhere else: if it lies flat and face up (``GRASP_TILT_MAX``),
  touches no other part, nothing blocks the way down to it, and some live
  robot with the skill reaches it and the destination, a **recovery** is
  auctioned: the same operation, picking the part from that pose
  (``Operation.pick``), called to those robots only. Otherwise the part is
  scrapped (taken out of the world) and the operation goes on with the next
  part from the feeder; a unit's base part is the unit, so then the unit is
  scrapped and the next base part starts a new one.

A unit that already carries components is never picked up again: it fell,
and shipping it unseen is not sound (inspecting it again would take a
fixture from the next unit), so it is scrapped as soon as its operation ends
with it in a gripper, wherever it lands. A part that fell onto a belt rides
away, and one that came to rest on a unit was joined to it, so neither can
be picked: both are scrapped, unless they landed where they were going.

The recovery is the same ``Op`` (same id, same place in the recipe), so it
and the failed attempt can never both place the part: one record, one award
at a time.

This module only decides: ``decide`` and ``after_requeue`` read a
``CellView`` and return a decision (``Wait``, ``AsIs``, ``Landed``,
``Recover``, ``Scrap``); the supervisor applies it and logs it.
"""

from __future__ import annotations

import dataclasses
import math

from bus.cellspec import GRASP_TILT_MAX, Pose
from bus.enums import Skill
from supervisor.plan import Op
from supervisor.rests import Rest
from supervisor.view import CellView

MAX_RECOVERIES = 3
"""Recoveries of one operation before its part is given up and scrapped."""
PLACED_M = 0.006
"""A component that fell onto its unit within this of its spot (xy) counts as placed."""
PLACED_YAW = math.radians(5.0)
"""... turned no more than this from how it should lie (a box, so modulo half a turn) ..."""
PLACED_TILT = math.radians(2.0)
"""... and lying this close to flat."""
STATION_PREFIXES = ("feeder", "conveyor", "fixture", "stand", "mount")
"""Ledger location prefixes that name a station (``feeder:battery_tray`` is the station
``battery_tray``)."""
UNIT_FELL = "a unit that fell with its components is not shipped unseen"


# ---------------------------------------------------------------- decisions


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    """Not now: the part is still in a gripper (falling, or held by a robot not yet reset)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AsIs:
    """Allocate the operation as it stands.

    ``at_station``: its part lies on its station again, so a recovery pose once
    decided for it is dropped and it is picked there as usual.
    """

    at_station: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Landed:
    """The part lies where the operation was to put it: the operation is in effect done."""


@dataclasses.dataclass(frozen=True, slots=True)
class Recover:
    """Pick the part up where it lies (``pose``: x, y, z, qx, qy, qz, qw), called to ``robots``.

    ``at`` and ``tilt_deg`` say where and how it lies, for the log.
    """

    pose: tuple[float, float, float, float, float, float, float]
    robots: tuple[str, ...]
    at: str
    tilt_deg: float


@dataclasses.dataclass(frozen=True, slots=True)
class Scrap:
    """Give the part up, for ``reason`` (``fell``: why a part that fell cannot be picked)."""

    reason: str
    fell: bool = True


Decision = Wait | AsIs | Landed | Recover | Scrap


def decide(view: CellView, op: Op) -> Decision:
    """What becomes of a ready operation's part before it is allocated.

    ``Wait`` while the part is still in a gripper; ``AsIs`` when nothing fell
    (or it is back on its station, or a recovery is already decided and not
    yet run); ``Landed`` when it lies where it was going; ``Recover`` when a
    robot can pick it up where it lies; ``Scrap`` otherwise (a scrapped
    component leaves the operation ready, with no part: the next one comes
    from the feeder; a scrapped base part is its unit, scrapped with it).
    """
    if op.spec.skill is not Skill.PICK_PLACE or not op.part or not view.live(op.part):
        return AsIs()
    where = view.location(op.part)
    if where.startswith("gripper:"):
        return Wait()
    if _at_station(where, op.src):
        return AsIs(at_station=True)
    rest = view.rest(op.part)
    if _landed(view, op, where, rest):
        return Landed()
    if op.pick:
        return AsIs()  # a recovery already decided, not yet run: it still lies there
    why = _unpickable(view, op, where, rest)
    if why:
        return Scrap(why)
    assert rest is not None
    robots = reaching(view, op, rest.position)
    if not robots:
        return Scrap("out of reach of every robot that could pick it")
    pp = rest.pose
    return Recover(
        (pp.x, pp.y, pp.z, pp.qx, pp.qy, pp.qz, pp.qw),
        tuple(robots),
        where,
        round(math.degrees(pp.tilt), 1),
    )


def after_requeue(view: CellView, op: Op) -> Scrap | None:
    """``op`` was given back: a built unit still in a gripper is scrapped, wherever it lands.

    A unit whose operation ended while a gripper held it falls (a drop, or the
    robot opening its gripper when it is reset), and a unit that fell is not
    shipped unseen.
    """
    part = op.part
    if op.spec.skill is not Skill.PICK_PLACE or part != op.unit or not view.live(part):
        return None
    if view.location(part).startswith("gripper:") and view.parts_at(f"unit:{part}"):
        return Scrap(UNIT_FELL)
    return None


def reaching(view: CellView, op: Op, pose: Pose) -> list[str]:
    """Live robots with the skill that reach ``pose`` and every other station of ``op``."""
    stations = [view.pose(s) for s in op.stations if s != op.src]
    return [
        r.name
        for r in view.robots()
        if r.alive
        and op.spec.skill in r.spec.capabilities
        and r.spec.reaches(pose)
        and all(r.spec.reaches(p) for p in stations)
    ]


def _at_station(where: str, station: str) -> bool:
    prefix, _, name = where.partition(":")
    return bool(station) and prefix in STATION_PREFIXES and name == station


def _landed(view: CellView, op: Op, where: str, rest: Rest | None) -> bool:
    """Whether the part lies where ``op`` was to put it (so the operation is in effect done)."""
    if op.part == op.unit:
        return _at_station(where, op.dst)
    if where != f"unit:{op.unit}" or rest is None or rest.pose.tilt > PLACED_TILT:
        return False
    base = view.rest(op.unit)
    unit = base.position if base is not None else view.pose(op.dst)
    dx, dy, _ = op.spec.offset
    c, s = math.cos(unit.yaw), math.sin(unit.yaw)
    spot = (unit.x + c * dx - s * dy, unit.y + s * dx + c * dy)
    lying = rest.position
    turn = (lying.yaw - unit.yaw) % math.pi
    return (
        math.hypot(lying.x - spot[0], lying.y - spot[1]) <= PLACED_M
        and min(turn, math.pi - turn) <= PLACED_YAW
    )


def _unpickable(view: CellView, op: Op, where: str, rest: Rest | None) -> str:
    """Why the part cannot be picked up where it lies ("" if it can)."""
    if op.part == op.unit and view.parts_at(f"unit:{op.unit}"):
        return UNIT_FELL
    kind, _, name = where.partition(":")
    if kind == "unit":
        return f"it came to rest on unit {name}, which it was joined to"
    if kind == "conveyor":
        return f"it came to rest on the {name} belt, which carries it away"
    if rest is None:
        return "the world did not say how it lies"
    tilt = rest.pose.tilt
    if tilt > GRASP_TILT_MAX:
        face = "upside down" if tilt > math.pi / 2 else f"{math.degrees(tilt):.0f} degrees askew"
        return f"it lies {face}"
    if rest.touching:
        return f"it lies against {', '.join(rest.touching)}"
    if rest.blocked:
        return "something over or beside it keeps a gripper from coming down to it"
    if op.recoveries >= MAX_RECOVERIES:
        return f"still down after {op.recoveries} recoveries"
    return ""
