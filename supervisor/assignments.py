"""Who has which work: open calls for bids, stations taken, each robot's queue.

``Assignments`` is the one owner of these three, and every change of who
holds an operation goes through it (``call``, ``bid``, ``award``, ``claim``,
``release``, ``requeue``), together with the operation's change of state, so
the three can never disagree with the operations. Which robot gets the work
is not decided here: that is the allocation policy's (``supervisor.allocation``).
"""

from __future__ import annotations

from typing import Any

from supervisor.plan import Op, OpState

RETRY_NS = 500_000_000
"""Wait after a failed auction or operation before trying it again (sim ns)."""


class Assignments:
    """Bids per open call, the operation holding each busy station, each robot's queue."""

    def __init__(self) -> None:
        self.bids: dict[str, list[tuple[int, str]]] = {}
        """Operation id -> (finish time, robot) of every bid received for its open call."""
        self.busy: dict[str, str] = {}
        """Station -> the operation that holds it (from the call until the work is settled)."""
        self.queues: dict[str, list[str]] = {}
        """Robot -> the operations it holds (awarded or running), in order."""

    def queue(self, robot: str) -> tuple[str, ...]:
        """What ``robot`` holds now."""
        return tuple(self.queues.get(robot, ()))

    def any_busy(self, stations: tuple[str, ...]) -> bool:
        """Whether some operation holds one of ``stations``."""
        return any(st in self.busy for st in stations)

    def call(self, op: Op, tick: int) -> None:
        """A call for bids on ``op`` goes out at ``tick``: its stations are held meanwhile."""
        op.move(OpState.AUCTION)
        op.auction_tick = tick
        self.bids[op.op_id] = []
        for st in op.stations:
            self.busy[st] = op.op_id

    def bid(self, op_id: str, robot: str, finish_ns: int) -> bool:
        """A bid came in; False if no call is open for it (a late or stray bid).

        A robot that declines bids a negative time: heard, not kept.
        """
        bids = self.bids.get(op_id)
        if bids is None:
            return False
        if finish_ns >= 0:
            bids.append((finish_ns, robot))
        return True

    def close(self, op_id: str) -> list[tuple[int, str]]:
        """The bids of a call that is over (the call is closed)."""
        return self.bids.pop(op_id, [])

    def award(self, op: Op, robot: str, now_ns: int) -> None:
        """``robot`` gets ``op``: queued to it, its stations held (if no call held them)."""
        op.move(OpState.AWARDED)
        op.robot, op.awarded_ns = robot, now_ns
        self.queues.setdefault(robot, []).append(op.op_id)
        for st in op.stations:
            self.busy.setdefault(st, op.op_id)

    def start(self, op: Op, now_ns: int) -> None:
        """The robot ``op`` was awarded to began it."""
        op.move(OpState.RUNNING)
        op.started_ns = now_ns

    def claim(self, op: Op, robot: str, now_ns: int) -> None:
        """``robot`` runs ``op`` although it was given back or to another (readopted)."""
        self.release(op)
        op.robot = robot
        op.move(OpState.RUNNING)
        op.started_ns = now_ns
        self.queues.setdefault(robot, []).append(op.op_id)
        for st in op.stations:
            self.busy.setdefault(st, op.op_id)

    def release(self, op: Op) -> None:
        """``op`` holds nothing any more: its stations, its place in a queue, its call."""
        for st in op.stations:
            if self.busy.get(st) == op.op_id:
                del self.busy[st]
        queue = self.queues.get(op.robot, [])
        if op.op_id in queue:
            queue.remove(op.op_id)
        self.bids.pop(op.op_id, None)

    def requeue(self, op: Op, now_ns: int) -> None:
        """``op`` goes back to be allocated again, a new attempt, after ``RETRY_NS``."""
        self.release(op)
        op.robot = ""
        op.attempts += 1
        op.move(OpState.READY)
        op.not_before_ns = now_ns + RETRY_NS

    def unanswered(self, op: Op, now_ns: int) -> None:
        """Nobody took the call for ``op``: it is ready again after ``RETRY_NS``."""
        self.release(op)
        op.move(OpState.READY)
        op.not_before_ns = now_ns + RETRY_NS

    def forget_holders(self) -> None:
        """Every robot is a fresh agent (a resumed run): no queue holds anything and no bid
        stands; the operations keep their state until what the robots say settles them."""
        self.bids = {}
        self.queues = {}

    def snapshot(self) -> dict[str, Any]:
        """As plain data (the journal)."""
        return {
            "bids": {k: [list(b) for b in v] for k, v in self.bids.items()},
            "busy_stations": dict(self.busy),
            "queues": {r: list(q) for r, q in self.queues.items()},
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.bids = {k: [(int(f), str(r)) for f, r in v] for k, v in data["bids"].items()}
        self.busy = dict(data["busy_stations"])
        self.queues = {r: list(q) for r, q in data["queues"].items()}
