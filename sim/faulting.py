"""Faults the cell host applies to the world itself, checked before anything is done.

Physical faults (a gripper drop, a jammed belt, a blind sensor) act on the
world at once; wear (a drifting joint, a worn gripper, belt or screwdriver, ``sim.wear``)
starts now and grows every tick; a slow or creeping robot, a lossy link and a
robot fault are the supervisor's to apply. A drive tripped by a drifting
joint becomes a permanent robot fault, noted like any other. Every fault, applied here or not, becomes a note for
the supervisor, which logs it. A fault's arguments come from a control
client, so each is checked (kind, target, finite numbers in bounds) and a
bad one is answered with why, never raised.
"""

from __future__ import annotations

from bus.enums import DEGRADING_KINDS, ControlCommand, FaultKind
from bus.faults import problem
from bus.messages import ControlRequest
from bus.simtime import to_ns
from sim.wear import Ramp, Wear
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
        self.wear = Wear(world.seed)
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
        hidden: bool = False,
    ) -> ControlRequest | str:
        """Inject a fault now; the supervisor's note of it, or why it cannot be done.

        Physical faults act on the world at once; a robot fault goes to the
        supervisor, which aborts the robot and clears it after ``duration_s``,
        or never if ``permanent`` (the robot has failed for good); a ``hidden`` slow robot's
        own estimates do not see its slowdown.
        """
        try:
            fault = FaultKind(kind)
        except ValueError:
            known = ", ".join((*PHYSICAL_FAULTS, ROBOT_FAULT, MESSAGE_LOSS, *DEGRADING_KINDS))
            return f"fault {kind!r} is not one of {known}"
        robot = fault in (K.GRIPPER_DROP, K.SLOW_ROBOT, ROBOT_FAULT, MESSAGE_LOSS)
        robot = robot or fault in (K.JOINT_DRIFT, K.GRIPPER_WEAR, K.CYCLE_CREEP, K.TOOL_WEAR)
        if robot and target not in self.world.arms:
            return f"no robot {target!r}"
        belt = fault in (K.CONVEYOR_JAM, K.BELT_WEAR)
        if belt and target not in self.world.conveyors:
            return f"no conveyor {target!r} (conveyors: {', '.join(sorted(self.world.conveyors))})"
        if fault is K.SENSOR_BLACKOUT and target not in self.world.sensor_names():
            return f"no sensor {target!r} (sensors: {', '.join(self.world.sensor_names())})"
        wrong = problem(fault, duration_s=duration_s, factor=factor, permanent=permanent)
        if wrong is not None:
            return wrong[1]
        if hidden and fault is not K.SLOW_ROBOT:
            return f"only a slow_robot may be hidden, not a {fault.value}"
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
        elif fault is K.JOINT_DRIFT:
            arm = self.world.arms[target]
            if factor > len(arm.arm_joints):
                return f"{target} has {len(arm.arm_joints)} joints, not {factor:g}"
            factor = float(self.wear.joint_drift(arm, int(factor), duration_s))
        elif fault is K.GRIPPER_WEAR:
            self.wear.gripper_wear(target, self.world.t_ns, to_ns(duration_s), factor)
        elif fault is K.TOOL_WEAR:
            now = self.world.t_ns
            self.world.worn_tools[target] = Ramp(now, now + to_ns(duration_s), factor)
        elif fault is K.BELT_WEAR:
            conveyor = self.world.conveyors[target]
            self.wear.belt_wear(conveyor, self.world.t_ns, to_ns(duration_s), factor)
        self._seq += 1
        cid = cmd_id or f"fault-{self._seq}"
        return ControlRequest(
            cid,
            ControlCommand.FAULT,
            target,
            kind,
            duration_s,
            factor,
            permanent=permanent,
            hidden=hidden,
        )

    def quiet(self) -> bool:
        """Whether nothing of this injector's grows or counts from tick to tick: no jam, no
        armed drop, no wear under way, no maintenance to apply."""
        w = self.wear
        busy = self.jams or self.armed or self.world.maintained
        return not (busy or w.drifts or w.grippers or w.belts or w.letting_go)

    def after_advance(self) -> list[ControlRequest]:
        """After a control tick: take the wear off what was maintained, end the jams that are
        over, let armed and worn grippers go, grow every wear. Returns the notes of robot
        faults it caused (a tripped drive)."""
        now = self.world.t_ns
        for name in self.world.take_maintained():
            done = self.wear.maintain(name, self.world.arms, self.world.conveyors)
            self.world.records.append(
                {"t_ns": now, "robot": name, "act": "maintained", "target": ",".join(done)}
            )
        tripped, letting_go = self.wear.step(now, self.world.arms, self.world.conveyors)
        for robot in letting_go:
            self.world.drop(robot)
        notes = []
        for robot in tripped:
            self._seq += 1
            notes.append(
                ControlRequest(
                    f"fault-{self._seq}",
                    ControlCommand.FAULT,
                    robot,
                    ROBOT_FAULT.value,
                    0.0,
                    0.0,
                    permanent=True,
                )
            )
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
        return notes
