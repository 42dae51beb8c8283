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
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from bus.cellspec import GRASP_TILT_MAX, Pose
from bus.enums import Skill, WorldEventKind
from bus.messages import PartPose, WorldEvent
from supervisor.plan import Op

if TYPE_CHECKING:
    from supervisor.supervisor import Supervisor

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


@dataclasses.dataclass(frozen=True, slots=True)
class Rest:
    """How the world last saw a part lie at rest."""

    pose: PartPose
    touching: tuple[str, ...]
    blocked: bool

    @property
    def position(self) -> Pose:
        """Its centre and its heading (the turn of its long side about z)."""
        pp = self.pose
        yaw = math.atan2(2.0 * (pp.qw * pp.qz + pp.qx * pp.qy), 1.0 - 2.0 * (pp.qy**2 + pp.qz**2))
        return Pose(pp.x, pp.y, pp.z, yaw)


class Rests:
    """Where each loose part came to rest, from the world's events, until it is picked up."""

    def __init__(self) -> None:
        self.parts: dict[str, Rest] = {}

    def note(self, ev: WorldEvent) -> None:
        """Follow one world event: a rest is recorded, a grasp or a retirement forgets it."""
        if ev.kind in (WorldEventKind.SETTLED, WorldEventKind.ATTACHED) and ev.pose is not None:
            self.parts[ev.part] = Rest(ev.pose, ev.touching, ev.blocked)
        elif ev.kind in (WorldEventKind.GRASPED, WorldEventKind.RETIRED):
            self.parts.pop(ev.part, None)

    def get(self, part: str) -> Rest | None:
        """How ``part`` last came to rest, if the world said."""
        return self.parts.get(part)

    def snapshot(self) -> dict[str, Any]:
        """As plain JSON-able data, for the journal."""
        return {
            pid: {
                "pose": [r.pose.x, r.pose.y, r.pose.z, r.pose.qx, r.pose.qy, r.pose.qz, r.pose.qw],
                "kind": r.pose.kind,
                "touching": list(r.touching),
                "blocked": r.blocked,
            }
            for pid, r in sorted(self.parts.items())
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.parts = {
            pid: Rest(PartPose(pid, d["kind"], *d["pose"]), tuple(d["touching"]), d["blocked"])
            for pid, d in data.items()
        }


# ---------------------------------------------------------------- deciding


def ready(sup: Supervisor, op: Op) -> bool:
    """Whether ``op`` may be auctioned now; first settles the fate of a part that fell.

    Returns False while the part is still in a gripper (falling, or held by a
    robot that has not let go yet) and when the operation was settled here
    (done, or its unit scrapped). A scrapped component leaves the operation
    ready, with no part: the auction takes the next one from the feeder.
    """
    if op.spec.skill is not Skill.PICK_PLACE or not op.part or op.part not in sup.ledger.live:
        return True
    where = sup.ledger.location(op.part)
    if where.startswith("gripper:"):
        return False
    if _at_station(where, op.src):
        op.pick = ()  # (back) where it is picked as usual
        return True
    rest = sup.rests.get(op.part)
    if _landed(sup, op, where, rest):
        sup.events.write(sup.now, "op_settled", op=op.op_id, robot="", how="landed")
        sup.complete(op)
        return False
    if op.pick:
        return True  # a recovery already decided, not yet run: it still lies there
    why = _unpickable(sup, op, where, rest)
    robots: list[str] = []
    if not why:
        assert rest is not None
        robots = reaching(sup, op, rest.position)
        if not robots:
            why = "out of reach of every robot that could pick it"
    if why:
        scrap(sup, op, why)
        return False  # next tick: the next part from the feeder (or nothing: unit scrapped)
    assert rest is not None
    pp = rest.pose
    op.pick = (pp.x, pp.y, pp.z, pp.qx, pp.qy, pp.qz, pp.qw)
    op.recoveries += 1
    sup.events.write(
        sup.now,
        "op_recovery",
        op=op.op_id,
        part=op.part,
        at=where,
        pose=[round(pp.x, 4), round(pp.y, 4), round(pp.z, 4)],
        tilt_deg=round(math.degrees(pp.tilt), 1),
        robots=robots,
        recovery=op.recoveries,
    )
    return True


def requeued(sup: Supervisor, op: Op) -> None:
    """``op`` was given back: a recovery is decided afresh; a built unit in a gripper is scrapped.

    A unit whose operation ended while a gripper held it falls (a drop, or the
    robot opening its gripper when it is reset), and a unit that fell is not
    shipped unseen, wherever it lands.
    """
    op.pick = ()
    part = op.part
    if op.spec.skill is not Skill.PICK_PLACE or part != op.unit or part not in sup.ledger.live:
        return
    if sup.ledger.location(part).startswith("gripper:") and sup.ledger.at(f"unit:{part}"):
        scrap(sup, op, "a unit that fell with its components is not shipped unseen")


def reaching(sup: Supervisor, op: Op, pose: Pose) -> list[str]:
    """Live robots with the skill that reach ``pose`` and every other station of ``op``."""
    stations = [sup.stations[s].pose for s in op.stations if s != op.src]
    return [
        name
        for name, r in sup.robots.items()
        if r.alive
        and op.spec.skill in r.spec.capabilities
        and r.spec.reaches(pose)
        and all(r.spec.reaches(p) for p in stations)
    ]


def pick_pose(op: Op) -> Pose | None:
    """Where a recovery picks its part (None for an ordinary operation)."""
    if not op.pick:
        return None
    x, y, z = op.pick[:3]
    return Pose(x, y, z)


def scrap(sup: Supervisor, op: Op, reason: str, *, fell: bool = True) -> None:
    """Give up ``op``'s part: scrap it (its unit, if it is the unit's base) and take it out.

    The operation stays ready with no part, so the next part comes from the feeder.
    ``fell``: the reason is why a part that fell cannot be picked (logged as such).
    """
    unit = sup.units[op.unit]
    why = f"fell: {reason}" if fell else reason
    op.pick = ()
    if op.part == unit.unit_id:
        sup._scrap_unit(unit, f"{op.part} {why}")
        return
    sup.ledger.scrap(op.part)
    sup._retire.append(op.part)
    sup.events.write(sup.now, "part_scrapped", part=op.part, reason=why)
    op.part = ""


def _at_station(where: str, station: str) -> bool:
    prefix, _, name = where.partition(":")
    return bool(station) and prefix in STATION_PREFIXES and name == station


def _landed(sup: Supervisor, op: Op, where: str, rest: Rest | None) -> bool:
    """Whether the part lies where ``op`` was to put it (so the operation is in effect done)."""
    if op.part == op.unit:
        return _at_station(where, op.dst)
    if where != f"unit:{op.unit}" or rest is None or rest.pose.tilt > PLACED_TILT:
        return False
    base = sup.rests.get(op.unit)
    unit = base.position if base is not None else sup.stations[op.dst].pose
    dx, dy, _ = op.spec.offset
    c, s = math.cos(unit.yaw), math.sin(unit.yaw)
    spot = (unit.x + c * dx - s * dy, unit.y + s * dx + c * dy)
    lying = rest.position
    turn = (lying.yaw - unit.yaw) % math.pi
    return (
        math.hypot(lying.x - spot[0], lying.y - spot[1]) <= PLACED_M
        and min(turn, math.pi - turn) <= PLACED_YAW
    )


def _unpickable(sup: Supervisor, op: Op, where: str, rest: Rest | None) -> str:
    """Why the part cannot be picked up where it lies ("" if it can)."""
    if op.part == op.unit and sup.ledger.at(f"unit:{op.unit}"):
        return "a unit that fell with its components is not shipped unseen"
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
