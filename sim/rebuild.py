"""Rebuilding units in a fresh world: what a resumed run's world starts with.

``lightsout resume`` (``cells.resume``) keeps the units that stood in their
fixtures, or rode an outfeed belt, when the run was cut off; the world puts
each back as the ledger has it: its base part on the fixture (or where the
belt takes units on, to ride it again), every part joined to it where the
recipe puts it (``OperationSpec.offset``), fastened if it was. The parts keep
their ids and raise no events: the supervisor's ledger holds them already.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from sim.parts import Part

if TYPE_CHECKING:
    from sim.world import World


@dataclasses.dataclass(frozen=True, slots=True)
class KeptUnit:
    """A unit to stand at ``location`` again (``fixture:F1``, ``conveyor:outfeed``): its base
    part and the parts joined to it."""

    unit: str
    kind: str
    location: str
    members: tuple[tuple[str, str, tuple[float, float, float]], ...]
    """(part id, kind, offset on the base's top centre in its frame) in the order joined."""
    fastened: bool


def rebuild(world: World, units: tuple[KeptUnit, ...]) -> None:
    """Put ``units`` into ``world`` (after ``setup``), silently."""
    quiet = len(world._events)
    for u in units:
        on, _, name = u.location.partition(":")
        pose = world.fixtures[name].pose if on == "fixture" else world.cell.stations()[name].pose
        kind = world.cell.part_kind(u.kind)
        top = pose.z + kind.size[2]
        base = _spawn(world, u.unit, u.kind, (pose.x, pose.y, pose.z + kind.size[2] / 2), pose.yaw)
        base.location = u.location
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        for pid, mkind, (dx, dy, dz) in u.members:
            half = world.cell.part_kind(mkind).size[2] / 2
            pos = (pose.x + c * dx - s * dy, pose.y + s * dx + c * dy, top + dz + half)
            world._attach(_spawn(world, pid, mkind, pos, pose.yaw), base)
        base.fastened = u.fastened
    del world._events[quiet:]  # the ledger has them already: no SPAWNED, no ATTACHED


def _spawn(world: World, pid: str, kind: str, pos: tuple[float, float, float], yaw: float) -> Part:
    factory = world._factory
    assert factory is not None, "World.setup() was not called"
    k = world.cell.part_kind(kind)
    part = Part(id=pid, kind=k, body=factory.body(k, pos, yaw), location="")
    world._parts[pid] = part
    return part
