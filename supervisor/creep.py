"""Cycle creep: a robot whose motions slow a little more every second.

A ``cycle_creep`` fault is applied by the supervisor, as a ``slow_robot`` is:
it tells the agent its motions' slowdown with a ``degrade`` message. Here the
slowdown grows linearly from 1 at the fault to its ``factor`` at the end of
its ``duration``, and stays (wear does not heal by itself). The current
slowdown is sent again every sim second, so an agent that restarted, or a
message lost on the way, picks it up within a second.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bus.faults import wear_share
from bus.messages import Degrade
from bus.participant import Outbox
from bus.simtime import NS
from supervisor.fleet import NEVER_NS

SEND_EVERY_NS = NS
"""How often a creeping robot is told its slowdown (sim time)."""


@dataclasses.dataclass(slots=True)
class Creep:
    """One robot's creep: from ``start_ns`` to ``end_ns`` the slowdown grows to ``factor``."""

    start_ns: int
    end_ns: int
    factor: float
    next_ns: int = 0

    def at(self, t_ns: int) -> float:
        """The slowdown at sim time ``t_ns``."""
        return 1.0 + (self.factor - 1.0) * wear_share(t_ns, self.start_ns, self.end_ns)


class Creeps:
    """The robots that creep, by name; one owner, one snapshot."""

    def __init__(self) -> None:
        self.robots: dict[str, Creep] = {}

    def start(self, robot: str, now_ns: int, duration_ns: int, factor: float) -> None:
        """``robot`` starts creeping now (a later creep on it takes over from where it is)."""
        self.robots[robot] = Creep(now_ns, now_ns + duration_ns, factor, now_ns)

    def maintain(self, robot: str, out: Outbox, now_ns: int) -> bool:
        """``robot`` was maintained: its creep ends and it is told its motions' full speed
        again. Whether it crept."""
        if self.robots.pop(robot, None) is None:
            return False
        out.send(robot, Degrade(robot, 1.0, now_ns))
        return True

    def send(self, out: Outbox, now_ns: int) -> None:
        """Tell every creeping robot due its slowdown now."""
        for robot in sorted(self.robots):
            c = self.robots[robot]
            if now_ns >= c.next_ns:
                c.next_ns = now_ns + SEND_EVERY_NS
                out.send(robot, Degrade(robot, round(c.at(now_ns), 4), NEVER_NS))  # wear stays

    def snapshot(self) -> dict[str, Any]:
        """As plain data."""
        return {name: dataclasses.asdict(c) for name, c in sorted(self.robots.items())}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.robots = {name: Creep(**c) for name, c in data.items()}
