"""Enumerations shared on the wire.

String values, so messages, logs and bags read well without a lookup table.
"""

from __future__ import annotations

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
    """A PackML command for one robot: ``target`` robot, ``action`` command (operator)."""
    CELL = "cell"
    """A PackML command for every robot: ``action`` command (operator)."""
    FAULT = "fault"
    """Inject a fault: ``target``, ``action`` kind, ``value`` duration in s (operator)."""
    PACE = "pace"
    """Set the clock: ``action`` pause / run / realtime / fast, ``value`` factor (operator)."""
    ORDER = "order"
    """Add an order: ``action`` product, ``value`` count of units (operator)."""
    SHUTDOWN = "shutdown"
    """End the run now, writing results as at the end of its duration (admin)."""


COMPLETED_EVENTS = ("unit_shipped", "arm_commissioned")
"""Event-log kinds that mark a unit completed: a product shipped, or an arm built in the
cell and commissioned as one of its robots (throughput, cycle times and the audit count both)."""
