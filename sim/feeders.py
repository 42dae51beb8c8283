"""Feeders: when each makes its next part, and whether there is room for it.

A conveyor feeder makes a part at the belt's start every ``interval`` +/-
``jitter`` seconds while the start is clear and fewer than ``limit`` of its
parts are on the belt; a tray feeder makes one ``interval`` seconds after its
tray is emptied (the first at t=0). Positions and headings get a small seeded
jitter so that different seeds differ physically.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Protocol

from bus.cellspec import CellSpec, FeederSpec
from sim.conveyors import Conveyor
from sim.parts import Placed, Vec3
from sim.stations import Tray

SPAWN_DROP = 0.005
"""Parts are made this far above the face they land on (m)."""
SPAWN_XY_JITTER = 0.003
"""Seeded jitter of a new part's position (m)."""
SPAWN_YAW_JITTER = 0.03
"""Seeded jitter of a new part's heading (rad)."""
SPAWN_CLEARANCE = 0.01
"""Free belt needed beyond a new part on a conveyor (m)."""

Spawn = Callable[[FeederSpec, Vec3, float, str], Placed]
"""Makes a part for a feeder at (centre, heading, location) and returns it placed."""


class FeedGate(Protocol):
    """Material from outside the cell (a factory's store): a gated feeder makes a part only
    while the gate allows it, and tells the gate of each part it made. Called on the world's
    thread, in feeder name order, so the parts a gate sees come in the event log's order."""

    def may_feed(self, feeder: str) -> bool:
        """Whether ``feeder`` may make a part now."""
        ...

    def fed(self, feeder: str, part: str) -> None:
        """``feeder`` made ``part``."""
        ...


@dataclasses.dataclass(slots=True)
class FeederState:
    """When a feeder makes its next part."""

    spec: FeederSpec
    next_ns: int | None = 0
    """Sim time of the next part; None while a tray is occupied. The first is due at the
    feeder's ``start`` (t=0 unless it says)."""

    def schedule(self, now_ns: int, rng: random.Random) -> None:
        """Set the next part's time after one was made (or a tray emptied) at ``now_ns``."""
        s = self.spec.interval
        if self.spec.pose is None and self.spec.jitter > 0:
            s += rng.uniform(-self.spec.jitter, self.spec.jitter)
        self.next_ns = now_ns + round(max(0.0, s) * 1e9)


class Feeders:
    """Every feeder of a cell, walked in name order; the world makes the parts."""

    def __init__(
        self,
        cell: CellSpec,
        conveyors: dict[str, Conveyor],
        trays: dict[str, Tray],
        rng: random.Random,
    ) -> None:
        self.cell = cell
        self.conveyors = conveyors
        self.trays = trays
        self.rng = rng
        self.gate: FeedGate | None = None
        """Without a gate (a lone cell), feeders never run out."""
        self.states = [
            FeederState(f, next_ns=round(f.start * 1e9))
            for f in sorted(cell.feeders, key=lambda f: f.name)
        ]

    def feed(self, now: int, free: list[Placed], spawn: Spawn) -> None:
        """Make every part that is due and has room; ``free`` grows with each new part."""
        for f in self.states:
            if f.spec.pose is not None:
                self._tray(f, now, free, spawn)
            else:
                self._belt(f, now, free, spawn)

    def _tray(self, f: FeederState, now: int, free: list[Placed], spawn: Spawn) -> None:
        spec = f.spec
        assert spec.pose is not None
        tray = self.trays[spec.name]
        if any(tray.holds(pt, pos) for pt, pos, _ in free):
            f.next_ns = None
            return
        if f.next_ns is None:
            f.schedule(now, self.rng)
        if f.next_ns is not None and now >= f.next_ns and self.may(spec.name):
            hz = self.cell.part_kind(spec.part).size[2] / 2
            jx, jy, jyaw = self._jitter()
            pos = (spec.pose.x + jx, spec.pose.y + jy, spec.pose.z + hz + SPAWN_DROP)
            free.append(spawn(spec, pos, spec.pose.yaw + jyaw, f"feeder:{spec.name}"))
            self.tell(spec.name, free[-1][0].id)
            f.next_ns = None

    def _belt(self, f: FeederState, now: int, free: list[Placed], spawn: Spawn) -> None:
        spec = f.spec
        if f.next_ns is None or now < f.next_ns:
            return
        belt = self.conveyors[spec.conveyor]
        where = f"conveyor:{belt.name}"
        mine = sum(1 for pt, _, _ in free if pt.feeder == spec.name and pt.location == where)
        if mine >= spec.limit:
            return
        hx, _, hz = (s / 2 for s in self.cell.part_kind(spec.part).size)
        along = hx + SPAWN_DROP
        room = along + hx + SPAWN_CLEARANCE
        for pt, pos, orn in free:
            if belt.on_belt(pt, pos) and belt.rear_gap(pt, pos, orn, 0.0) < room:
                return  # the start of the belt is not clear yet: try again next tick
        if not self.may(spec.name):
            return  # out of material: try again next tick
        jx, jy, jyaw = self._jitter()
        x, y = belt.point(along + jx, jy)
        pos = (x, y, belt.spec.height + hz + SPAWN_DROP)
        free.append(spawn(spec, pos, belt.yaw + jyaw, where))
        self.tell(spec.name, free[-1][0].id)
        f.schedule(now, self.rng)

    def may(self, name: str) -> bool:
        """Whether feeder ``name`` may make a part now (always, without a gate)."""
        return self.gate is None or self.gate.may_feed(name)

    def tell(self, name: str, part: str) -> None:
        """Feeder ``name`` made ``part``: the gate, if any, hears of it."""
        if self.gate is not None:
            self.gate.fed(name, part)

    def _jitter(self) -> tuple[float, float, float]:
        r, j = self.rng, SPAWN_XY_JITTER
        return (r.uniform(-j, j), r.uniform(-j, j), r.uniform(-SPAWN_YAW_JITTER, SPAWN_YAW_JITTER))
