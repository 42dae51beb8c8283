"""Allocation policies: who gets each ready operation, decided from a read-only view.

A policy never changes state. For each operation that could start now (its
part is there, its stations are free) ``offer`` returns a decision, and each
tick ``close`` returns the decisions on calls for bids that are over; the
supervisor applies them (``supervisor.dispatch``) and logs each with its
reason. Two policies ship:

* ``ContractNet`` (``contract_net``, the default): every ready operation is
  called to the robots that are in Execute, have the skill, reach all its
  places and have room in their queue; each bids its finish time. Two ticks
  later (the call reaches them at k+1, their bids come back at k+2) the
  earliest finish wins, ties to the lower name.
* ``FirstComeFirstServed`` (``fcfs``): each ready operation, in the order
  units started and steps come, goes straight to the first idle capable
  robot (in the cell file's order) that reaches it; no bids, no wait.
* ``Learned`` (``learned``): each ready operation to the robot that would
  finish it first by the operation times the supervisor learned
  (``supervisor.learned``), waiting for that robot if its queue is full; a call
  for bids as in contract net where a time is neither learned nor estimated yet. An
  operation that would hold a station long waits (``Yield``) when another unit's
  operation needs that station soon and is done there sooner (``sooner``).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from bus.enums import PackMLState, UnitMode
from bus.errors import ConfigError
from bus.simtime import NS
from supervisor.plan import Op, OpState
from supervisor.view import CellView, RobotInfo

AUCTION_TICKS = 2
"""A call for bids sent at tick k is answered at k+1 and read at k+2."""
QUEUE_MAX = 2
"""A robot holds at most this many operations (one running, one queued)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """Call for bids on ``op_id`` to ``robots``."""

    op_id: str
    robots: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Assign:
    """Give ``op_id`` to ``robot``; ``finish_ns`` and ``bids`` (robot, finish) say why.

    ``finish_ns`` is -1 for a policy that awards without bids.
    """

    op_id: str
    robot: str
    finish_ns: int = -1
    bids: tuple[tuple[str, int], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Unanswered:
    """No robot bid for ``op_id``: it is ready again after a while."""

    op_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Yield:
    """Hold ``op_id`` back for ``to``, another unit's operation that needs ``station`` soon
    and is done there sooner (the ``learned`` policy, ``sooner``).

    By the learned times ``op_id`` would hold the station ``held_s`` on ``robot``; ``to``
    can start there in ``ready_in_s`` (its steps before it ending, its robot free) and holds
    it ``to_s`` on ``to_robot``. ``to`` first, ``op_id`` waits ``ready_in_s + to_s``;
    ``op_id`` first, ``to`` waits ``held_s - ready_in_s``: it yields when that is longer.
    """

    op_id: str
    robot: str
    held_s: float
    to: str
    to_robot: str
    to_s: float
    ready_in_s: float
    station: str


Decision = Call | Assign | Unanswered | Yield


class AllocationPolicy(Protocol):
    """What the supervisor asks of an allocation policy."""

    name: str

    def offer(self, view: CellView, op: Op) -> Call | Assign | Yield | None:
        """What to do with ``op``, ready with its part there and its stations free (None or
        ``Yield``: wait)."""

    def close(self, view: CellView) -> list[Assign | Unanswered]:
        """Decisions on the calls for bids that are due, in a fixed order."""


def in_production(robot: RobotInfo) -> bool:
    """Whether ``robot`` answers, is in Execute in mode Production, and is not held out of
    production (a robot being taken out for maintenance gets no more work)."""
    return (
        robot.alive
        and robot.state is PackMLState.EXECUTE
        and robot.mode is UnitMode.PRODUCTION
        and not robot.held
    )


class ContractNet:
    """Call for bids, earliest finish wins (ties to the lower robot name)."""

    name = "contract_net"

    def offer(self, view: CellView, op: Op) -> Call | None:
        robots = tuple(
            r.name
            for r in view.robots()
            if in_production(r) and len(view.queue(r.name)) < QUEUE_MAX and view.able(r, op)
        )
        return Call(op.op_id, robots) if robots else None

    def close(self, view: CellView) -> list[Assign | Unanswered]:
        out: list[Assign | Unanswered] = []
        for op_id in view.calls():
            op = view.op(op_id)
            if op.state is not OpState.AUCTION or view.tick < op.auction_tick + AUCTION_TICKS:
                continue
            bids = sorted(b for b in view.bids(op_id) if _may_win(view, b[1]))
            if not bids:
                out.append(Unanswered(op_id))
                continue
            finish, winner = bids[0]
            out.append(Assign(op_id, winner, finish, tuple((r, f) for f, r in bids)))
        return out


class FirstComeFirstServed:
    """Each ready operation to the first idle robot that can do it; no bids."""

    name = "fcfs"

    def offer(self, view: CellView, op: Op) -> Assign | None:
        for r in view.robots():
            if in_production(r) and not view.queue(r.name) and view.able(r, op):
                return Assign(op.op_id, r.name)
        return None

    def close(self, view: CellView) -> list[Assign | Unanswered]:
        return []  # it calls for no bids


class Learned:
    """Earliest finish by learned times; a call for bids where they are not known yet
    (``supervisor.learned`` says how the times are learned)."""

    name = "learned"

    def __init__(self) -> None:
        self._bids = ContractNet()

    def offer(self, view: CellView, op: Op) -> Call | Assign | Yield | None:
        able = [r.name for r in view.robots() if in_production(r) and view.able(r, op)]
        if not able:
            return None
        times = {name: view.learned_time(name, op) for name in able}
        if any(t is None for t in times.values()):
            return self._bids.offer(view, op)
        finish = {name: round((free_in(view, name) + (times[name] or 0.0)) * NS) for name in able}
        best = min(able, key=lambda name: (finish[name], name))
        if len(view.queue(best)) >= QUEUE_MAX:
            return None  # it will still finish first: wait for it
        first = sooner(view, op, best, times[best] or 0.0)
        if first is not None:
            return first
        bids = tuple(sorted(((name, view.now + f) for name, f in finish.items()), key=_by_finish))
        return Assign(op.op_id, best, view.now + finish[best], bids)

    def close(self, view: CellView) -> list[Assign | Unanswered]:
        return self._bids.close(view)


def free_in(view: CellView, robot: str) -> float:
    """Seconds until ``robot`` is through what it holds, by the learned times (an operation
    without one counts as nothing: the robot is taken as free sooner, never later)."""
    left = 0.0
    for op_id in view.queue(robot):
        op = view.op(op_id)
        t = view.learned_time(robot, op) or 0.0
        if op.state is OpState.RUNNING and op.started_ns >= 0:
            t = max(0.0, t - (view.now - op.started_ns) / NS)
        left += t
    return left


def sooner(view: CellView, op: Op, robot: str, held: float) -> Yield | None:
    """Whether ``op`` (``held`` s on ``robot`` by its learned time) should wait for another
    unit's operation that needs one of its stations soon and is done there sooner.

    The other is ready, or waits only for steps running or queued to a robot (so it comes
    by itself); it starts at the station in ``r`` s (those steps' learned times left, and
    its fastest robot free) and holds it ``t`` s. ``op`` first, the other waits ``held - r``;
    the other first, ``op`` waits ``r + t``: ``op`` yields when ``2 r + t < held`` (the
    shorter first, as in shortest processing time). The other is always done sooner there
    (``t < held``), so two operations never yield to each other. The first such operation,
    in the order units started and steps come; None if there is none.
    """
    mine = set(op.stations)
    for other in view.ops():
        if other.unit == op.unit or other.state not in (OpState.WAITING, OpState.READY):
            continue
        shared = sorted(mine & set(other.stations))
        if not shared:
            continue
        ready = ready_in(view, other, shared)
        if ready is None:
            continue
        best: tuple[float, str, float, float] | None = None
        for r in view.robots():
            if not in_production(r) or not view.able(r, other):
                continue
            t = view.learned_time(r.name, other)
            if t is None:
                best = None  # it goes to a call for bids: no time to weigh it by
                break
            start = max(ready, free_in(view, r.name))
            if best is None or (start + t, r.name) < (best[0], best[1]):
                best = (start + t, r.name, start, t)
        if best is None:
            continue
        finish, name, start, t = best
        if start + finish < held:
            return Yield(op.op_id, robot, held, other.op_id, name, t, start, shared[0])
    return None


def ready_in(view: CellView, op: Op, shared: list[str]) -> float | None:
    """Seconds until ``op`` could start by the learned times, if it comes by itself: it is
    ready (its part there, its other stations free), or every step it waits for is running
    or queued to a robot. None otherwise."""
    unit = view.unit(op.unit)
    if unit.finished_ns >= 0 or unit.rejected or op.pick or not view.material(op):
        return None
    if op.state is OpState.READY:
        rest = [s for s in op.stations if s not in shared]
        if view.busy(rest) or view.jammed(op.dst) or view.now < op.not_before_ns:
            return None
        return 0.0
    ready = 0.0
    for name in op.spec.after:
        pred = unit.ops.get(name)
        if pred is None:
            return None
        if pred.state is OpState.DONE:
            continue
        if pred.state not in (OpState.RUNNING, OpState.AWARDED) or not pred.robot:
            return None
        left = done_in(view, pred.robot, pred.op_id)
        if left is None:
            return None
        ready = max(ready, left)
    return ready


def done_in(view: CellView, robot: str, op_id: str) -> float | None:
    """Seconds until ``robot`` is through ``op_id``, which it holds, by the learned times
    (what is left of its running operation, and the ones queued before it); None where a
    time is not learned."""
    left = 0.0
    for held in view.queue(robot):
        op = view.op(held)
        t = view.learned_time(robot, op)
        if t is None:
            return None
        if op.state is OpState.RUNNING and op.started_ns >= 0:
            t = max(0.0, t - (view.now - op.started_ns) / NS)
        left += t
        if held == op_id:
            return left
    return None


def _by_finish(bid: tuple[str, int]) -> tuple[int, str]:
    return bid[1], bid[0]


POLICIES: dict[str, type[ContractNet] | type[FirstComeFirstServed] | type[Learned]] = {
    ContractNet.name: ContractNet,
    FirstComeFirstServed.name: FirstComeFirstServed,
    Learned.name: Learned,
}
"""Allocation policies by the name a cell file or ``--policy`` gives."""


def make_policy(name: str, *, source: str = "--policy") -> AllocationPolicy:
    """The policy called ``name``; a ConfigError naming the choices otherwise."""
    cls = POLICIES.get(name)
    if cls is None:
        choices = ", ".join(sorted(POLICIES))
        raise ConfigError(source, "policy", f"{name!r} is not a policy (one of {choices})")
    return cls()


def _may_win(view: CellView, name: str) -> bool:
    """Whether a bid of ``name`` counts: it answers, and it is not out of production (taken
    out for maintenance since it bid)."""
    robot = view.robot(name)
    return (
        robot is not None and robot.alive and robot.mode is UnitMode.PRODUCTION and not robot.held
    )
