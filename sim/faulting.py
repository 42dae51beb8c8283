"""Faults the cell host applies to the world itself, checked before anything is done.

Physical faults (a gripper drop, a jammed belt, a blind sensor) act on the
world at once; a slow robot, a lossy link and a robot fault are the
supervisor's to apply. Every fault, applied here or not, becomes a note for
the supervisor, which logs it. A fault's arguments come from a control
client, so each is checked (kind, target, finite numbers in bounds) and a
bad one is answered with why, never raised.
"""

from __future__ import annotations

from bus.enums import ControlCommand, FaultKind
from bus.messages import ControlRequest
from sim.world import World

PHYSICAL_FAULTS = ("gripper_drop", "conveyor_jam", "sensor_blackout", "slow_robot")
"""Fault kinds the world applies directly (``fault`` with these kinds)."""
MESSAGE_LOSS = "message_loss"
"""Lossy cell bus to a robot: the supervisor's socket loses a share (``factor``) both ways."""
ROBOT_FAULT = "robot_fault"
"""A robot fault: the supervisor aborts the robot (the arm stops where it is)."""
DROP_AFTER_TICKS = 12
"""An armed gripper drop lets go this many control ticks after the grasp: lifted, moving."""
NOTED_FAULTS = ("agent_crash", "supervisor_crash", "agent_freeze", "supervisor_freeze")
"""Faults the launcher causes (killing a process); the host only has the supervisor log them."""
MAX_DURATION_S = 1e6
"""Longest fault accepted (about 11.6 days of sim time): a longer one is a mistake, and an
infinite one cannot be turned into nanoseconds."""
MAX_SLOWDOWN = 100.0
"""The largest ``slow_robot`` factor accepted."""


class FaultInjector:
    """Applies faults to the world and keeps what lasts (jams, armed drops) going."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.jams: dict[str, int] = {}
        """Jammed conveyors: the sim time their jam ends."""
        self.armed: dict[str, int] = {}
        """Robots whose gripper lets go of the next part it carries: ticks it has held it."""
        self._seq = 0

    def inject(
        self,
        kind: str,
        target: str,
        duration_s: float,
        *,
        factor: float = 0.0,
        cmd_id: str = "",
        permanent: bool = False,
    ) -> ControlRequest | str:
        """Inject a fault now; the supervisor's note of it, or why it cannot be done.

        Physical faults act on the world at once; a robot fault goes to the
        supervisor, which aborts the robot and clears it after ``duration_s``,
        or never if ``permanent`` (the robot has failed for good).
        """
        if not abs(duration_s) <= MAX_DURATION_S:  # NaN fails this too
            return f"a duration must be finite and at most {MAX_DURATION_S:g} s"
        if kind == FaultKind.SLOW_ROBOT and not factor <= MAX_SLOWDOWN:
            return f"a slow robot's factor must be at most {MAX_SLOWDOWN:g}"
        if kind in ("gripper_drop", ROBOT_FAULT) and target not in self.world.arms:
            return f"no robot {target!r}"
        if permanent and kind != ROBOT_FAULT:
            return f"only a robot_fault can be permanent, not {kind}"
        if kind == "gripper_drop":
            if self.world.arms[target].holding:
                self.world.drop(target)
            else:
                self.armed[target] = 0  # empty-handed: the next part it carries falls
        elif kind == "conveyor_jam":
            if target not in self.world.conveyors:
                return (
                    f"no conveyor {target!r} (conveyors: {', '.join(sorted(self.world.conveyors))})"
                )
            if not duration_s > 0:
                return "a jam needs a duration > 0 in value"
            self.world.stop_conveyor(target, True)
            self.jams[target] = self.world.t_ns + round(duration_s * 1e9)
        elif kind == "slow_robot":
            if target not in self.world.arms:
                return f"no robot {target!r}"
            if not duration_s > 0 or not factor > 1:
                return "a slow robot needs a duration > 0 in value and a factor > 1"
        elif kind == "sensor_blackout":
            if target not in self.world.sensor_names():
                return f"no sensor {target!r} (sensors: {', '.join(self.world.sensor_names())})"
            if not duration_s > 0:
                return "a blackout needs a duration > 0 in value"
            self.world.blackout(target, round(duration_s * 1e9))
        elif kind == ROBOT_FAULT:
            if permanent and duration_s != 0:
                return "a permanent robot fault has no duration: value must be 0"
            if not permanent and not duration_s > 0:
                return "a robot fault needs a duration > 0 in value (or permanent)"
        elif kind == MESSAGE_LOSS:
            if target not in self.world.arms:
                return f"no robot {target!r}"
            if not duration_s > 0 or not 0 < factor < 1:
                return (
                    "message loss needs a duration > 0 in value and a share from 0 to 1 in factor"
                )
        elif kind not in NOTED_FAULTS:
            known = ", ".join((*PHYSICAL_FAULTS, ROBOT_FAULT, MESSAGE_LOSS))
            return f"fault {kind!r} is not one of {known}"
        self._seq += 1
        cid = cmd_id or f"fault-{self._seq}"
        return ControlRequest(
            cid, ControlCommand.FAULT, target, kind, duration_s, factor, permanent=permanent
        )

    def after_advance(self) -> None:
        """After a physics step: end the jams that are over, let armed grippers go."""
        now = self.world.t_ns
        for name, until in list(self.jams.items()):
            if now >= until:
                self.world.stop_conveyor(name, False)
                del self.jams[name]
        for robot, held in list(self.armed.items()):
            if self.world.arms[robot].holding:
                self.armed[robot] = held + 1
                if held + 1 >= DROP_AFTER_TICKS:
                    self.world.drop(robot)
                    del self.armed[robot]
