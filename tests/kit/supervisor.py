"""A supervisor stepped by hand: scripted robot messages, a scripted world, no sockets.

``Harness`` steps the supervisor of the assembly cell one tick at a time with
the messages and world events a test gives; ``World`` also beats every robot
in Execute once a second and keeps what the supervisor asked of the world.
Both send through ``robots.fakes.FakeOutbox``, the one scripted ``Outbox``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bus.enums import ExecStep, PackMLState, WorldEventKind
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    Envelope,
    Heartbeat,
    Message,
    PartPose,
    SensorReading,
    Tick,
    WorldAct,
    WorldEvent,
    WorldSense,
)
from cells.schema import load_cell
from robots.fakes import FakeOutbox
from supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
TICK = 1_000_000_000 // 24
ROBOTS = ("R1", "R2", "R3", "R4")


class Harness:
    """The assembly cell's supervisor, stepped by hand (``policy``: its allocation policy)."""

    def __init__(self, out_dir: Path | None = None, *, policy: str = "") -> None:
        self.sup = Supervisor(
            load_cell(ROOT / "cells" / "assembly.toml"), out_dir=out_dir, policy=policy
        )
        self.out = FakeOutbox()
        self.k = 0
        self.sensors: dict[str, str] = {}

    def step(
        self, *msgs: tuple[str, Message], events: tuple[WorldEvent, ...] = ()
    ) -> list[tuple[str, Message]]:
        """One tick with ``msgs`` in the inbox and ``events`` from the world; what was sent."""
        inbox = [Envelope(src, "supervisor", self.k - 1, i, m) for i, (src, m) in enumerate(msgs)]
        sense = WorldSense(
            events, tuple(SensorReading(s, p) for s, p in sorted(self.sensors.items()))
        )
        self.sup.step(Tick(self.k, self.k * TICK, (), sense), inbox, self.out)
        self.k += 1
        return self.out.take()

    def hb(self, robot: str, state: PackMLState) -> tuple[str, Message]:
        """A heartbeat of ``robot`` in ``state``, running nothing."""
        return robot, Heartbeat(robot, self.k * TICK, state, ExecStep.WAITING, "")


class World(Harness):
    """The supervisor with a scripted world: every robot in Execute, events by hand.

    Keeps what the supervisor asked of the world (``retired``) and its event log.
    """

    def __init__(self, out_dir: Path | None = None, *, policy: str = "") -> None:
        super().__init__(out_dir, policy=policy)
        self.retired: list[str] = []
        self.lines: list[str] = []

    def step(
        self, *msgs: tuple[str, Message], events: tuple[WorldEvent, ...] = ()
    ) -> list[tuple[str, Message]]:
        beats = [self.hb(r, PackMLState.EXECUTE) for r in ROBOTS if self.k % 24 == 0]
        inbox = [
            Envelope(src, "supervisor", self.k - 1, i, m)
            for i, (src, m) in enumerate([*beats, *msgs])
        ]
        readings = tuple(SensorReading(s, p) for s, p in sorted(self.sensors.items()))
        act = self.sup.step(
            Tick(self.k, self.k * TICK, (), WorldSense(events, readings)), inbox, self.out
        )
        assert isinstance(act, WorldAct)
        self.retired += act.retire
        self.lines += act.events
        self.k += 1
        return self.out.take()

    def event(self, kind: WorldEventKind, part: str, where: str, **rest: Any) -> WorldEvent:
        """A world event about ``part`` (its kind from its id) at ``where``, now."""
        return WorldEvent(self.k * TICK, kind, part, part.split("-")[0], where, "", **rest)

    def log(self, kind: str) -> list[dict[str, Any]]:
        """The events of ``kind`` written so far."""
        return [e for e in map(json.loads, self.lines) if e["kind"] == kind]


def lying(part: str, x: float, y: float, z: float, *, tilt_deg: float = 0.0) -> PartPose:
    """A part at rest at (x, y, z), tilted about its own x axis by ``tilt_deg``."""
    h = math.radians(tilt_deg) / 2
    return PartPose(part, part.split("-")[0], x, y, z, math.sin(h), 0.0, 0.0, math.cos(h))


def award(w: Harness, sent: list[tuple[str, Message]], robot: str) -> Award:
    """Let ``robot`` win the auction called in ``sent``; return its award."""
    calls = [m for _, m in sent if isinstance(m, CallForBids)]
    assert calls, sent
    op_id = calls[0].op.op_id
    w.step()
    got = w.step((robot, Bid(op_id, robot, w.k * TICK + 10**9)))
    return next(m for _, m in got if isinstance(m, Award))


def until_called(w: Harness, op_id: str, ticks: int = 40) -> list[tuple[str, Message]]:
    """Step until a call for bids for ``op_id`` goes out; return everything sent then."""
    for _ in range(ticks):
        sent = w.step()
        if any(isinstance(m, CallForBids) and m.op.op_id == op_id for _, m in sent):
            return sent
    raise AssertionError(f"no call for bids for {op_id}")
