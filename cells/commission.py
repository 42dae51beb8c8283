"""Commissioning a robot built in the cell, then starting its agent.

When the supervisor has the world replace a tested arm by a working robot
(``sim.World._commission``), the robot stands on its mount point with no
agent. ``Commissioner`` (a launcher hook, run after every tick on the sim
server's thread) then checks it in the world, driving it tick by tick as an
agent would:

1. **joint sweep**: every joint in turn to 10% and 90% of its range and back;
   the world's joint readings must follow the targets;
2. **tool pose**: the tool to test points around the mount, planned with the
   robot's own kinematic model (``robots.kinematics``); the tool the world
   reached must be where that model says, to ``TCP_MM``;
3. **payload**: the test payload on the bay's payload tray is gripped, lifted
   ``LIFT_M`` and put back; it must rise with the tool.

The result goes to the supervisor through the world (``CommissionCheck``);
a robot that passed is let into the clock at a set tick ahead (so the run
stays reproducible however long its process takes to start) and the launcher
starts its agent, in a thread or a process alike (``start``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Generator

from bus.cellspec import MODEL_HOME, CellSpec, RobotSpec
from bus.enums import Grip
from bus.errors import PlanError
from bus.messages import CommissionCheck, RobotAct
from robots.kinematics import Kinematics
from sim import SimServer, World

log = logging.getLogger(__name__)

SWEEP_SPEED = 4.0
"""Joint speed of the sweep (rad/s)."""
SWEEP_SHARE = 0.1
"""Each joint goes to this share of its range from either limit."""
MOVE_SPEED = 1.5
"""Joint speed of the tool-pose and payload moves (rad/s)."""
TCP_MM = 5.0
"""The world's tool may be this far from where the model puts it (mm)."""
SWEEP_RAD = 1e-3
"""A joint may lag its target by this much at the end of a move (rad)."""
LIFT_M = 0.10
"""How high the payload is lifted (m)."""
LIFT_OK = 0.8
"""The payload must rise at least this share of the lift."""
APPROACH_M = 0.10
"""Above the payload before going down to it (m)."""
JOIN_S = 2.0
"""Sim seconds from a passed check to the new agent joining the clock (the clock waits)."""
TEST_POINTS = ((0.5, 0.0, 0.35), (0.45, 1.0, 0.3), (0.45, -1.0, 0.3))
"""Tool test points around the mount: (horizontal distance, bearing from the mount's heading
in radians, height above its plate), pointing down."""

Start = Callable[[str, str], None]
"""Starts the agent of built robot ``name`` on mount ``mount`` (a thread or a process)."""

Q = tuple[float, ...]
Steps = Generator[RobotAct, None, None]


@dataclasses.dataclass(slots=True)
class _Check:
    """One robot's check in progress: its plan as a generator of per-tick acts, and evidence."""

    spec: RobotSpec
    mount: str
    kin: Kinematics
    steps: Steps | None = None
    sweep_rad: float = 0.0
    tcp_mm: float = 0.0
    lift_mm: float = 0.0
    failed: str = ""


class Commissioner:
    """Checks robots the world has just commissioned and starts the agents of those that pass."""

    def __init__(self, cell: CellSpec, start: Start) -> None:
        self.cell = cell
        self.start = start
        self.checks: dict[str, _Check] = {}
        self.started: list[str] = []
        """Robots whose agents were started, in order."""

    def __call__(self, server: SimServer) -> None:
        """Per tick (after physics): take new robots, drive every check one tick on."""
        world = server.world
        for c in world.take_commissioned():
            spec = self.cell.built_robot(c.robot, c.mount)
            kin = Kinematics(spec)
            kin.setup()
            check = _Check(spec, c.mount, kin)
            check.steps = self._program(world, check)
            self.checks[c.robot] = check
            log.info("commissioning %s on %s", c.robot, c.mount)
        for name in sorted(self.checks):
            check = self.checks[name]
            assert check.steps is not None
            try:
                act = next(check.steps)
            except StopIteration:
                self._finish(server, check)
                continue
            except PlanError as exc:
                check.failed = f"cannot plan: {exc}"
                self._finish(server, check)
                continue
            world.apply(act)

    def close(self) -> None:
        """Close the kinematic models of checks still running (the run ended)."""
        for check in self.checks.values():
            check.kin.close()
        self.checks.clear()

    def _finish(self, server: SimServer, check: _Check) -> None:
        name = check.spec.name
        del self.checks[name]
        check.kin.close()
        passed = (
            not check.failed
            and check.sweep_rad <= SWEEP_RAD
            and check.tcp_mm <= TCP_MM
            and check.lift_mm >= LIFT_OK * LIFT_M * 1e3
        )
        detail = check.failed or ("ok" if passed else "a measurement is out of its bound")
        ahead = round(JOIN_S * 1e9 / self.cell.tick_ns)
        late = (server.ticks + ahead) * self.cell.tick_ns >= server.duration_ns
        result = CommissionCheck(
            robot=name,
            mount=check.mount,
            passed=passed,
            sweep_rad=round(check.sweep_rad, 6),
            tcp_mm=round(check.tcp_mm, 3),
            lift_mm=round(check.lift_mm, 1),
            detail=detail + ("; too late in the run to join it" if passed and late else ""),
            joining=passed and not late,
        )
        server.world.report_check(result)
        log.info("commissioning check of %s: %s", name, result)
        if passed and late:
            # it would join after the run's end: it stands ready, with no agent to stop
            log.info("%s passed its check too late in the run to join it", name)
        elif passed:
            server.admit_robot(name, ahead)
            self.start(name, check.mount)
            self.started.append(name)

    # ------------------------------------------------------------ the check

    def _program(self, world: World, check: _Check) -> Steps:
        """The whole check, one act per tick."""
        name, kin = check.spec.name, check.kin
        home = MODEL_HOME[check.spec.model]
        q = home
        lo, hi = kin.lower, kin.upper
        for j in range(len(home)):
            span = hi[j] - lo[j]
            for v in (lo[j] + SWEEP_SHARE * span, hi[j] - SWEEP_SHARE * span, home[j]):
                target = tuple(v if i == j else x for i, x in enumerate(q))
                yield from self._move(name, q, target, SWEEP_SPEED)
                q = target
                got = world.robot_sense(name).q
                check.sweep_rad = max(
                    check.sweep_rad, max(abs(a - b) for a, b in zip(got, q, strict=True))
                )
        base = check.spec.base
        for dist, bearing, height in TEST_POINTS:
            a = base.yaw + bearing
            point = (base.x + dist * math.cos(a), base.y + dist * math.sin(a), base.z + height)
            target = kin.ik(point, a, q)
            yield from self._move(name, q, target, MOVE_SPEED)
            q = target
            reached, _ = world.tcp(name)
            model = kin.fk(q)
            check.tcp_mm = max(check.tcp_mm, math.dist(reached, model) * 1e3)
        q = yield from self._payload(world, check, q)
        yield from self._move(name, q, home, MOVE_SPEED)

    def _payload(self, world: World, check: _Check, q: Q) -> Generator[RobotAct, None, Q]:
        """Grip the payload, lift it, put it back; the lift goes into the evidence."""
        name, kin = check.spec.name, check.kin
        tray = self.cell.payload_for(check.mount)
        here = [pid for pid, (_, where) in world.parts().items() if where == f"feeder:{tray}"]
        pose = world.part_pose(here[0]) if here else None
        if pose is None:
            check.failed = f"no payload on {tray}"
            return q
        kind = self.cell.part_kind(pose.kind)
        top = (pose.x, pose.y, pose.z + kind.size[2] / 2)
        above = (top[0], top[1], top[2] + APPROACH_M)
        lifted = (top[0], top[1], top[2] + LIFT_M)
        yaw = check.spec.base.yaw
        q_above = kin.ik(above, yaw, q)
        q_grip = kin.ik(top, yaw, q_above)
        q_lift = kin.ik(lifted, yaw, q_grip)
        yield from self._move(name, q, q_above, MOVE_SPEED)
        yield from self._move(name, q_above, q_grip, MOVE_SPEED)
        yield self._act(name, q_grip, Grip.GRASP)
        yield self._act(name, q_grip)
        yield from self._move(name, q_grip, q_lift, MOVE_SPEED)
        after = world.part_pose(pose.part)
        held = world.robot_sense(name).holding == pose.part
        if after is not None and held:
            check.lift_mm = (after.z - pose.z) * 1e3
        yield from self._move(name, q_lift, q_grip, MOVE_SPEED)
        yield self._act(name, q_grip, Grip.RELEASE)
        for _ in range(6):
            yield self._act(name, q_grip)
        yield from self._move(name, q_grip, q_above, MOVE_SPEED)
        if not held:
            check.failed = "the payload was not held"
        return q_above

    def _move(self, name: str, a: Q, b: Q, speed: float) -> Steps:
        """From ``a`` to ``b`` in a straight line in joint space at ``speed``, a tick at a time."""
        tick_s = self.cell.tick_ns / 1e9
        far = max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
        n = max(1, math.ceil(far / speed / tick_s))
        for i in range(1, n + 1):
            f = i / n
            yield self._act(name, tuple(x + (y - x) * f for x, y in zip(a, b, strict=True)))
        yield self._act(name, b)

    @staticmethod
    def _act(name: str, q: Q, grip: Grip = Grip.NONE) -> RobotAct:
        return RobotAct(robot=name, q=q, grip=grip, observe=(), fasten="", inspect="")
