"""The ``/cell/scene`` markers of a bag: belts, stations and every live part.

Each ``MarkerArray`` holds the whole scene as it is (the fixed boxes of
``clients.scene`` and a box per live part, of its kind's size and colour),
and a ``DELETE`` for every part gone since the last one. A viewer that seeks
shows the latest array only, so each is complete on its own; one that plays
through sees a shipped or scrapped part vanish the moment it goes. A part's
box is ``frame_locked`` to its ``part/<id>`` frame in ``/tf``: it rides with
the part without a new array every tick, so arrays are written only when a
part appears or goes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bus.cellspec import CellSpec
from clients.scene import Box, part_look, part_shape, scene, yaw_quat

_EMPTY_BYTES = np.zeros(0, dtype=np.uint8)
NS_PARTS = "parts"
"""Marker namespace of the parts; a station's is its kind (``belt``, ``fixture``, ...)."""


class SceneMarkers:
    """Builds the marker arrays; ``types`` is the bag's typestore's ``types``."""

    def __init__(self, types: dict[str, Any], cell: CellSpec | None, world: str) -> None:
        self._t = types
        self._M = types["visualization_msgs/msg/Marker"]
        self.cell = cell
        self.world = world
        self.fixed = scene(cell) if cell is not None else []
        self.live: dict[str, str] = {}
        """Part id -> kind of every part in the last array."""
        self._ids: dict[str, int] = {}
        self._written = False

    def _id(self, part: str) -> int:
        return self._ids.setdefault(part, len(self._ids))

    def update(self, header: Any, parts: dict[str, str]) -> Any | None:
        """The array for the live ``parts`` (id -> kind), or None if none came or went."""
        if self._written and parts == self.live:
            return None
        self._written = True
        gone = [p for p in self.live if p not in parts]
        markers = [self._part(header, p, self.live[p], delete=True) for p in gone]
        markers += [self._box(header, i, b) for i, b in enumerate(self.fixed)]
        markers += [self._part(header, p, k, delete=False) for p, k in sorted(parts.items())]
        self.live = dict(parts)
        return self._t["visualization_msgs/msg/MarkerArray"](markers=markers)

    def _box(self, header: Any, i: int, b: Box) -> Any:
        qx, qy, qz, qw = yaw_quat(b.yaw)
        return self._marker(header, b.kind, i, (b.x, b.y, b.z, qx, qy, qz, qw), b.size, b.rgba)

    def _part(self, header: Any, part: str, kind: str, *, delete: bool) -> Any:
        cylinder = False
        if self.cell is not None:
            size, rgba = part_look(self.cell, kind)
            cylinder = part_shape(self.cell, kind) == "cylinder"
        else:
            size, rgba = (0.03, 0.03, 0.03), (0.55, 0.55, 0.55, 1.0)
        h = self._t["std_msgs/msg/Header"](stamp=header.stamp, frame_id=f"part/{part}")
        return self._marker(
            h,
            NS_PARTS,
            self._id(part),
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
            size,
            rgba,
            action=self._M.DELETE if delete else self._M.ADD,
            locked=True,
            text=part,
            shape=self._M.CYLINDER if cylinder else self._M.CUBE,
        )

    def _marker(
        self,
        header: Any,
        ns: str,
        mid: int,
        pose: tuple[float, ...],
        size: tuple[float, float, float],
        rgba: tuple[float, float, float, float],
        *,
        action: int = 0,
        locked: bool = False,
        text: str = "",
        shape: int | None = None,
    ) -> Any:
        t = self._t
        x, y, z, qx, qy, qz, qw = pose
        return self._M(
            header=header,
            ns=ns,
            id=mid,
            type=self._M.CUBE if shape is None else shape,
            action=action,
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
            ),
            scale=t["geometry_msgs/msg/Vector3"](x=size[0], y=size[1], z=size[2]),
            color=t["std_msgs/msg/ColorRGBA"](r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3]),
            lifetime=t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0),
            frame_locked=locked,
            points=[],
            colors=[],
            texture_resource="",
            texture=t["sensor_msgs/msg/CompressedImage"](
                header=header, format="", data=_EMPTY_BYTES
            ),
            uv_coordinates=[],
            text=text,
            mesh_resource="",
            mesh_file=t["visualization_msgs/msg/MeshFile"](filename="", data=_EMPTY_BYTES),
            mesh_use_embedded_materials=False,
        )
