"""Conveyors: a mass-0 belt held in place and given the belt speed every step.

DESIGN "Physics choices": parts ride the belt by friction at exactly belt
speed and queue at the end stop by slipping on it, so a queue needs no logic.
An infeed belt accumulates with zero pressure, as real ones do: once the part
at the stop has another close behind it, the belt halts until the head is
taken. (Left running, the belt kept pushing the second part into the first,
and a thin part waiting long enough rode up onto the other and off the belt.)
"""

from __future__ import annotations

import math

import pybullet as p

from bus.cellspec import BELT_RGBA, BELT_THICKNESS, ConveyorSpec, StationKind
from sim.parts import Part, Placed, Quat, Vec3, half_along, static_box, to_frame, yaw_quat

STOP_THICKNESS = 0.01
"""Thickness of the end stop wall (metres)."""
STOP_HEIGHT = 0.04
"""How far the end stop rises above the belt (metres)."""
END_SENSOR_RANGE = 0.05
QUEUE_GAP = 0.02
"""A part whose leading edge is this close behind the head's trailing edge has caught up."""
"""A part whose leading edge is this close to the stop is seen by the end sensor (metres)."""
STATION_INSET = 0.1
"""How far ``CellSpec.stations()`` puts an infeed station before the belt's end (metres)."""
ON_BELT_Z = 0.007
"""How far a part's bottom may be from the belt's top and still be on the belt (metres):
more than the 5 mm a new part is dropped from, less than a frame's thickness."""


class Conveyor:
    """One belt with its end stop and end sensor."""

    def __init__(self, client: int, spec: ConveyorSpec, *, fed_length: float = 0.0) -> None:
        """Build the belt; ``fed_length`` is the length of the longest part fed onto it.

        On an infeed conveyor the stop stands so that a queued part of that
        length has its centre on the station (``CellSpec.stations()``), where
        robots are told to pick; otherwise the stop stands at the belt's end.
        """
        self.client = client
        self.spec = spec
        self.name = spec.name
        self.yaw = spec.yaw
        self.length = spec.length
        self.stopped = False
        """A jam: the belt stands still."""
        self.accumulated = False
        """An infeed queue is complete: the belt waits for the head to be taken."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        self.dir = (c, s)
        if spec.role is StationKind.INFEED and fed_length > 0:
            stop = min(self.length, self.length - STATION_INSET + fed_length / 2)
        else:
            stop = self.length
        self.stop_along = stop
        """Distance from the start to the stop's inner face."""
        mid = self.length / 2
        self._pos = [
            spec.start[0] + c * mid,
            spec.start[1] + s * mid,
            spec.height - BELT_THICKNESS / 2,
        ]
        self._orn = yaw_quat(self.yaw)
        half = (self.length / 2, spec.width / 2, BELT_THICKNESS / 2)
        self.belt = static_box(
            client, half, (self._pos[0], self._pos[1], self._pos[2]), self.yaw, BELT_RGBA
        )
        wall = stop + STOP_THICKNESS / 2
        wall_pos = (
            spec.start[0] + c * wall,
            spec.start[1] + s * wall,
            spec.height + STOP_HEIGHT / 2,
        )
        wall_half = (STOP_THICKNESS / 2, spec.width / 2 + 0.01, STOP_HEIGHT / 2)
        self.stop_body = static_box(client, wall_half, wall_pos, self.yaw, (0.8, 0.5, 0.1, 1))
        self._vel = [c * spec.speed, s * spec.speed, 0.0]
        self._zero = [0.0, 0.0, 0.0]
        self.speed = spec.speed
        """The belt's speed now (m/s): the cell file's, less what wear took (``sim.wear``)."""

    def set_speed(self, speed: float) -> None:
        """Run the belt at ``speed`` (m/s) from the next physics step (a worn belt is slower)."""
        c, s = self.dir
        self.speed = speed
        self._vel = [c * speed, s * speed, 0.0]

    def hold(self) -> None:
        """Before a physics step: belt back in place, moving at belt speed (or still)."""
        cid = self.client
        p.resetBasePositionAndOrientation(self.belt, self._pos, self._orn, physicsClientId=cid)
        vel = self._zero if self.stopped or self.accumulated else self._vel
        p.resetBaseVelocity(self.belt, vel, self._zero, physicsClientId=cid)

    @property
    def velocity(self) -> tuple[float, float]:
        """The belt surface's velocity in the plane."""
        if self.stopped or self.accumulated:
            return (0.0, 0.0)
        return (self._vel[0], self._vel[1])

    def local(self, pos: Vec3) -> tuple[float, float]:
        """``pos`` as (along from the start, across from the centre line)."""
        return to_frame(pos[0], pos[1], self.spec.start[0], self.spec.start[1], self.yaw)

    def on_belt(self, part: Part, pos: Vec3) -> bool:
        """Whether ``part`` (centre ``pos``) lies on the belt's top face."""
        along, across = self.local(pos)
        if not -0.01 <= along <= self.length + 0.01 or abs(across) > self.spec.width / 2:
            return False
        return abs(pos[2] - part.half[2] - self.spec.height) <= ON_BELT_Z

    def end_gap(self, part: Part, pos: Vec3, orn: Quat) -> float:
        """Distance from ``part``'s leading edge to the stop."""
        along, _ = self.local(pos)
        return self.stop_along - (along + half_along(part, orn, self.yaw))

    def end_sensor(self, free: list[Placed]) -> str:
        """The part at (or nearest) the stop, within the sensor's range ("" for none)."""
        best, best_gap = "", END_SENSOR_RANGE
        for pt, pos, orn in free:
            if self.on_belt(pt, pos):
                gap = self.end_gap(pt, pos, orn)
                if gap <= best_gap:
                    best, best_gap = pt.id, gap
        return best

    def accumulate(self, head: str, free: list[Placed]) -> None:
        """An infeed belt halts while a part queues close behind the one at the stop (``head``).

        Zero-pressure accumulation: the queue stays compact and nothing pushes.
        """
        if self.spec.role is not StationKind.INFEED or not head:
            self.accumulated = False
            return
        placed = {pt.id: (pt, pos, orn) for pt, pos, orn in free if self.on_belt(pt, pos)}
        if head not in placed:
            self.accumulated = False
            return
        hp, hpos, horn = placed[head]
        head_rear = self.local(hpos)[0] - half_along(hp, horn, self.yaw)
        self.accumulated = any(
            head_rear - (self.local(pos)[0] + half_along(pt, orn, self.yaw)) <= QUEUE_GAP
            for pid, (pt, pos, orn) in placed.items()
            if pid != head
        )

    def rear_gap(self, part: Part, pos: Vec3, orn: Quat, along0: float) -> float:
        """Distance from ``along0`` to ``part``'s trailing edge."""
        along, _ = self.local(pos)
        return along - half_along(part, orn, self.yaw) - along0

    def point(self, along: float, across: float = 0.0) -> tuple[float, float]:
        """The world (x, y) at ``along`` from the start and ``across`` from the centre line."""
        c, s = self.dir
        x0, y0 = self.spec.start
        return (x0 + c * along - s * across, y0 + s * along + c * across)
