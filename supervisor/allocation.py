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
  for bids as in contract net where a time is neither learned nor estimated yet.
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


Decision = Call | Assign | Unanswered


class AllocationPolicy(Protocol):
    """What the supervisor asks of an allocation policy."""

    name: str

    def offer(self, view: CellView, op: Op) -> Call | Assign | None:
        """What to do with ``op``, ready with its part there and its stations free (None: wait)."""

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

    def offer(self, view: CellView, op: Op) -> Call | Assign | None:
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
