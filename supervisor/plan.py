"""Recipes become units and operations; operations move through their states.

A unit is one product being built, named after its base part (the frame),
bound to the fixture that holds it. Each recipe step becomes an ``Op`` of that
unit, with its stations resolved (``fixture`` / ``unit`` become the unit's
fixture) and its part bound when it is auctioned.

An operation changes state only through ``Op.move``, along the edges of
``TRANSITIONS`` (as a PackML machine changes state only by its table): an
edge that is not there raises ``IllegalTransition``, so a bug that would do
an operation twice, or revive a cancelled one, stops at the line that tries.
"""

from __future__ import annotations

import dataclasses
import enum

from bus.cellspec import OperationSpec, Pose, RecipeSpec
from bus.enums import Skill
from bus.messages import Operation, PartPose
from supervisor.errors import IllegalTransition

REWORK_MARK = "~rework"
"""Between a step's name and its rework's number in an operation id."""
PLACEHOLDERS = ("fixture", "unit")
"""Stand for the unit's fixture; ``mount`` stands for the mount point kept for the unit."""


class OpState(enum.StrEnum):
    """Where an operation is in its life."""

    WAITING = "waiting"
    """Some operation it comes after is not done."""
    READY = "ready"
    """Its predecessors are done; it waits for material, a free station or a robot."""
    AUCTION = "auction"
    """A call for bids is out."""
    AWARDED = "awarded"
    """A robot has it queued."""
    RUNNING = "running"
    """A robot is moving for it."""
    DONE = "done"
    """Completed."""
    CANCELLED = "cancelled"
    """Dropped with its unit (the unit was scrapped)."""


_S = OpState
TRANSITIONS: dict[OpState, frozenset[OpState]] = {
    _S.WAITING: frozenset({_S.READY, _S.CANCELLED}),
    # READY -> AWARDED: a dispatcher that awards without bids; -> RUNNING: a robot the
    # supervisor could not hear kept it (readopted); -> DONE: settled from what the world shows
    _S.READY: frozenset({_S.AUCTION, _S.AWARDED, _S.RUNNING, _S.DONE, _S.CANCELLED}),
    # AUCTION -> READY: nobody bid; -> RUNNING / DONE: an earlier holder readopted or reported it
    _S.AUCTION: frozenset({_S.AWARDED, _S.READY, _S.RUNNING, _S.DONE, _S.CANCELLED}),
    # AWARDED -> READY: the robot left Execute or was lost; -> RUNNING: it started (or another
    # that held it before readopted it)
    _S.AWARDED: frozenset({_S.RUNNING, _S.READY, _S.DONE, _S.CANCELLED}),
    _S.RUNNING: frozenset({_S.DONE, _S.READY, _S.CANCELLED}),
    _S.DONE: frozenset(),
    _S.CANCELLED: frozenset(),
}
"""Every legal change of an operation's state (``Op.move``)."""


@dataclasses.dataclass(slots=True)
class Op:
    """One recipe step of one unit."""

    unit: str
    spec: OperationSpec
    src: str
    dst: str
    at: str
    state: OpState = OpState.WAITING
    part: str = ""
    robot: str = ""
    auction_tick: int = -1
    not_before_ns: int = 0
    attempts: int = 0
    started_ns: int = -1
    awarded_ns: int = -1
    """When it was last awarded (a heartbeat after it without it means the award was lost)."""
    pick: tuple[float, ...] = ()
    """For a recovery: the pose (x, y, z, qx, qy, qz, qw) its part fell to and is picked
    from instead of ``src`` (``supervisor.recovery``); empty otherwise."""
    recoveries: int = 0
    """Recoveries auctioned for it so far."""
    base_kind: str = ""
    """The part kind of its unit's base (which recipe it belongs to)."""
    rework: int = 0
    """For a step given out again after a failed inspection: which rework it is (its id says
    so: a robot that did the step before answers a repeated id with its old report)."""

    def move(self, to: OpState) -> None:
        """Change state along an edge of ``TRANSITIONS``; any other change raises."""
        if to not in TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"operation {self.op_id}: {self.state.value} -> {to.value} is not a legal change"
            )
        self.state = to

    @property
    def op_id(self) -> str:
        """Stable id: ``<unit>/<step>`` (``<unit>/<step>~rework<n>`` for a rework)."""
        tail = f"{REWORK_MARK}{self.rework}" if self.rework else ""
        return f"{self.unit}/{self.spec.name}{tail}"

    @property
    def stations(self) -> tuple[str, ...]:
        """The stations this operation occupies while it runs (a recovery picks off-station)."""
        src = "" if self.pick else self.src
        return tuple(s for s in (src, self.dst, self.at) if s)

    @property
    def pick_position(self) -> Pose | None:
        """Where a recovery picks its part (None for an ordinary operation)."""
        if not self.pick:
            return None
        x, y, z = self.pick[:3]
        return Pose(x, y, z)

    def message(self, base_kind: str = "") -> Operation:
        """The operation as robots see it (``base_kind``: if the op does not know its own)."""
        base_kind = self.base_kind or base_kind
        onto = self.spec.skill is Skill.PICK_PLACE and self.spec.dst == "unit"
        dx, dy, dz = self.spec.offset
        return Operation(
            op_id=self.op_id,
            unit=self.unit,
            name=self.spec.name,
            skill=self.spec.skill,
            part=self.part,
            part_kind=self.spec.part,
            src="" if self.pick else self.src,
            dst=self.dst,
            at=self.at,
            onto_unit=onto and self.spec.part != base_kind,
            dx=dx,
            dy=dy,
            dz=dz,
            pick=PartPose(self.part, self.spec.part, *self.pick) if self.pick else None,
            base_kind=base_kind,
            grip_dz=self.spec.grip_dz,
        )


@dataclasses.dataclass(slots=True)
class Unit:
    """One product in the making, held by one fixture."""

    unit_id: str
    fixture: str
    created_ns: int
    ops: dict[str, Op]
    rejected: bool = False
    reason: str = ""
    finished_ns: int = -1
    mount: str = ""
    """For an arm: the mount point kept for it from its start (it becomes a robot there)."""
    base_kind: str = ""
    """The part kind of its base (which recipe it follows)."""
    reworks: int = 0
    """How many times it went back after a failed inspection (``supervisor.rework``)."""

    def op(self, name: str) -> Op:
        """The step called ``name``."""
        return self.ops[name]


def make_unit(
    recipe: RecipeSpec,
    unit_id: str,
    fixture: str,
    now_ns: int,
    *,
    mount: str = "",
    overflow: str = "",
) -> Unit:
    """Build a unit's operations from the recipe, bound to ``fixture`` and ``mount`` (an arm),
    or to ``overflow`` in the place of the mount (an arm that ships: the bay is full)."""

    def resolve(station: str) -> str:
        if station == "mount":
            return mount or overflow
        return fixture if station in PLACEHOLDERS else station

    ops = {
        s.name: Op(
            unit=unit_id,
            spec=s,
            src=resolve(s.src),
            dst=resolve(s.dst),
            at=resolve(s.at),
            base_kind=recipe.base,
        )
        for s in recipe.ops
    }
    unit = Unit(
        unit_id=unit_id,
        fixture=fixture,
        created_ns=now_ns,
        ops=ops,
        mount=mount,
        base_kind=recipe.base,
    )
    for op in ops.values():
        if op.spec.part == recipe.base:
            op.part = unit_id
    refresh(unit)
    return unit


def refresh(unit: Unit) -> list[Op]:
    """Move WAITING operations whose predecessors are done to READY; return them."""
    done = {n for n, o in unit.ops.items() if o.state is OpState.DONE}
    woke = []
    for op in unit.ops.values():
        if op.state is OpState.WAITING and set(op.spec.after) <= done:
            op.move(OpState.READY)
            woke.append(op)
    return woke


def finished(unit: Unit) -> bool:
    """Whether every step of the unit is done."""
    return all(o.state is OpState.DONE for o in unit.ops.values())
