"""Parts: the boxes the cell moves, their table and the geometry the world reasons with.

A part is a dynamic PyBullet box made from a ``PartKind``. The world keeps one
``Part`` record per live part; its ``location`` is the ledger location the
supervisor is told about (DESIGN principle 5), and only changes together with
a ``WorldEvent``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import pybullet as p

from bus.cellspec import PartKind

FRICTION = 0.8
"""Lateral friction of parts, belts, trays and fixtures: parts ride a belt without slipping."""

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclasses.dataclass(slots=True)
class Part:
    """One live part in the world."""

    id: str
    kind: PartKind
    body: int
    location: str
    feeder: str = ""
    """The feeder that made it ("" for parts placed by hand)."""
    unit: str = ""
    """The unit base it is joined to ("" if it is free or is a base itself)."""
    joint: int = -1
    """The constraint joining it to its unit base (-1 for none)."""
    members: list[str] = dataclasses.field(default_factory=list)
    """For a unit base: the parts joined to it, in the order they were joined."""
    fastened: bool = False
    """For a unit base: its screws were driven."""
    torques: tuple[float, ...] = ()
    """For a unit base: the torque each screw was last driven to (N m), if its recipe sets
    one: the unit's own record of how well it was fastened."""
    held_by: str = ""
    """The robot whose gripper holds it ("" for none)."""

    @property
    def half(self) -> Vec3:
        """Half extents of the box."""
        sx, sy, sz = self.kind.size
        return (sx / 2, sy / 2, sz / 2)


Placed = tuple[Part, Vec3, Quat]
"""A part with its centre and orientation, read once per tick."""


class PartFactory:
    """Makes part bodies, reusing one collision and one visual shape per kind.

    Parts are plain rigid bodies (maximal coordinates): their contacts solve
    about a third faster than a multibody's. Parts of the ``multibody`` kind
    (the recipe's base part, that units are built on) are multibodies instead,
    so that every constraint the world makes (a grasp: arm link to part; a
    unit joint: base to member) has a multibody on one side. PyBullet 3.2.x
    frees the wrong constraint when a multibody constraint is removed while a
    rigid-to-rigid one exists (its user-constraint table moves an entry under
    the pointer it is deleting through), which double-frees later: so the
    world never makes a rigid-to-rigid constraint.
    """

    def __init__(self, client: int, *, multibody: frozenset[str]) -> None:
        self.client = client
        self.multibody = multibody
        self._shapes: dict[str, tuple[int, int]] = {}
        self._counters: dict[str, int] = {}

    def carry_on(self, last: Mapping[str, int]) -> None:
        """Number each kind's parts after ``last[kind]`` (a resumed run's ids stay unique)."""
        for kind, n in last.items():
            self._counters[kind] = max(self._counters.get(kind, 0), n)

    def next_id(self, kind: str) -> str:
        """The next deterministic id for ``kind``: ``frame-0001``, ``frame-0002``, ..."""
        n = self._counters.get(kind, 0) + 1
        self._counters[kind] = n
        return f"{kind}-{n:04d}"

    def body(self, kind: PartKind, pos: Vec3, yaw: float) -> int:
        """A new dynamic box of ``kind`` with its centre at ``pos``, turned by ``yaw``."""
        shapes = self._shapes.get(kind.name)
        if shapes is None:
            shapes = self._shapes[kind.name] = _shapes(self.client, kind)
        body = int(
            p.createMultiBody(
                baseMass=kind.mass,
                baseCollisionShapeIndex=shapes[0],
                baseVisualShapeIndex=shapes[1],
                basePosition=list(pos),
                baseOrientation=yaw_quat(yaw),
                useMaximalCoordinates=kind.name not in self.multibody,
                physicsClientId=self.client,
            )
        )
        p.changeDynamics(body, -1, lateralFriction=FRICTION, physicsClientId=self.client)
        return body


def _shapes(client: int, kind: PartKind) -> tuple[int, int]:
    """The collision and visual shape of a part kind: a box, or an upright cylinder."""
    rgba = list(kind.color)
    if kind.shape == "cylinder":
        r, h = kind.size[0] / 2, kind.size[2]
        col = p.createCollisionShape(p.GEOM_CYLINDER, radius=r, height=h, physicsClientId=client)
        vis = p.createVisualShape(
            p.GEOM_CYLINDER, radius=r, length=h, rgbaColor=rgba, physicsClientId=client
        )
        return int(col), int(vis)
    half = [s / 2 for s in kind.size]
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=client)
    return int(col), int(vis)


def static_box(client: int, half: Vec3, pos: Vec3, yaw: float, rgba: tuple[float, ...]) -> int:
    """A mass-0 box (tray, fixture, end stop, belt): it never moves unless reset."""
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=list(half), physicsClientId=client)
    vis = p.createVisualShape(
        p.GEOM_BOX, halfExtents=list(half), rgbaColor=list(rgba), physicsClientId=client
    )
    body = int(
        p.createMultiBody(
            baseMass=0,
            baseCollisionShapeIndex=col,
            baseVisualShapeIndex=vis,
            basePosition=list(pos),
            baseOrientation=yaw_quat(yaw),
            physicsClientId=client,
        )
    )
    p.changeDynamics(body, -1, lateralFriction=FRICTION, physicsClientId=client)
    return body


UNIT_BITS = tuple(1 << b for b in range(6, 31))
"""Collision group bits for units, above the groups Bullet itself uses (1 to 32)."""


class UnitGroups:
    """Collision groups that keep the parts of one unit from touching each other.

    A unit's parts are held together by constraints; contacts between them only
    cost solver time (about 12 us per member per step). Each unit gets a group
    bit: its parts are in that group and collide with every group but it. The
    group lives on the bodies, so it goes away with them: a pair filter
    (``setCollisionFilterPair``) would outlive them, and PyBullet hands the ids
    of removed bodies to new ones. With more units than bits, members just touch.
    """

    def __init__(self, client: int) -> None:
        self.client = client
        self._free = list(UNIT_BITS)
        self._bits: dict[str, int] = {}

    def join(self, base: Part, member: Part) -> None:
        """Put ``member`` in ``base``'s unit group (making the group on the first member)."""
        bit = self._bits.get(base.id)
        if bit is None:
            if not self._free:
                return
            bit = self._bits[base.id] = self._free.pop(0)
            self._set(base.body, bit)
        self._set(member.body, bit)

    def drop(self, base: str) -> None:
        """Unit ``base`` is gone: its bit is free again."""
        bit = self._bits.pop(base, None)
        if bit is not None:
            self._free.append(bit)
            self._free.sort()

    def _set(self, body: int, bit: int) -> None:
        p.setCollisionFilterGroupMask(body, -1, bit, ~bit, physicsClientId=self.client)


HOLD_FORCE = 500.0
"""Largest force of grasp and unit constraints (N): far above any phone part's weight."""
STIFF_G = 60.0
"""A unit joint may pull with this many times the weight of the unit (in g): a joint
weaker than what its parts weigh under the arm's swing lets a heavy stack (an arm's
base under its segments) sag and wobble, and Bullet's soft limit shows as drift. An
arm swung at 1.5 rad/s peaks near 7 g at its tip, so 60 g keeps it rigid to well under
a millimetre; ``fix`` takes the larger of this and ``HOLD_FORCE``."""


def fix(
    client: int,
    parent: tuple[int, int, tuple[Vec3, Quat]],
    child: int,
    pose: tuple[Vec3, Quat],
    *,
    max_force: float = 0.0,
) -> int:
    """Fix body ``child`` (now at ``pose``) to ``parent`` = (body, link, link's centre-of-mass
    pose) where they are now; return the constraint.

    The grasp and a unit's joints are such constraints (DESIGN "Physics choices");
    PyBullet takes the parent frame relative to the link's centre of mass.
    """
    body, link, (ppos, porn) = parent
    inv_pos, inv_orn = p.invertTransform(ppos, porn)
    rel_pos, rel_orn = p.multiplyTransforms(inv_pos, inv_orn, pose[0], pose[1])
    cid = p.createConstraint(
        body,
        link,
        child,
        -1,
        p.JOINT_FIXED,
        [0, 0, 0],
        rel_pos,
        [0, 0, 0],
        rel_orn,
        [0, 0, 0, 1],
        physicsClientId=client,
    )
    p.changeConstraint(cid, maxForce=max(HOLD_FORCE, max_force), physicsClientId=client)
    return int(cid)


CLEAR_ABOVE_M = 0.3
"""How high above a resting part the way down to it must be clear (m): a pick's approach
starts 0.12 m over the part, and the hand and wrist need room above that."""
GRIPPER_MARGIN = 0.03
"""How far beyond a part's footprint, on every side, a gripper needs room (m): its fingers
close from either side, and the hand is wider than the part."""
CLEAR_RAYS = (7, 5)
"""The way down is probed by this grid of rays (along, across the part) over the footprint
and its margin: about 3.5 cm apart for a frame."""


def lies(
    client: int, part: Part, pose: tuple[Vec3, Quat], bodies: Mapping[int, str]
) -> tuple[tuple[str, ...], bool]:
    """How ``part``, at rest at ``pose``, lies: the parts it touches and whether it is blocked.

    What a camera over the cell would tell a planner. Lifting a part that leans
    on others drags them along; a part under a belt's end, or on the floor
    tight beside a tray or a fixture, cannot be reached by a gripper coming
    straight down (``blocked``: a ray down over its footprint and
    ``GRIPPER_MARGIN`` around it meets something above the part's highest
    point, within ``CLEAR_ABOVE_M``). ``bodies`` maps body ids to part ids.
    Contacts are those of the last physics step. Arms are in neither answer:
    their links collide with nothing (rays pass through them), and they move away.
    """
    contacts = p.getContactPoints(bodyA=part.body, physicsClientId=client)
    touching = tuple(sorted({bodies[c[2]] for c in contacts if c[2] in bodies} - {part.id}))
    pos, orn = pose
    hx, hy, hz = part.half
    corners = (
        p.multiplyTransforms(pos, orn, (a * hx, b * hy, c * hz), (0.0, 0.0, 0.0, 1.0))[0]
        for a in (-1, 1)
        for b in (-1, 1)
        for c in (-1, 1)
    )
    top = max(corner[2] for corner in corners) + 0.001
    ax, ay = hx + GRIPPER_MARGIN, hy + GRIPPER_MARGIN
    yaw = quat_yaw(orn)
    cos, sin = math.cos(yaw), math.sin(yaw)
    nx, ny = CLEAR_RAYS
    starts: list[list[float]] = []
    ends: list[list[float]] = []
    for i in range(nx):
        for j in range(ny):
            lx, ly = ax * (2 * i / (nx - 1) - 1), ay * (2 * j / (ny - 1) - 1)
            x, y = pos[0] + cos * lx - sin * ly, pos[1] + sin * lx + cos * ly
            starts.append([x, y, top + CLEAR_ABOVE_M])
            ends.append([x, y, top])
    hits = p.rayTestBatch(starts, ends, physicsClientId=client)
    blocked = any(h[0] >= 0 and h[0] != part.body for h in hits)
    return touching, blocked


def yaw_quat(yaw: float) -> list[float]:
    """The quaternion (x, y, z, w) of a turn by ``yaw`` about world z."""
    return [0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]


def quat_yaw(q: Quat) -> float:
    """The heading (rotation about world z) of quaternion ``q``."""
    x, y, z, w = q
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def to_frame(x: float, y: float, ox: float, oy: float, yaw: float) -> tuple[float, float]:
    """Point ``(x, y)`` in the frame at ``(ox, oy)`` turned by ``yaw`` (along, across)."""
    dx, dy = x - ox, y - oy
    c, s = math.cos(yaw), math.sin(yaw)
    return (c * dx + s * dy, -s * dx + c * dy)


def half_along(part: Part, orn: Quat, yaw: float) -> float:
    """Half the extent of ``part`` (resting flat, turned ``orn``) along heading ``yaw``."""
    hx, hy, _ = part.half
    d = quat_yaw(orn) - yaw
    return abs(hx * math.cos(d)) + abs(hy * math.sin(d))
