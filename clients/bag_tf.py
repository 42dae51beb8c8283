"""An arm's links as a tf tree, from its URDF and the world's link poses.

RViz's RobotModel and Foxglove's URDF layer draw each link at the tf frame of
its name, so the bag must hold a frame per URDF link. They are laid out as
``robot_state_publisher`` would: one transform per URDF joint, parent link to
child link. Fixed joints (and the root under ``<robot>/base``) go once into
``/tf_static``; movable ones into ``/tf`` every control tick, computed from
the world's own link poses (``ArmState.link_poses``), not from a second
forward kinematics: composed from ``world``, they give back the world's
poses to rounding.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from bus.messages import Pose3

IDENTITY = Pose3(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Joint:
    """One URDF joint: its name, kind, parent and child link and its fixed origin."""

    name: str
    kind: str
    parent: str
    child: str
    origin: Pose3


@dataclasses.dataclass(frozen=True, slots=True)
class LinkTree:
    """The links and joints of one URDF, root first."""

    robot: str
    root: str
    links: tuple[str, ...]
    joints: tuple[Joint, ...]

    @property
    def movable(self) -> tuple[Joint, ...]:
        """The joints whose transform changes with the joint's position."""
        return tuple(j for j in self.joints if j.kind != "fixed")

    @property
    def fixed(self) -> tuple[Joint, ...]:
        """The joints whose transform never changes."""
        return tuple(j for j in self.joints if j.kind == "fixed")


def _rpy_quat(r: float, p: float, y: float) -> tuple[float, float, float, float]:
    cr, sr = math.cos(r / 2), math.sin(r / 2)
    cp, sp = math.cos(p / 2), math.sin(p / 2)
    cy, sy = math.cos(y / 2), math.sin(y / 2)
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def _floats(text: str | None) -> tuple[float, float, float]:
    vals = [float(v) for v in (text or "0 0 0").split()]
    return vals[0], vals[1], vals[2]


def parse_urdf(robot: str, text: str) -> LinkTree:
    """The tree of a URDF ``text`` (as ``cells.models.robot_description`` writes it)."""
    root = ET.fromstring(text)
    links = tuple(str(link.get("name")) for link in root.iter("link"))
    joints = []
    for j in root.iter("joint"):
        origin = j.find("origin")
        xyz = _floats(origin.get("xyz") if origin is not None else None)
        rpy = _floats(origin.get("rpy") if origin is not None else None)
        parent, child = j.find("parent"), j.find("child")
        joints.append(
            Joint(
                name=str(j.get("name")),
                kind=str(j.get("type")),
                parent=str(parent.get("link") if parent is not None else ""),
                child=str(child.get("link") if child is not None else ""),
                origin=Pose3(*xyz, *_rpy_quat(*rpy)),
            )
        )
    children = {j.child for j in joints}
    top = next(name for name in links if name not in children)
    return LinkTree(robot=robot, root=top, links=links, joints=tuple(joints))


def mul(a: Pose3, b: Pose3) -> Pose3:
    """The frame ``b`` (given in ``a``) in ``a``'s parent: ``a * b``."""
    ax, ay, az, aw = a.qx, a.qy, a.qz, a.qw
    bx, by, bz, bw = b.qx, b.qy, b.qz, b.qw
    x, y, z = _rotate(a, b.x, b.y, b.z)
    return Pose3(
        a.x + x,
        a.y + y,
        a.z + z,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def _rotate(q: Pose3, x: float, y: float, z: float) -> tuple[float, float, float]:
    qx, qy, qz, qw = q.qx, q.qy, q.qz, q.qw
    # v + 2w (u x v) + 2 u x (u x v), u the quaternion's vector part
    tx, ty, tz = 2 * (qy * z - qz * y), 2 * (qz * x - qx * z), 2 * (qx * y - qy * x)
    return (
        x + qw * tx + qy * tz - qz * ty,
        y + qw * ty + qz * tx - qx * tz,
        z + qw * tz + qx * ty - qy * tx,
    )


def relative7(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """``b`` in ``a``'s frame, both (x, y, z, qx, qy, qz, qw) in the world: ``inverse(a) * b``.

    Written out (no ``Pose3`` in between): the recorder does it for every
    movable joint of every arm every tick.
    """
    ax, ay, az, qx, qy, qz, qw = a
    bx, by, bz, rx, ry, rz, rw = b
    # rotate (b - a) by the conjugate of a's quaternion
    dx, dy, dz = bx - ax, by - ay, bz - az
    tx, ty, tz = 2 * (-qy * dz + qz * dy), 2 * (-qz * dx + qx * dz), 2 * (-qx * dy + qy * dx)
    px = dx + qw * tx - qy * tz + qz * ty
    py = dy + qw * ty - qz * tx + qx * tz
    pz = dz + qw * tz - qx * ty + qy * tx
    # conj(qa) * qb
    return (
        px,
        py,
        pz,
        qw * rx - qx * rw - qy * rz + qz * ry,
        qw * ry + qx * rz - qy * rw - qz * rx,
        qw * rz - qx * ry + qy * rx - qz * rw,
        qw * rw + qx * rx + qy * ry + qz * rz,
    )


class Mover:
    """The movable joints' transforms of one arm from its flat link poses, fast.

    Where each joint's parent and child sit in the telemetry's ``links`` is
    worked out once per list of names (it never changes in a run).
    """

    def __init__(self, tree: LinkTree) -> None:
        self.tree = tree
        self._names: tuple[str, ...] | None = None
        self._index: list[tuple[str, str, int, int]] = []

    def moving(
        self, names: tuple[str, ...], flat: tuple[float, ...]
    ) -> list[tuple[str, str, Sequence[float]]]:
        """(parent, child, parent-to-child transform) of each movable joint the world reported.

        ``names`` are the world's link names (without the robot's prefix) and
        ``flat`` their poses, seven numbers each; a joint whose link the world
        did not report is left out (the viewer shows the link where it last was).
        """
        if names != self._names:
            prefix = f"{self.tree.robot}/"
            at = {prefix + n: i * 7 for i, n in enumerate(names)}
            self._names = names
            self._index = [
                (j.parent, j.child, at[j.parent], at[j.child])
                for j in self.tree.movable
                if j.parent in at and j.child in at
            ]
        if len(flat) < 7 * len(names):
            return []
        return [
            (parent, child, relative7(flat[i : i + 7], flat[k : k + 7]))
            for parent, child, i, k in self._index
        ]
