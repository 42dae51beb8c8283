"""A read-only view of the supervisor's state, for the policies that decide on it.

Allocation and recovery (``supervisor.allocation``, ``supervisor.recovery``)
are functions of a ``CellView``: they read the ledger, the units, who holds
what, the robots and where loose parts lie, and return decisions; only the
supervisor applies them. The view hands out no component, so a policy has no
way to change state by mistake (the operations it returns are the live
records: a policy reads them and never assigns to them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from bus.cellspec import CellSpec, Pose, RobotSpec, Station
from bus.enums import PackMLState, Skill, UnitMode
from supervisor.assignments import Assignments
from supervisor.fleet import Fleet
from supervisor.ledger import Ledger
from supervisor.plan import Op, OpState, Unit
from supervisor.rests import Rest, Rests
from supervisor.units import Units


@dataclasses.dataclass(slots=True)
class SimTime:
    """The tick being handled and its sim time; set by the supervisor, read by the rest."""

    ns: int = 0
    tick: int = 0


class RobotInfo(Protocol):
    """What a policy may read of a robot."""

    @property
    def spec(self) -> RobotSpec: ...
    @property
    def name(self) -> str: ...
    @property
    def state(self) -> PackMLState | None: ...
    @property
    def alive(self) -> bool: ...
    @property
    def mode(self) -> UnitMode: ...
    @property
    def held(self) -> str: ...


class CellView:
    """Reads of the ledger, units, assignments, fleet and rests; no writes."""

    def __init__(
        self,
        cell: CellSpec,
        time: SimTime,
        *,
        ledger: Ledger,
        units: Units,
        assignments: Assignments,
        fleet: Fleet,
        rests: Rests,
        jammed: set[str],
        learned: Callable[[str, Op], float | None] | None = None,
    ) -> None:
        """``learned``: a robot's learned time for an operation (s, None if not known yet);
        none: optimization is off and no learned time is read."""
        self.cell = cell
        self._learned = learned
        self._time = time
        self._stations: dict[str, Station] = cell.stations()
        self._ledger = ledger
        self._units = units
        self._assignments = assignments
        self._fleet = fleet
        self._rests = rests
        self._jammed = jammed

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> int:
        """Sim time of this tick (ns)."""
        return self._time.ns

    @property
    def tick(self) -> int:
        """This tick's number."""
        return self._time.tick

    # ------------------------------------------------------------------ robots and work

    def robots(self) -> Iterator[RobotInfo]:
        """Every robot, in the fleet's order."""
        return iter(self._fleet)

    def robot(self, name: str) -> RobotInfo | None:
        """The robot called ``name``, if there is one."""
        return self._fleet.views.get(name)

    def queue(self, robot: str) -> tuple[str, ...]:
        """The operations ``robot`` holds."""
        return self._assignments.queue(robot)

    def learned_time(self, robot: str, op: Op) -> float | None:
        """``robot``'s learned time for ``op`` in seconds (``supervisor.learned``), or None
        (not enough samples, or optimization off)."""
        return self._learned(robot, op) if self._learned is not None else None

    def busy(self, stations: Iterable[str]) -> bool:
        """Whether an operation holds one of ``stations``."""
        return self._assignments.any_busy(tuple(stations))

    def calls(self) -> list[str]:
        """Operations with a call for bids open, sorted."""
        return sorted(self._assignments.bids)

    def bids(self, op_id: str) -> tuple[tuple[int, str], ...]:
        """(finish time, robot) of the bids in for ``op_id``."""
        return tuple(self._assignments.bids.get(op_id, ()))

    def op(self, op_id: str) -> Op:
        """The operation ``op_id``."""
        return self._units.ops[op_id]

    def ops(self) -> Iterable[Op]:
        """Every operation followed."""
        return self._units.ops.values()

    def unit(self, unit_id: str) -> Unit:
        """The unit ``unit_id``."""
        return self._units.units[unit_id]

    def jammed(self, station: str) -> bool:
        """Whether ``station`` is a belt the watchdog found jammed."""
        return station in self._jammed

    def fastened(self, unit_id: str) -> bool:
        """Whether the world reported ``unit_id`` fastened."""
        return unit_id in self._units.fastened

    # ------------------------------------------------------------------ parts

    def pose(self, station: str) -> Pose:
        """Where ``station`` is."""
        return self._stations[station].pose

    def live(self, part: str) -> bool:
        """Whether ``part`` is in the cell."""
        return part in self._ledger.live

    def location(self, part: str) -> str:
        """Where ``part`` is (or how it left)."""
        return self._ledger.location(part)

    def kind(self, part: str) -> str:
        """The kind of live ``part``."""
        return self._ledger.kind(part)

    def parts_at(self, location: str) -> list[str]:
        """Live parts at ``location``, sorted."""
        return self._ledger.at(location)

    def rest(self, part: str) -> Rest | None:
        """How ``part`` last came to rest, if the world said."""
        return self._rests.get(part)

    # ------------------------------------------------------------------ derived

    def material(self, op: Op) -> str:
        """The part ``op`` would move, "-" if it moves none, or "" if none is there yet."""
        if op.part:
            return op.part
        if op.spec.skill is not Skill.PICK_PLACE:
            return "-"
        taken = {o.part for o in self.ops() if o.part and o.state is not OpState.DONE}
        for p in self.parts_at(f"feeder:{op.src}"):
            if self.kind(p) == op.spec.part and p not in taken:
                return p
        return ""

    def poses(self, op: Op) -> list[Pose]:
        """Every place a robot must reach for ``op``: its stations, and where a recovery picks."""
        out = [self.pose(s) for s in op.stations]
        pick = op.pick_position
        return out if pick is None else [pick, *out]

    def able(self, robot: RobotInfo, op: Op) -> bool:
        """Whether ``robot`` has the skill for ``op`` and reaches every place it needs."""
        return op.spec.skill in robot.spec.capabilities and all(
            robot.spec.reaches(p) for p in self.poses(op)
        )

    def looks_done(self, op: Op) -> bool:
        """Whether the world shows ``op`` done (the part where it was to go, the unit fastened)."""
        if op.spec.skill is Skill.FASTEN:
            return self.fastened(op.unit)
        if op.spec.skill is not Skill.PICK_PLACE or not op.part:
            return False
        where = self.location(op.part)
        if op.spec.part != op.base_kind:
            return where == f"unit:{op.unit}"
        return where in (
            f"fixture:{op.dst}",
            f"conveyor:{op.dst}",
            f"stand:{op.dst}",
            f"mount:{op.dst}",
            "shipped",
            "consumed",
        )
