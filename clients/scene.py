"""The cell's fixed scene as boxes: belts and a block per station, from the cell description.

A bag's ``/cell/scene`` markers and the report's picture both draw from
here, so they show the same cell. Stations come from ``CellSpec.stations()``
and are drawn by their kind through ``STATION_SHAPES``: a new kind of
station (a commissioning bay, say) is drawn as a plain grey block until it
is given its own entry there, never left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from bus.cellspec import (
    BELT_RGBA,
    BELT_THICKNESS,
    FIXTURE_FOOTPRINT,
    FIXTURE_RGBA,
    MOUNT_RGBA,
    STAND_RGBA,
    TRAY_MARGIN,
    TRAY_RGBA,
    CellSpec,
    Station,
    StationKind,
)

RGBA = tuple[float, float, float, float]
OTHER_RGBA: RGBA = (0.55, 0.55, 0.55, 1.0)
OTHER_FOOTPRINT = (0.2, 0.2)
"""A station of a kind ``STATION_SHAPES`` does not know: a grey block this size (metres)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    """A box in the cell: its centre, heading (yaw about z), full size and colour."""

    name: str
    kind: str
    x: float
    y: float
    z: float
    yaw: float
    size: tuple[float, float, float]
    rgba: RGBA


def _block(st: Station, footprint: tuple[float, float], rgba: RGBA) -> Box:
    """A block from the floor up to the station's face."""
    h = max(st.pose.z, 0.005)
    p = st.pose
    return Box(st.name, st.kind.value, p.x, p.y, h / 2, p.yaw, (*footprint, h), rgba)


def _fixture(cell: CellSpec, st: Station) -> Box | None:
    return _block(st, FIXTURE_FOOTPRINT, FIXTURE_RGBA)


def _stand(cell: CellSpec, st: Station) -> Box | None:
    return _block(st, FIXTURE_FOOTPRINT, STAND_RGBA)


def _mount(cell: CellSpec, st: Station) -> Box | None:
    return _block(st, FIXTURE_FOOTPRINT, MOUNT_RGBA)


def _tray(cell: CellSpec, st: Station) -> Box | None:
    feeder = cell.feeder_for(st.name)
    if feeder is None:
        return _block(st, OTHER_FOOTPRINT, TRAY_RGBA)
    sx, sy, _ = cell.part_kind(feeder.part).size
    return _block(st, (sx + 2 * TRAY_MARGIN, sy + 2 * TRAY_MARGIN), TRAY_RGBA)


def _on_belt(cell: CellSpec, st: Station) -> Box | None:
    return None  # a belt's end is drawn with the belt


STATION_SHAPES: dict[StationKind, Callable[[CellSpec, Station], Box | None]] = {
    StationKind.FIXTURE: _fixture,
    StationKind.STAND: _stand,
    StationKind.MOUNT: _mount,
    StationKind.TRAY: _tray,
    StationKind.INFEED: _on_belt,
    StationKind.OUTFEED: _on_belt,
}
"""How each kind of station is drawn (None: not at all, something else draws it)."""


def belts(cell: CellSpec) -> list[Box]:
    """Every conveyor's belt slab, its top face at the belt's height."""
    out = []
    for c in cell.conveyors:
        mx, my = (c.start[0] + c.end[0]) / 2, (c.start[1] + c.end[1]) / 2
        z = c.height - BELT_THICKNESS / 2
        size = (c.length, c.width, BELT_THICKNESS)
        out.append(Box(c.name, "belt", mx, my, z, c.yaw, size, BELT_RGBA))
    return out


def stations(cell: CellSpec) -> list[Box]:
    """A block for every station that has one, by its kind."""
    out = []
    for st in cell.stations().values():
        draw = STATION_SHAPES.get(st.kind)
        box = draw(cell, st) if draw is not None else _block(st, OTHER_FOOTPRINT, OTHER_RGBA)
        if box is not None:
            out.append(box)
    return out


def scene(cell: CellSpec) -> list[Box]:
    """The whole fixed scene: belts, then stations."""
    return belts(cell) + stations(cell)


def part_look(cell: CellSpec, kind: str) -> tuple[tuple[float, float, float], RGBA]:
    """The size and colour of a part of ``kind`` (a small grey cube for a kind not in the cell)."""
    for k in cell.parts:
        if k.name == kind:
            r, g, b, a = k.color
            return k.size, (r, g, b, a)
    return (0.03, 0.03, 0.03), OTHER_RGBA


def part_shape(cell: CellSpec, kind: str) -> str:
    """``box`` or ``cylinder``: how a part of ``kind`` is drawn."""
    for k in cell.parts:
        if k.name == kind:
            return k.shape
    return "box"


def yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    """The quaternion (x, y, z, w) of a turn by ``yaw`` about z."""
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
