"""Scripted fakes: a tiny kinematic world and a tick driver, for tests and demos.

``FakeWorld`` stands in for ``sim/``: arms go exactly where they are told,
a grasp succeeds when the tool is on a part's top, a released part stays
where it was let go, observe/inspect are answered on the next tick. It can be
told to misbehave (never grasp, hide a part, drop what a robot holds).
``FakeRun`` steps one agent against it as the clock would, delivering
scripted supervisor messages on the next tick, with no sockets at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TypeVar

from bus.cellspec import CellSpec, Pose
from bus.enums import Grip
from bus.messages import (
    Envelope,
    Inspection,
    Message,
    OpReport,
    PartPose,
    ReportAck,
    RobotAct,
    RobotSense,
    Tick,
)
from robots.agent import SUPERVISOR, RobotAgent
from robots.kinematics import Kinematics, wrap

M = TypeVar("M", bound=Message)

GRASP_REACH_M = 0.01
"""The tool must be this close to a part's top centre for a grasp to close on it."""


@dataclasses.dataclass(slots=True)
class FakePart:
    """A part in the fake world: its kind, centre pose, and what it is joined to."""

    id: str
    kind: str
    pose: Pose
    unit: str = ""
    members: list[str] = dataclasses.field(default_factory=list)
    fastened: bool = False
    tilt: float = 0.0
    """Script: it lies this far from flat, turned about its own x axis (radians)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GripEvent:
    """A grip command the world acted on: when, by whom, where the tool was, what it held."""

    t_ns: int
    robot: str
    grip: Grip
    tcp: tuple[float, float, float]
    part: str


class FakeOutbox:
    """Collects what a participant sends, in order; an ``Outbox`` with scripted counters.

    A test sets ``gaps`` (and ``malformed``, ``late``, ``missing``) as a real
    mailbox would count them; ``impair`` is recorded in ``impaired``, and
    while a peer is impaired with a share of 1 nothing reaches it.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.malformed = 0
        self.late = 0
        self.missing = 0
        self.refused = 0
        self.ahead = 0
        self.flooded = 0
        self.handshakes_failed = 0
        self.gaps: dict[str, int] = {}
        self.impaired: dict[str, tuple[float, int]] = {}
        """Peer -> (share, until tick) of the last ``impair``."""

    def send(self, dst: str, body: Message) -> bool:
        """Record ``body`` for ``dst`` (dropped, returning False, while ``dst`` is cut off)."""
        share, _ = self.impaired.get(dst, (0.0, 0))
        if share >= 1.0:
            return False
        self.sent.append((dst, body))
        return True

    def impair(self, peer: str, share: float, until_tick: int) -> None:
        """Record a message-loss fault on the link to ``peer``."""
        self.impaired[peer] = (share, until_tick)

    def take(self) -> list[tuple[str, Message]]:
        """Everything sent since the last take."""
        out, self.sent = self.sent, []
        return out


class FakeWorld:
    """A kinematic stand-in for the sim world, one arm per robot of the cell."""

    def __init__(self, cell: CellSpec) -> None:
        self.cell = cell
        self.parts: dict[str, FakePart] = {}
        self.q: dict[str, tuple[float, ...]] = {}
        self.holding: dict[str, str] = {}
        self.never_grasp = False
        """Script: grasps always miss."""
        self.hidden: set[str] = set()
        """Script: parts that observe does not see."""
        self.grips: list[GripEvent] = []
        self.fastened: list[str] = []
        self._grip_yaw: dict[str, float] = {}
        self._seen: dict[str, tuple[PartPose, ...]] = {}
        self._inspection: dict[str, Inspection | None] = {}
        self._slides: dict[str, tuple[Pose, Pose, int, int]] = {}
        self._kin: dict[str, Kinematics] = {}
        for r in cell.robots:
            self._kin[r.name] = Kinematics(r)
            self.q[r.name] = self._kin[r.name].home
            self.holding[r.name] = ""

    def close(self) -> None:
        """Free the world's kinematic models."""
        for kin in self._kin.values():
            kin.close()

    def add_part(self, part: str, kind: str, pose: Pose) -> None:
        """Put a part with its centre at ``pose``."""
        self.parts[part] = FakePart(part, kind, pose)

    def slide(self, part: str, to: Pose, *, start_ns: int, end_ns: int) -> None:
        """Script: ``part`` slides in a straight line to ``to`` between two sim times."""
        self._slides[part] = (self.parts[part].pose, to, start_ns, end_ns)

    def drop(self, robot: str) -> None:
        """Script: the part in ``robot``'s gripper falls out."""
        self.holding[robot] = ""

    def tcp(self, robot: str, q: tuple[float, ...] | None = None) -> tuple[float, float, float]:
        """Where ``robot``'s tool is (at its current joints, or at ``q``)."""
        kin = self._kin[robot]
        kin.setup()
        return kin.fk(self.q[robot] if q is None else q)

    def sense(self, robot: str) -> RobotSense:
        """What ``robot`` is told at the start of a tick."""
        seen = self._seen.pop(robot, ())
        inspection = self._inspection.pop(robot, None)
        return RobotSense(robot, self.q[robot], self.holding[robot], seen, inspection)

    def apply(self, t_ns: int, act: RobotAct) -> None:
        """Carry out ``act`` over the tick (kinematically: the arm is at its target at once)."""
        self._slide(t_ns)
        robot = act.robot
        kin = self._kin[robot]
        kin.setup()
        self.q[robot] = tuple(act.q)
        tool = kin.fk_pose(act.q)
        held = self.holding[robot]
        if held and held in self.parts:
            self._carry(self.parts[held], tool.position, tool.yaw + self._grip_yaw[robot])
        if act.grip is Grip.GRASP and not held and not self.never_grasp:
            part = self._part_at(tool.position)
            if part is not None:
                self.holding[robot] = part.id
                self._grip_yaw[robot] = part.pose.yaw - tool.yaw
        elif act.grip is Grip.RELEASE and held:
            self.holding[robot] = ""
            if held in self.parts:
                self._join(self.parts[held])
        if act.grip is not Grip.NONE:
            self.grips.append(GripEvent(t_ns, robot, act.grip, tool.position, held))
        if act.observe:
            self._seen[robot] = tuple(
                self._pose(self.parts[n])
                for n in act.observe
                if n in self.parts and n not in self.hidden
            )
        if act.fasten and act.fasten in self.parts:
            self.parts[act.fasten].fastened = True
            self.fastened.append(act.fasten)
        if act.inspect:
            unit = self.parts.get(act.inspect)
            if unit is not None:
                kinds = tuple(sorted(self.parts[m].kind for m in unit.members))
                self._inspection[robot] = Inspection(unit.id, kinds, unit.fastened)

    # ------------------------------------------------------------ internals

    def _slide(self, t_ns: int) -> None:
        for pid in sorted(self._slides):
            a, b, t0, t1 = self._slides[pid]
            if t_ns < t0:
                continue
            s = min(1.0, (t_ns - t0) / max(1, t1 - t0))
            self.parts[pid].pose = Pose(
                a.x + (b.x - a.x) * s,
                a.y + (b.y - a.y) * s,
                a.z + (b.z - a.z) * s,
                a.yaw + (b.yaw - a.yaw) * s,
            )
            if s >= 1.0:
                del self._slides[pid]

    def _part_at(self, tcp: tuple[float, float, float]) -> FakePart | None:
        best: tuple[float, FakePart] | None = None
        for pid in sorted(self.parts):
            part = self.parts[pid]
            h = self.cell.part_kind(part.kind).size[2]
            top = (part.pose.x, part.pose.y, part.pose.z + h / 2)
            d = math.dist(top, tcp)
            if d <= GRASP_REACH_M and (best is None or d < best[0]):
                best = (d, part)
        return best[1] if best is not None else None

    def _carry(self, part: FakePart, tcp: tuple[float, float, float], yaw: float) -> None:
        h = self.cell.part_kind(part.kind).size[2]
        old = part.pose
        part.pose = Pose(tcp[0], tcp[1], tcp[2] - h / 2, wrap(yaw))
        dx, dy, dz = part.pose.x - old.x, part.pose.y - old.y, part.pose.z - old.z
        for m in part.members:  # a unit carries what is joined to it (turning ignored)
            mp = self.parts[m].pose
            self.parts[m].pose = Pose(mp.x + dx, mp.y + dy, mp.z + dz, mp.yaw)

    def _join(self, part: FakePart) -> None:
        """A part let go over a unit base's footprint is joined to it."""
        for uid in sorted(self.parts):
            unit = self.parts[uid]
            if uid == part.id or unit.kind != self.cell.recipe.base or unit.unit:
                continue
            sx, sy, _ = self.cell.part_kind(unit.kind).size
            c, s = math.cos(unit.pose.yaw), math.sin(unit.pose.yaw)
            dx, dy = part.pose.x - unit.pose.x, part.pose.y - unit.pose.y
            lx, ly = c * dx + s * dy, -s * dx + c * dy
            if abs(lx) <= sx / 2 and abs(ly) <= sy / 2 and part.pose.z > unit.pose.z:
                part.unit = uid
                unit.members.append(part.id)
                return

    @staticmethod
    def _pose(part: FakePart) -> PartPose:
        p = part.pose
        # heading about z, then the tilt about the part's own x axis
        sz, cz = math.sin(p.yaw / 2), math.cos(p.yaw / 2)
        sx, cx = math.sin(part.tilt / 2), math.cos(part.tilt / 2)
        return PartPose(part.id, part.kind, p.x, p.y, p.z, cz * sx, sz * sx, sz * cx, cz * cx)


class FakeRun:
    """Steps one agent against a ``FakeWorld`` tick by tick, as the clock and the bus would.

    ``send`` scripts a supervisor message, delivered in the next tick's inbox;
    everything the agent sends is kept in ``outbox`` and ``log``.
    """

    def __init__(self, agent: RobotAgent, world: FakeWorld) -> None:
        self.agent = agent
        self.world = world
        self.tick = 0
        self.t_ns = 0
        self.outbox = FakeOutbox()
        self.log: list[tuple[int, Message]] = []
        """Everything the agent sent, with the sim time it was sent at."""
        self.acts: list[tuple[int, RobotAct]] = []
        self.acks = True
        """Acknowledge every op report, as the supervisor does (False: a lossy link ate them)."""
        self._pending: list[Message] = []

    def send(self, body: Message) -> None:
        """Script a message from the supervisor, delivered on the next tick."""
        self._pending.append(body)

    def step(self) -> RobotAct:
        """One tick: sense, inbox, the agent's step, then the world acts."""
        name = self.agent.name
        inbox = [
            Envelope(SUPERVISOR, name, self.tick - 1, i, body)
            for i, body in enumerate(self._pending)
        ]
        self._pending = []
        tick = Tick(self.tick, self.t_ns, (), self.world.sense(name))
        act = self.agent.step(tick, inbox, self.outbox)
        for _, msg in self.outbox.take():
            self.log.append((self.t_ns, msg))
            if self.acks and isinstance(msg, OpReport):
                self._pending.append(ReportAck(msg.op_id, msg.robot, msg.attempt))
        self.acts.append((self.t_ns, act))
        self.world.apply(self.t_ns, act)
        self.tick += 1
        self.t_ns += self.agent.cell.tick_ns
        return act

    def run(self, ticks: int) -> None:
        """Step ``ticks`` times."""
        for _ in range(ticks):
            self.step()

    def until(self, done: Callable[[], bool], *, max_ticks: int = 2000) -> bool:
        """Step until ``done()`` holds (checked after each tick); False if it never did."""
        for _ in range(max_ticks):
            self.step()
            if done():
                return True
        return False

    def sent(self, kind: type[M]) -> list[M]:
        """What the agent sent of type ``kind``, in order."""
        return [m for _, m in self.log if isinstance(m, kind)]
