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
from bus.faults import problem
from bus.messages import ControlRequest
from bus.simtime import to_ns
from sim.world import World

K = FaultKind
PHYSICAL_FAULTS = (K.GRIPPER_DROP, K.CONVEYOR_JAM, K.SENSOR_BLACKOUT, K.SLOW_ROBOT)
"""Fault kinds the world applies directly (``fault`` with these kinds)."""
MESSAGE_LOSS = K.MESSAGE_LOSS
"""Lossy cell bus to a robot: the supervisor's socket loses a share (``factor``) both ways."""
ROBOT_FAULT = K.ROBOT_FAULT
"""A robot fault: the supervisor aborts the robot (the arm stops where it is)."""
DROP_AFTER_TICKS = 12
"""An armed gripper drop lets go this many control ticks after the grasp: lifted, moving."""
NOTED_FAULTS = (K.AGENT_CRASH, K.SUPERVISOR_CRASH, K.AGENT_FREEZE, K.SUPERVISOR_FREEZE)
"""Faults the launcher causes (killing a process); the host only has the supervisor log them."""


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
        try:
            fault = FaultKind(kind)
        except ValueError:
            known = ", ".join((*PHYSICAL_FAULTS, ROBOT_FAULT, MESSAGE_LOSS))
            return f"fault {kind!r} is not one of {known}"
        robot = fault in (K.GRIPPER_DROP, K.SLOW_ROBOT, ROBOT_FAULT, MESSAGE_LOSS)
        if robot and target not in self.world.arms:
            return f"no robot {target!r}"
        if fault is K.CONVEYOR_JAM and target not in self.world.conveyors:
            return f"no conveyor {target!r} (conveyors: {', '.join(sorted(self.world.conveyors))})"
        if fault is K.SENSOR_BLACKOUT and target not in self.world.sensor_names():
            return f"no sensor {target!r} (sensors: {', '.join(self.world.sensor_names())})"
        wrong = problem(fault, duration_s=duration_s, factor=factor, permanent=permanent)
        if wrong is not None:
            return wrong[1]
        if fault is K.GRIPPER_DROP:
            if self.world.arms[target].holding:
                self.world.drop(target)
            else:
                self.armed[target] = 0  # empty-handed: the next part it carries falls
        elif fault is K.CONVEYOR_JAM:
            self.world.stop_conveyor(target, True)
            self.jams[target] = self.world.t_ns + to_ns(duration_s)
        elif fault is K.SENSOR_BLACKOUT:
            self.world.blackout(target, to_ns(duration_s))
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
