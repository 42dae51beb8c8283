"""The kinds of line in the event log (``events.jsonl``, telemetry topic ``events``).

A client following ``events`` reads ``event_frame.kind`` to know what a line
says; the list lives here, in the leaf package, so the protocol page is
generated from it and a test holds every ``events.write`` of the code to it.
Every line has ``t_ns`` and ``kind``; the other fields are named after each
kind.
"""

from __future__ import annotations

import enum


class EventKind(enum.StrEnum):
    """``event_frame.kind``: what one event-log line reports."""

    PART_CREATED = "part_created"
    """A feeder made a part: ``part``, ``part_kind``, ``location``."""
    PART_MOVED = "part_moved"
    """The ledger moved a part: ``part``, ``src`` and ``dst`` locations."""
    PART_FASTENED = "part_fastened"
    """A unit's screws were driven: ``part`` (the unit's base)."""
    PART_RETIRED = "part_retired"
    """A part left the world (shipped or scrapped): ``part``."""
    PART_SCRAPPED = "part_scrapped"
    """A part was written off: ``part`` and ``reason``."""
    UNIT_STARTED = "unit_started"
    """A unit's recipe began: ``unit`` (its base part), ``fixture``."""
    UNIT_SHIPPED = "unit_shipped"
    """A finished unit left the cell: ``unit``, ``parts``, ``cycle_s``."""
    UNIT_SCRAPPED = "unit_scrapped"
    """A unit was given up: ``unit`` and ``reason``."""
    ARM_COMMISSIONED = "arm_commissioned"
    """An arm built in the cell was put on its mount point and is made a robot: ``unit``,
    ``serial``, ``robot`` (the name it gets), ``mount``, ``model``, ``parts`` (consumed),
    ``ops`` (``[step, robot, t_ns]`` of every step done on it), ``cycle_s``."""
    INSPECTED = "inspected"
    """A camera looked at a unit: ``unit``, ``ok``, ``seen``, ``fastened``; ``worst`` for a
    recipe with a test tolerance; for a unit rejected by its steps' quality checks,
    ``defects``: ``[step, reading]`` of each (``docs/cell-file.md``, "Quality checks")."""
    UNIT_REWORK = "unit_rework"
    """A unit failed only for its fastenings goes back (``supervisor.rework``): ``unit``,
    ``steps`` (given out again: the fastenings and the inspection) and ``reason``."""
    OP_READY = "op_ready"
    """An operation's predecessors are done: ``op``."""
    AUCTION = "auction"
    """An operation was put out for bids: ``op``, ``part``, ``robots`` asked."""
    AUCTION_FAILED = "auction_failed"
    """No robot bid for an operation; it is auctioned again later: ``op``."""
    OP_AWARDED = "op_awarded"
    """An operation went to a robot: ``op``, ``robot``, ``finish_ns`` (the winning bid; -1
    under the ``fcfs`` policy, which takes no bids) and ``bids`` ([robot, finish_ns] each)."""
    OP_STARTED = "op_started"
    """The robot began moving for it: ``op``, ``robot``."""
    OP_DONE = "op_done"
    """The robot finished it: ``op``, ``robot``."""
    OP_FAILED = "op_failed"
    """The robot could not finish it (``detail`` says why); it is replanned: ``op``, ``robot``."""
    OP_REFUSED = "op_refused"
    """The robot was in no state to run it; it is replanned: ``op``, ``robot``."""
    OP_REQUEUED = "op_requeued"
    """The supervisor took an operation back (robot lost, left Execute): ``op``, ``reason``."""
    OP_SETTLED = "op_settled"
    """An operation was found done without its report (``how``): ``op``, ``robot``."""
    OP_LATE_REPORT = "op_late_report"
    """A robot taken for lost reported work it did meanwhile; it stays its own: ``op``."""
    OP_READOPTED = "op_readopted"
    """A robot taken for lost was still running an operation; it keeps it: ``op``, ``robot``."""
    OP_RECOVERY = "op_recovery"
    """A dropped part is to be picked up again where it lies: ``op``, ``part``, ``at``."""
    ORDER_ADDED = "order_added"
    """An ``order`` control request was taken: ``order`` (its number), ``product``, ``count``."""
    CONTROL = "control"
    """A control request reached the supervisor: ``command``, ``target``, ``action``, ``value``."""
    COMMAND = "command"
    """The supervisor sent a robot a PackML command of its own: ``robot``, ``command`` (a
    PackML command, or ``mode M`` for a change to unit mode M)."""
    COMMAND_REFUSED = "command_refused"
    """A robot refused a PackML command: ``robot``, ``reason``."""
    ROBOT_STATE = "robot_state"
    """A robot's PackML state changed: ``robot``, ``src``, ``dst``, ``reason``."""
    ROBOT_JOINED = "robot_joined"
    """A robot was heard (first time, or again after being lost): ``robot``."""
    ROBOT_COMMISSION_CHECK = "robot_commission_check"
    """A built robot's commissioning check in the world: ``robot``, ``serial``, ``passed``,
    ``sweep_rad``, ``tcp_mm``, ``lift_mm``, ``detail``."""
    ROBOT_ADDED = "robot_added"
    """A built robot that passed its check joins the fleet (its agent starts): ``robot``,
    ``serial``, ``mount``."""
    ROBOT_LOST = "robot_lost"
    """A robot was silent for 3 heartbeat intervals; its work is auctioned again: ``robot``."""
    ROBOT_SLOW = "robot_slow"
    """A robot's motions take longer than planned: ``robot``, ``ratio``."""
    ROBOT_SPEED_OK = "robot_speed_ok"
    """A slow robot is back to its planned speed: ``robot``."""
    DIAGNOSIS = "diagnosis"
    """Self-diagnosis found a drift (``supervisor.health``): ``target``, ``robot`` or
    ``conveyor`` or ``station``, ``component`` (``joint N``, ``gripper``, ``motion``, ``belt``,
    ``placement``, ``screwdriver``, ``fixture``), ``cause`` (the wear it points to),
    ``quantity``, ``evidence`` (the statistic, its threshold, the baseline, the samples
    judged), ``recent`` (the series' last values) and, for a defect rate, ``defects`` (a
    robot's by step and by station; a station's, the robots of each recent defect)."""
    MAINTENANCE_STARTED = "maintenance_started"
    """The supervisor takes a robot out to maintain it before a diagnosed wear breaks it
    (``supervisor.maintenance``): ``robot``, the diagnosis it acts on (``cause``,
    ``component``, ``quantity``, ``evidence``, ``recent``, ``diagnosed_ns``), ``reason`` and
    ``maintenance_s``. Its work is handed back; it goes to Stopped and mode Maintenance."""
    MAINTENANCE_BEGUN = "maintenance_begun"
    """A robot taken out is in mode Maintenance: the world is told to restore it and the
    maintenance time runs from now: ``robot``, ``until_ns``."""
    MAINTENANCE_DONE = "maintenance_done"
    """A maintained robot is back in mode Production, its health baselines learned afresh:
    ``robot``, ``cause``, ``component``, ``started_ns``, ``begun_ns``, ``out_s``."""
    MAINTENANCE_CANCELLED = "maintenance_cancelled"
    """A maintenance under way was given up: ``robot``, ``reason`` (it failed for good)."""
    MAINTENANCE_WANTED = "maintenance_wanted"
    """A diagnosis the supervisor does not act on: ``target`` (``robot`` or ``conveyor``),
    ``cause``, ``component``, ``evidence``, ``reason`` (a belt, a robot failed for good,
    acting turned off)."""
    ALLOCATION_CHANGED = "allocation_changed"
    """Self-optimization (``supervisor.optimize``): by the learned operation times another
    robot now finishes a step at its stations first, and the ``learned`` policy gives it that
    work: ``step``, ``stations``, ``src`` (the robot before, "" for the first), ``dst``,
    ``reason``, ``evidence`` (each able robot's learned time and samples, ``alpha``, the
    robot whose new time triggered it)."""
    STATION_YIELDED = "station_yielded"
    """Self-optimization (the ``learned`` policy, ``supervisor.allocation.sooner``): an
    operation ready to go waits, because another unit's operation needs one of its stations
    soon and is done there sooner by the learned times: ``op`` (held back), ``robot`` (its
    fastest), ``station``, ``to`` (the operation that goes first), ``to_robot``, ``reason``,
    ``evidence`` (``held_s``: ``op``'s learned time; ``to_s``: ``to``'s; ``ready_in_s``:
    until ``to`` can start; it yields when ``2 ready_in_s + to_s < held_s``). Logged once
    for each operation it waits for in a row."""
    SPEED_TUNED = "speed_tuned"
    """Self-optimization changed a robot's motion speed scale, within the cell file's
    ``[optimize.speed]`` limits, and told its agent (a ``tune`` message): ``robot``, ``src``,
    ``dst`` (the scales), ``reason``, ``evidence`` (carries and drops counted, the
    threshold, the limits)."""
    ROBOT_MODE = "robot_mode"
    """A robot's unit mode changed, as it said: ``robot``, ``src``, ``dst`` (``Production``,
    ``Maintenance``, ``Manual``), ``reason``."""
    LINK_LOSSY = "link_lossy"
    """Messages to or from a robot go missing: ``robot``, ``lost``."""
    LINK_OK = "link_ok"
    """A lossy link is whole again: ``robot``."""
    CONVEYOR_JAMMED = "conveyor_jammed"
    """A belt stopped moving its parts: ``conveyor``."""
    CONVEYOR_CLEARED = "conveyor_cleared"
    """A jammed belt moves again: ``conveyor``."""
    SENSOR_STALE = "sensor_stale"
    """A sensor stopped reporting: ``sensor``, ``last_ns``."""
    SENSOR_RESTORED = "sensor_restored"
    """A stale sensor reports again: ``sensor``."""
    FAULT_INJECTED = "fault_injected"
    """A fault was injected: ``target``, ``fault`` (its kind), ``duration_s`` and its extras."""
    SUPERVISOR_RESTORED = "supervisor_restored"
    """A restarted supervisor carried on from its journal."""
    RUN_END = "run_end"
    """The run is over (the last line): ``reason``."""
