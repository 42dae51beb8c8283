"""Enumerations shared on the wire.

String values, so messages, logs and bags read well without a lookup table.
"""

from __future__ import annotations

import dataclasses
import enum


class PackMLState(enum.StrEnum):
    """The 17 PackML (ISA-TR88.00.02) machine states."""

    STOPPED = "Stopped"
    """At rest, powered, waiting for Reset."""
    RESETTING = "Resetting"
    """Acting: homing the arm and clearing the gripper before Idle."""
    IDLE = "Idle"
    """Ready; waits for Start."""
    STARTING = "Starting"
    """Acting: going to Execute."""
    EXECUTE = "Execute"
    """Producing: bids for and runs operations (skills are sub-states)."""
    COMPLETING = "Completing"
    """Acting: finishing the last operation before Complete."""
    COMPLETE = "Complete"
    """Production finished; waits for Reset."""
    HOLDING = "Holding"
    """Acting: bringing the current motion to a safe pause (internal cause)."""
    HELD = "Held"
    """Paused with the operation kept; waits for Unhold."""
    UNHOLDING = "Unholding"
    """Acting: resuming the held operation."""
    SUSPENDING = "Suspending"
    """Acting: pausing because of an external cause (starved, blocked)."""
    SUSPENDED = "Suspended"
    """Paused for an external cause; waits for Unsuspend."""
    UNSUSPENDING = "Unsuspending"
    """Acting: resuming from Suspended."""
    STOPPING = "Stopping"
    """Acting: a controlled stop; the operation is given back."""
    ABORTING = "Aborting"
    """Acting: an immediate stop on a fault."""
    ABORTED = "Aborted"
    """Stopped on a fault; waits for Clear."""
    CLEARING = "Clearing"
    """Acting: clearing the fault before Stopped."""


class PackMLCommand(enum.StrEnum):
    """The 9 PackML commands a robot agent accepts."""

    RESET = "Reset"
    """Stopped or Complete to Idle."""
    START = "Start"
    """Idle to Execute."""
    STOP = "Stop"
    """Any running state to Stopped, giving the operation back."""
    HOLD = "Hold"
    """Execute to Held, keeping the operation."""
    UNHOLD = "Unhold"
    """Held back to Execute."""
    SUSPEND = "Suspend"
    """Execute to Suspended."""
    UNSUSPEND = "Unsuspend"
    """Suspended back to Execute."""
    ABORT = "Abort"
    """Any state but Aborting and Aborted to Aborted."""
    CLEAR = "Clear"
    """Aborted to Stopped."""


class UnitMode(enum.StrEnum):
    """A robot's PackML unit mode (OPC 30050 / ISA-TR88.00.02): what its state machine is for.

    The mode changes only in a wait state, never mid-motion (``robots.packml.MODE_STATES``).
    """

    PRODUCTION = "Production"
    """Making product: the robot bids for and runs the supervisor's operations."""
    MAINTENANCE = "Maintenance"
    """Taken out to be maintained: it declines every call for bids and refuses every award."""
    MANUAL = "Manual"
    """Run by hand (an operator jogs it): like Maintenance, no production work."""


class Skill(enum.StrEnum):
    """What a robot can be asked to do; a robot's capabilities name these."""

    PICK_PLACE = "pick_place"
    """Pick a part at one station and place it at another (pick, then place)."""
    FASTEN = "fasten"
    """Drive the screws of a unit in a fixture."""
    INSPECT = "inspect"
    """Look at a unit in a fixture and report what it holds."""


class ExecStep(enum.StrEnum):
    """The sub-states of Execute: what the arm is doing right now."""

    WAITING = "waiting"
    """In Execute with nothing to run."""
    PICK = "pick"
    """Approaching, grasping and lifting a part."""
    PLACE = "place"
    """Carrying, setting down and releasing a part."""
    FASTEN = "fasten"
    """Driving screws."""
    INSPECT = "inspect"
    """Looking at a unit."""


class Grip(enum.StrEnum):
    """A gripper command sent to the world with a joint target."""

    NONE = "none"
    """Leave the gripper as it is."""
    GRASP = "grasp"
    """Close on the part at the tool, if one is within reach of the fingers."""
    RELEASE = "release"
    """Open: the part is free and falls or rests where it is."""


class WorldEventKind(enum.StrEnum):
    """What the world reports to the supervisor about a part."""

    SPAWNED = "spawned"
    """A feeder made a part."""
    GRASPED = "grasped"
    """A gripper closed on the part."""
    SETTLED = "settled"
    """A released part came to rest; ``location`` says where."""
    ATTACHED = "attached"
    """A released part came to rest on a unit and was joined to it."""
    ARRIVED = "arrived"
    """A part reached a conveyor's end sensor."""
    FASTENED = "fastened"
    """A unit's screws were driven."""
    RETIRED = "retired"
    """The part was removed from the world (shipped or scrapped)."""


class OpStatus(enum.StrEnum):
    """The outcome an agent reports for an operation."""

    DONE = "done"
    """Completed as asked."""
    FAILED = "failed"
    """Could not be completed; ``detail`` says why; the supervisor replans."""
    REFUSED = "refused"
    """Not started: the robot was not in a state to run it."""


class ControlCommand(enum.StrEnum):
    """What a control client may ask the cell host (``control_request.command``)."""

    STATUS = "status"
    """The clock, every robot's state and the production counts (viewer)."""
    SNAPSHOT = "snapshot"
    """Ledger, KPIs, live parts and the last telemetry sequence per topic (viewer)."""
    ROBOT = "robot"
    """A PackML command for one robot: ``target`` robot, ``action`` command, or a unit mode
    to change to (``Production``, ``Maintenance``, ``Manual``) (operator)."""
    CELL = "cell"
    """A PackML command (or a unit mode) for every robot: ``action`` command (operator)."""
    FAULT = "fault"
    """Inject a fault: ``target``, ``action`` kind, ``value`` duration in s (operator)."""
    PACE = "pace"
    """Set the clock: ``action`` pause / run / realtime / fast, ``value`` factor (operator)."""
    ORDER = "order"
    """Add an order: ``action`` product, ``value`` count of units (operator)."""
    SHUTDOWN = "shutdown"
    """End the run now, writing results as at the end of its duration (admin)."""


class ControlCode(enum.StrEnum):
    """``control_reply.code``: what became of a control request, stable for clients."""

    OK = "ok"
    """Done (or, for a robot, cell or order command, accepted by the supervisor)."""
    MALFORMED = "malformed"
    """Not a valid ``control_request``: bad bytes, wrong frame count, a field missing, unknown or
    of the wrong type, a payload over 1 MiB. ``cmd_id`` is echoed when it could be read."""
    UNKNOWN_COMMAND = "unknown_command"
    """A ``control_request`` whose ``command`` is none of the commands listed."""
    BAD_ARGUMENT = "bad_argument"
    """A value out of range or of the wrong kind (an empty ``cmd_id``, a pace factor that is not
    finite, an unknown fault kind, conveyor or sensor); ``reason`` names it."""
    UNKNOWN_ROBOT = "unknown_robot"
    """``target`` names no robot of the cell."""
    REFUSED = "refused"
    """The robot (or, for ``cell``, some robot) refused the PackML command in its state."""
    UNAVAILABLE = "unavailable"
    """The robot is not answering (lost, or its process is down)."""
    PAUSED = "paused"
    """The clock is paused, so a command the supervisor decides cannot be decided: ``pace run``."""
    FORBIDDEN = "forbidden"
    """The client's CURVE key's role does not allow the command."""
    BUSY = "busy"
    """The client sent more than 64 requests in one tick (or 0.1 s; requests still queued
    when the cell stops reading belong to the same burst, however long a loaded cell takes
    to read them), or has 16 still unanswered: it is refused until it slows down (a flood
    of one client never slows the cell). Past 256 in the same window its requests are
    dropped without an answer."""


class Pace(enum.StrEnum):
    """``pace`` actions: how the clock runs (``cell_status.pace`` and ``rtf`` report it)."""

    PAUSE = "pause"
    """Stop sim time between two ticks; answered once it has stopped. ``status.pace`` is
    ``paused``; the pace set before is kept for ``run``."""
    RUN = "run"
    """Resume after ``pause`` at the pace set before it (``fast`` or ``realtime xF``)."""
    REALTIME = "realtime"
    """Pace sim time to the wall: ``value`` sim seconds per wall second, a finite factor from
    0.001 to 1000. ``status.pace`` is ``realtime xF`` (F as ``%g``) and ``rtf`` is F."""
    FAST = "fast"
    """As fast as the slowest participant allows (the default). ``status.pace`` is ``fast`` and
    ``rtf`` is 0 (no target factor)."""


class Topic(enum.StrEnum):
    """Telemetry topics, in the order the cell host publishes them within a tick.

    Every topic's ``seq`` counts every message the cell made for it, from 0, whether or not
    anyone subscribes: a jump is a message missed.
    """

    JOINTS = "joints"
    """``joints_frame``: every arm's joints, frames and activity, every control tick."""
    PARTS = "parts"
    """``parts_frame``: every live part's pose and ledger location, every control tick."""
    EVENTS = "events"
    """``event_frame``: one line of the event log, as it happens (kinds below)."""
    KPIS = "kpis"
    """``kpi_frame``: the KPI snapshot (the shape of ``kpis.json``), once per sim second (every
    10 at events fidelity)."""


class FaultTarget(enum.StrEnum):
    """What a fault's ``target`` names."""

    ROBOT = "robot"
    """A robot of the cell (``R1``)."""
    CONVEYOR = "conveyor"
    """A conveyor of the cell file (``[conveyors.NAME]``, e.g. ``infeed``); ``snapshot.conveyors``
    lists them."""
    SENSOR = "sensor"
    """A presence sensor: ``CONVEYOR.end`` at a belt's end, or a fixture or feeder tray by its
    name (e.g. ``infeed.end``, ``F1``); ``snapshot.sensors`` lists them."""
    SUPERVISOR = "supervisor"
    """The supervisor itself (the word ``supervisor``)."""


class FaultKind(enum.StrEnum):
    """The faults a scenario file or a ``fault`` control request can inject."""

    AGENT_CRASH = "agent_crash"
    """The robot's agent process is killed (SIGKILL); the launcher restarts it. Scenario only."""
    SUPERVISOR_CRASH = "supervisor_crash"
    """The supervisor process is killed (SIGKILL); the launcher restarts it from its journal.
    Scenario only."""
    ROBOT_FAULT = "robot_fault"
    """The arm stops and the agent aborts; the supervisor clears it after ``duration``
    (never, if ``permanent``). Answered once the robot has aborted."""
    GRIPPER_DROP = "gripper_drop"
    """The part in the gripper is let go and falls under physics (an empty gripper lets go of
    the next part it carries, lifted and moving)."""
    CONVEYOR_JAM = "conveyor_jam"
    """The belt stops for ``duration`` seconds."""
    SENSOR_BLACKOUT = "sensor_blackout"
    """A presence sensor reports nothing for ``duration`` seconds."""
    SLOW_ROBOT = "slow_robot"
    """The robot's motions take ``factor`` (> 1) times longer for ``duration`` seconds."""
    MESSAGE_LOSS = "message_loss"
    """A ``share`` (``factor``, between 0 and 1) of the messages between the supervisor and the
    robot is lost, both ways, for ``duration`` seconds."""
    AGENT_FREEZE = "agent_freeze"
    """The robot's agent process is stopped (SIGSTOP) for ``duration`` seconds of wall time,
    then continued; past the clock's guard it is dropped, killed and restarted. Scenario only."""
    SUPERVISOR_FREEZE = "supervisor_freeze"
    """The supervisor process is stopped (SIGSTOP) for ``duration`` wall seconds; past the
    clock's guard it is dropped, killed and restarted from its journal. Scenario only."""
    JOINT_DRIFT = "joint_drift"
    """Wear: one joint's tracking error grows by Brownian motion with drift; where it reaches
    the drive's limit the robot faults for good. ``duration``: the mean time to that failure;
    ``factor``: the joint (1 to 7; 0 draws one from the seed)."""
    GRIPPER_WEAR = "gripper_wear"
    """Wear: the share of carries in which the part slips or drops out grows from 0 to
    ``factor`` over ``duration`` seconds, and stays."""
    BELT_WEAR = "belt_wear"
    """Wear: the belt loses a share (``factor``, between 0 and 1) of its speed, gradually over
    ``duration`` seconds, and stays that slow."""
    CYCLE_CREEP = "cycle_creep"
    """Wear: the robot's motions slow gradually, to ``factor`` (> 1) times longer at the end
    of ``duration`` seconds, and stay that slow."""
    TOOL_WEAR = "tool_wear"
    """Wear: the robot's screwdriver loses a share (``factor``, between 0 and 1) of the torque
    it drives a screw to, gradually over ``duration`` seconds, and stays worn: screws are left
    under their torque (a fastening defect)."""


DEGRADING_KINDS = (
    FaultKind.JOINT_DRIFT,
    FaultKind.GRIPPER_WEAR,
    FaultKind.BELT_WEAR,
    FaultKind.CYCLE_CREEP,
    FaultKind.TOOL_WEAR,
)
"""Faults that grow over their ``duration`` rather than strike at once (``docs/faults.md``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class FaultArgs:
    """What a ``fault`` control request of one kind takes, in words (for the protocol page)."""

    target: FaultTarget
    value: str
    factor: str = "unused"
    permanent: str = "false"
    live: bool = True
    """Whether a ``fault`` control request can inject it (a crash is the launcher's)."""


FAULT_ARGS: dict[FaultKind, FaultArgs] = {
    FaultKind.ROBOT_FAULT: FaultArgs(
        FaultTarget.ROBOT,
        "duration in s, > 0 (0 with permanent)",
        permanent="true: never cleared by the supervisor",
    ),
    FaultKind.GRIPPER_DROP: FaultArgs(FaultTarget.ROBOT, "unused"),
    FaultKind.CONVEYOR_JAM: FaultArgs(FaultTarget.CONVEYOR, "duration in s, > 0"),
    FaultKind.SENSOR_BLACKOUT: FaultArgs(FaultTarget.SENSOR, "duration in s, > 0"),
    FaultKind.SLOW_ROBOT: FaultArgs(
        FaultTarget.ROBOT, "duration in s, > 0", factor="how many times slower, > 1"
    ),
    FaultKind.MESSAGE_LOSS: FaultArgs(
        FaultTarget.ROBOT, "duration in s, > 0", factor="share lost, between 0 and 1"
    ),
    FaultKind.AGENT_CRASH: FaultArgs(FaultTarget.ROBOT, "unused", live=False),
    FaultKind.SUPERVISOR_CRASH: FaultArgs(FaultTarget.SUPERVISOR, "unused", live=False),
    FaultKind.AGENT_FREEZE: FaultArgs(FaultTarget.ROBOT, "wall seconds, > 0", live=False),
    FaultKind.SUPERVISOR_FREEZE: FaultArgs(FaultTarget.SUPERVISOR, "wall seconds, > 0", live=False),
    FaultKind.JOINT_DRIFT: FaultArgs(
        FaultTarget.ROBOT,
        "mean time to the hard failure in s, > 0",
        factor="the joint, 1 to 7 (0: drawn from the seed)",
    ),
    FaultKind.GRIPPER_WEAR: FaultArgs(
        FaultTarget.ROBOT, "seconds to full wear, > 0", factor="share of carries lost, (0, 1]"
    ),
    FaultKind.BELT_WEAR: FaultArgs(
        FaultTarget.CONVEYOR, "seconds to full wear, > 0", factor="share of speed lost, (0, 1)"
    ),
    FaultKind.CYCLE_CREEP: FaultArgs(
        FaultTarget.ROBOT, "seconds to full wear, > 0", factor="how many times slower, > 1"
    ),
    FaultKind.TOOL_WEAR: FaultArgs(
        FaultTarget.ROBOT, "seconds to full wear, > 0", factor="share of torque lost, (0, 1)"
    ),
}
"""Every fault kind's arguments; ``bus.describe`` writes them into docs/protocol.md."""


COMPLETED_EVENTS = ("unit_shipped", "arm_commissioned")
"""Event-log kinds that mark a unit completed: a product shipped, or an arm built in the
cell and commissioned as one of its robots (throughput, cycle times and the audit count both)."""
