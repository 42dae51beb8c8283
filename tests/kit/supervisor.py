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

from bus.enums import ExecStep, OpStatus, PackMLState, WorldEventKind
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    ControlRequest,
    Envelope,
    Heartbeat,
    Message,
    OpReport,
    OpStarted,
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
from supervisor.plan import OpState

ROOT = Path(__file__).resolve().parents[2]
TICK = 1_000_000_000 // 24
ROBOTS = ("R1", "R2", "R3", "R4")
BATTERY_OP = "frame-0001/place_battery"
REACHABLE = (0.6, 0.0, 0.0025)
"""On the floor, 0.45 m from R2 and from R4 (both also reach F1); far from R1 and R3."""


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


def loaded_unit(w: World) -> None:
    """Frame-0001 started and loaded into F1; battery, board and screen on their trays."""
    w.step()
    spawns = tuple(
        w.event(WorldEventKind.SPAWNED, pid, loc)
        for pid, loc in (
            ("frame-0001", "conveyor:infeed"),
            ("battery-0001", "feeder:battery_tray"),
            ("board-0001", "feeder:board_tray"),
            ("screen-0001", "feeder:screen_tray"),
        )
    )
    w.sensors["infeed.end"] = "frame-0001"
    load = award(w, w.step(events=spawns), "R1")
    w.sensors["infeed.end"] = ""
    w.step(
        ("R1", OpStarted(load.op.op_id, "R1", w.k * TICK)),
        events=(w.event(WorldEventKind.GRASPED, "frame-0001", "gripper:R1"),),
    )
    in_f1 = lying("frame-0001", 0.0, 0.28, 0.154)
    w.step(events=(w.event(WorldEventKind.SETTLED, "frame-0001", "fixture:F1", pose=in_f1),))
    w.step(("R1", OpReport(load.op.op_id, "R1", OpStatus.DONE, "", w.k * TICK, None)))


def battery_dropped(w: World, rest: WorldEvent | None = None) -> None:
    """R2 picks battery-0001 for F1 and drops it; the world reports ``rest`` (by default:
    flat on the floor where R2 and R4 reach it)."""
    loaded_unit(w)
    go = award(w, until_called(w, BATTERY_OP), "R2")
    assert go.op.pick is None and go.op.src == "battery_tray"
    w.step(
        ("R2", OpStarted(BATTERY_OP, "R2", w.k * TICK)),
        events=(w.event(WorldEventKind.GRASPED, "battery-0001", "gripper:R2"),),
    )
    dropped = "dropped battery-0001: gripper holds nothing"
    w.step(("R2", OpReport(BATTERY_OP, "R2", OpStatus.FAILED, dropped, w.k * TICK, None)))
    assert w.sup.ops[BATTERY_OP].state is OpState.READY
    if rest is None:
        rest = w.event(
            WorldEventKind.SETTLED, "battery-0001", "floor", pose=lying("battery-0001", *REACHABLE)
        )
    w.step(events=(rest,))


def request(h: Harness, req: ControlRequest) -> tuple[list[tuple[str, Message]], list[str]]:
    """One tick whose world report carries a control request (as the cell host routes it).

    Returns what the supervisor sent and the event-log lines it wrote.
    """
    sensors = tuple(SensorReading(s, p) for s, p in sorted(h.sensors.items()))
    act = h.sup.step(Tick(h.k, h.k * TICK, (), WorldSense((), sensors, (req,))), [], h.out)
    h.k += 1
    assert isinstance(act, WorldAct)
    return h.out.take(), list(act.events)
