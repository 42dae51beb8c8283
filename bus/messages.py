"""Every message lightsout sends, as frozen dataclasses with a type tag.

A message is a ``@message("tag")`` class: a frozen, slotted dataclass whose
fields are primitives, string enums, nested messages or tuples of those. Time
is always integer nanoseconds of sim time. The codec (``bus.codec``) turns
them into msgpack maps ``{"type": tag, "v": version, <field>: <value>, ...}``;
``docs/protocol.md`` lists them all for clients in other languages.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from typing import ClassVar, TypeVar, dataclass_transform

from bus.enums import (
    ControlCommand,
    ExecStep,
    Grip,
    OpStatus,
    Pace,
    PackMLCommand,
    PackMLState,
    Skill,
    Topic,
    UnitMode,
    WorldEventKind,
)

REGISTRY: dict[str, type[Message]] = {}
"""Every message class by its type tag; the codec decodes through it."""


class Message:
    """Base of all messages: carries the class-level tag and schema version."""

    __slots__ = ()
    TAG: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1


M = TypeVar("M", bound=type[Message])


@dataclass_transform(frozen_default=True)
def message(tag: str, *, version: int = 1) -> Callable[[M], M]:
    """Make ``cls`` a frozen slotted dataclass and register it under ``tag``."""

    def wrap(cls: M) -> M:
        if tag in REGISTRY:
            raise ValueError(f"message tag {tag!r} registered twice")
        made = typing.cast(M, dataclasses.dataclass(frozen=True, slots=True)(cls))
        made.TAG = tag
        made.VERSION = version
        REGISTRY[tag] = made
        return made

    return wrap


# ---------------------------------------------------------------- clock


@message("count")
class Count(Message):
    """How many messages ``peer`` sent (in Done) or is owed (in Tick) for one tick."""

    peer: str
    n: int


@message("join")
class Join(Message):
    """A participant asks the clock to include it in the barrier from the next tick."""

    name: str
    role: str
    pid: int


@message("tick")
class Tick(Message):
    """The clock opens control tick ``tick`` at sim time ``t_ns``.

    ``expect`` is the causal barrier: for each sender, how many cell messages it
    sent to this receiver during the previous tick. The receiver processes
    exactly those before acting. ``sense`` is what the world tells this
    participant (a ``RobotSense`` or a ``WorldSense``).
    """

    tick: int
    t_ns: int
    expect: tuple[Count, ...]
    sense: Message | None


@message("done")
class Done(Message):
    """A participant closes its tick: what it sent to whom, and what the world should do."""

    tick: int
    name: str
    sent: tuple[Count, ...]
    act: Message | None
    wake_ns: int = 0
    """The earliest sim time this participant must be ticked again unless a message or a
    world event it watches reaches it first (the event clock's lookahead); 0: every tick."""


@message("shutdown")
class Shutdown(Message):
    """The clock ends the run; participants write their results and exit."""

    t_ns: int
    reason: str


# ---------------------------------------------------------------- world <-> robot


@message("part_pose")
class PartPose(Message):
    """Where a part is: position in metres, orientation as a quaternion (x, y, z, w)."""

    part: str
    kind: str
    x: float
    y: float
    z: float
    qx: float
    qy: float
    qz: float
    qw: float

    @property
    def tilt(self) -> float:
        """How far the part's top face is turned from facing straight up (radians, 0 to pi)."""
        return math.acos(max(-1.0, min(1.0, 1.0 - 2.0 * (self.qx**2 + self.qy**2))))


@message("member_pose")
class MemberPose(Message):
    """Where a part joined to a unit sits: its bottom centre in the frame of the unit's base
    part, measured from the top centre of the base (metres), and its tilt (radians)."""

    part: str
    kind: str
    dx: float
    dy: float
    dz: float
    tilt: float = 0.0


@message("inspection")
class Inspection(Message):
    """What a camera sees of a unit: the kinds of part joined to it and if it is fastened.

    ``members`` measures where each joined part sits (a test stand's measurement,
    for recipes with a tolerance); ``torques`` reads each screw's torque (N m, for
    recipes that check one); ``draw`` is the inspection's own chance draw in [0, 1),
    which decides a false accept or reject at the rates the recipe sets. Older senders
    leave them out (1.0: no chance of error).
    """

    unit: str
    kinds: tuple[str, ...]
    fastened: bool
    members: tuple[MemberPose, ...] = ()
    torques: tuple[float, ...] = ()
    draw: float = 1.0


@message("robot_sense")
class RobotSense(Message):
    """The world's report to one robot at a tick.

    ``holding`` is the part in the gripper ("" for none); ``seen`` answers the
    parts the robot asked to observe last tick; ``inspection`` answers an
    inspect request.
    """

    robot: str
    q: tuple[float, ...]
    holding: str
    seen: tuple[PartPose, ...]
    inspection: Inspection | None


@message("path_segment")
class PathSegment(Message):
    """A stretch of a planned motion: from ``q0`` at ``t0_ns`` to ``q1`` at ``t1_ns`` under the
    quintic time law (``bus.path``)."""

    t0_ns: int
    t1_ns: int
    q0: tuple[float, ...]
    q1: tuple[float, ...]


@message("robot_act")
class RobotAct(Message):
    """A robot's command to the world for the coming tick.

    ``q`` is the joint target to reach at the end of the tick (the world
    interpolates per physics step); ``observe`` asks for the poses of parts;
    ``fasten`` / ``inspect`` name a unit to act on ("" for none). ``state``,
    ``step`` and ``op_id`` say what the robot is doing, for telemetry.

    ``path`` (shifted by ``path_shift_ns``) is the whole motion the arm is on, numbered
    ``path_id`` by the robot: for every later tick the clock does not open for this robot,
    the world takes the target of the tick at ``t`` as the path's pose at ``t`` plus one
    tick (``bus.path.path_at``), and holds ``q`` once the path is over. The segments come
    with the first act of a motion; later acts of the same motion carry its ``path_id``
    only. ``path_id`` 0 is no motion: a Hold, an Abort or a new plan cuts a path short at
    that act's tick.

    ``aim`` says where the tool works at events fidelity, where no arm has a pose
    (``sim.events``): the part a grasp closes on, or where a release puts the part (a
    station, or ``unit:ID``). The physics world ignores it: there the tool is where the
    joints put it.
    """

    robot: str
    q: tuple[float, ...]
    grip: Grip
    observe: tuple[str, ...]
    fasten: str
    inspect: str
    state: PackMLState = PackMLState.STOPPED
    step: ExecStep = ExecStep.WAITING
    op_id: str = ""
    path_id: int = 0
    path: tuple[PathSegment, ...] = ()
    path_shift_ns: int = 0
    aim: str = ""
    mode: UnitMode = UnitMode.PRODUCTION
    """The robot's unit mode, for telemetry and the world's records."""


# ---------------------------------------------------------------- world <-> supervisor


@message("world_event")
class WorldEvent(Message):
    """Something physical happened to a part.

    ``location`` is a ledger location (``conveyor:infeed``, ``fixture:F1``,
    ``gripper:R1``, ``unit:<part>``, ``feeder:battery_feeder``, ``floor``,
    ``retired``); ``other`` names the robot or unit involved, if any.

    When a released part comes to rest (``settled``, ``attached``) the world
    also says how it lies, so the supervisor can judge whether a robot could
    pick it up again: ``pose`` is where it rests, ``touching`` the other parts
    it touches, ``blocked`` whether something (a belt over it, a tray beside
    it; not an arm) is in the way of a gripper coming straight down to it.
    Older senders leave them out: no pose, touching nothing, not blocked.
    """

    t_ns: int
    kind: WorldEventKind
    part: str
    part_kind: str
    location: str
    other: str
    pose: PartPose | None = None
    touching: tuple[str, ...] = ()
    blocked: bool = False


@message("sensor_reading")
class SensorReading(Message):
    """A presence sensor's state: the part it sees ("" for none)."""

    sensor: str
    part: str


@message("sensor_quiet")
class SensorQuiet(Message):
    """A sensor that reports nothing now (a blackout), and the sim time it last reported: the
    supervisor, which the event clock may not have ticked since, judges its silence from
    that, not from when it last heard it."""

    sensor: str
    last_ns: int


@message("commission_check")
class CommissionCheck(Message):
    """The commissioning check of a robot built in the cell, run on the new arm in the world.

    ``sweep_rad``: the largest gap between a swept joint's target and where the
    world's joint went; ``tcp_mm``: the largest distance between the tool the
    world reached and where the robot's own kinematic model puts it, over the
    test poses; ``lift_mm``: how far the test payload rose while held.
    """

    robot: str
    mount: str
    passed: bool
    sweep_rad: float
    tcp_mm: float
    lift_mm: float
    detail: str = ""
    joining: bool = True
    """Whether it joins the run (a robot that passed too near the run's end does not)."""


@message("joint_tracking")
class JointTracking(Message):
    """A robot's joint tracking errors as its drives report them: measured minus commanded
    position, radians, one per arm joint in ``q`` order."""

    robot: str
    errors: tuple[float, ...]


@message("world_sense")
class WorldSense(Message):
    """The world's report to the supervisor: events since the last tick and all sensors.

    ``checks`` are commissioning checks of built robots finished since the last tick;
    ``tracking`` every robot's joint tracking errors, once per sim second (empty between).
    """

    events: tuple[WorldEvent, ...]
    sensors: tuple[SensorReading, ...]
    requests: tuple[ControlRequest, ...] = ()
    checks: tuple[CommissionCheck, ...] = ()
    quiet: tuple[SensorQuiet, ...] = ()
    tracking: tuple[JointTracking, ...] = ()


@message("commission")
class Commission(Message):
    """The supervisor's word that the arm ``unit`` on ``mount`` passed its test: the world
    replaces it by a working robot called ``robot``."""

    unit: str
    robot: str
    mount: str


@message("world_act")
class WorldAct(Message):
    """The supervisor's requests to the world: parts to take out (shipped or scrapped).

    ``events`` are the event-log lines the supervisor wrote this tick (JSON),
    ``kpis`` a KPI snapshot (JSON, "" when none is due) and ``replies`` its
    answers to control requests: the cell host publishes and forwards them.
    """

    retire: tuple[str, ...]
    events: tuple[str, ...] = ()
    kpis: str = ""
    replies: tuple[ControlReply, ...] = ()
    commission: tuple[Commission, ...] = ()
    maintain: tuple[str, ...] = ()
    """Robots (or belts) maintained now: the world takes the wear off them (a drifting joint,
    a worn gripper, a worn belt back to baseline); a drive that already tripped stays failed."""


# ---------------------------------------------------------------- cell bus (supervisor <-> agents)


@message("envelope")
class Envelope(Message):
    """A cell-bus message with the causal-barrier header (sender, tick, per-peer sequence)."""

    src: str
    dst: str
    tick: int
    seq: int
    body: Message


@message("operation")
class Operation(Message):
    """One step of a recipe for one unit, as given to robots.

    ``src`` and ``dst`` are station names (for pick_place); ``at`` is the
    station where a fasten or inspect happens; ``part`` is the part to move.
    ``onto_unit`` says the part is placed on the unit at ``dst`` at the offset
    ``(dx, dy, dz)`` from the top centre of the unit's base part (in its frame).

    ``pick`` makes it a recovery: the part fell and is picked up from where it
    came to rest (this pose, as the world last reported it) instead of from a
    station; ``src`` is then empty. Older supervisors leave it out.

    ``base_kind`` is the part kind of the unit's base (cells with several
    recipes); ``grip_dz`` how far above the base's top face a move of the
    whole unit takes hold of it (the top of a stack). Older supervisors leave
    them out: the cell's first recipe, gripped at the base.
    """

    op_id: str
    unit: str
    name: str
    skill: Skill
    part: str
    part_kind: str
    src: str
    dst: str
    at: str
    onto_unit: bool
    dx: float
    dy: float
    dz: float
    pick: PartPose | None = None
    base_kind: str = ""
    grip_dz: float = 0.0


@message("call_for_bids")
class CallForBids(Message):
    """Contract net: the supervisor asks capable robots for their finish time."""

    op: Operation


@message("bid")
class Bid(Message):
    """A robot's estimated finish time for an operation, or ``finish_ns = -1`` to decline."""

    op_id: str
    robot: str
    finish_ns: int


@message("award")
class Award(Message):
    """Contract net: the operation goes to this robot.

    ``attempt`` counts the times the supervisor took the operation back and
    gave it out again: a robot sent the same award twice (a retry over a lossy
    link) does it once; a new attempt is new work.
    """

    op: Operation
    robot: str
    attempt: int = 0


@message("revoke")
class Revoke(Message):
    """The supervisor takes an awarded, not yet started, operation back."""

    op_id: str
    robot: str


@message("degrade")
class Degrade(Message):
    """A fault: the robot's motions take ``factor`` times longer until ``until_ns``.

    ``seen`` false: the robot's own estimates (its bids) do not see it, as a drive that
    lags its command leaves the controller none the wiser: it bids at the speed it plans at
    and runs slower (a ``slow_robot`` with ``hidden = true``)."""

    robot: str
    factor: float
    until_ns: int
    seen: bool = True


@message("tune")
class Tune(Message):
    """Self-optimization: plan the robot's motions at ``speed_scale`` times its cell file's
    speed from now on (within the cell file's ``[optimize.speed]`` limits; 1 undoes it)."""

    robot: str
    speed_scale: float
    reason: str = ""


@message("op_report")
class OpReport(Message):
    """A robot reports an operation started, finished or failed."""

    op_id: str
    robot: str
    status: OpStatus
    detail: str
    t_ns: int
    inspection: Inspection | None
    attempt: int = 0
    """The award's ``attempt`` (a late report of an earlier attempt is told apart)."""


@message("report_ack")
class ReportAck(Message):
    """The supervisor has an ``op_report``: the robot stops re-sending it."""

    op_id: str
    robot: str
    attempt: int


@message("op_started")
class OpStarted(Message):
    """A robot began moving for an operation."""

    op_id: str
    robot: str
    t_ns: int
    attempt: int = 0


@message("heartbeat")
class Heartbeat(Message):
    """A robot is alive at sim time ``t_ns``, in ``state`` / ``step``, running ``op_id``.

    ``queued`` lists the awards it holds but has not started and ``gaps`` the
    supervisor's messages it saw missing: the supervisor re-sends awards that
    never arrived and notices a lossy link from either end.
    """

    robot: str
    t_ns: int
    state: PackMLState
    step: ExecStep
    op_id: str
    queued: tuple[str, ...] = ()
    gaps: int = 0
    mode: UnitMode = UnitMode.PRODUCTION
    """Its unit mode (older agents leave it out: Production)."""


@message("state_changed")
class StateChanged(Message):
    """A robot's PackML state changed."""

    robot: str
    t_ns: int
    src: PackMLState
    dst: PackMLState
    reason: str


@message("command")
class Command(Message):
    """A PackML command for one robot; ``cmd_id`` makes a retry harmless."""

    cmd_id: str
    robot: str
    command: PackMLCommand


@message("set_mode")
class SetMode(Message):
    """Change one robot's unit mode; answered by a ``command_reply`` (refused unless the robot
    is in a state where its mode may change: Stopped, Idle, Held, Complete, Aborted)."""

    cmd_id: str
    robot: str
    mode: UnitMode


@message("mode_changed")
class ModeChanged(Message):
    """A robot's unit mode changed."""

    robot: str
    t_ns: int
    src: UnitMode
    dst: UnitMode
    reason: str


@message("command_reply")
class CommandReply(Message):
    """The answer to a Command: accepted or refused, and why."""

    cmd_id: str
    robot: str
    accepted: bool
    state: PackMLState
    reason: str


@message("error_reply")
class ErrorReply(Message):
    """The answer to input that could not be understood; ``code`` is stable for clients."""

    code: str
    reason: str


# ---------------------------------------------------------------- control (clients -> cell host)

PACES = tuple(p.value for p in Pace)
"""What a ``pace`` control request accepts as its ``action``."""


@message("control_request")
class ControlRequest(Message):
    """A control client's request on the control socket (see docs/protocol.md).

    ``command`` picks the request; ``target`` names a robot ("" for the cell);
    ``action`` and ``value`` carry its argument: a PackML command name for
    ``robot`` / ``cell``, a fault kind and its duration for ``fault``, a pace
    (``pause``, ``run``, ``realtime``, ``fast``) and a real-time factor for
    ``pace``, a product and a count for ``order`` (a factory's control socket also
    reads ``target`` as the customer and ``factor`` as when the order is due, in sim
    seconds from when it is taken: ``factory.control``); ``factor`` is how many times
    slower a ``slow_robot`` fault makes the robot, or the share of messages a
    ``message_loss`` loses (0 to 1); ``permanent`` makes a
    ``robot_fault`` one the supervisor never clears (``value`` is then 0); ``hidden``
    makes a ``slow_robot`` one the robot's own estimates do not see.
    ``cmd_id`` makes a retry harmless: the same id is answered with the first
    answer.
    """

    cmd_id: str
    command: ControlCommand
    target: str = ""
    action: str = ""
    value: float = 0.0
    factor: float = 0.0
    permanent: bool = False
    hidden: bool = False


@message("robot_status")
class RobotStatus(Message):
    """One robot as the cell host last saw it."""

    robot: str
    state: PackMLState
    step: ExecStep
    op_id: str
    holding: str
    alive: bool
    fault: str
    mode: UnitMode = UnitMode.PRODUCTION
    """Its unit mode, as its last act said."""


@message("cell_status")
class CellStatus(Message):
    """The answer to ``status``: the clock, the robots and the production counts."""

    t_ns: int
    pace: str
    rtf: float
    robots: tuple[RobotStatus, ...]
    units_completed: int
    units_in_progress: int
    ledger_balanced: bool
    refused: int = 0
    """Control requests answered with an error code other than ``malformed``, since the start."""
    malformed: int = 0
    """Control requests answered ``malformed`` (or unreadable), since the start."""
    dropped: int = 0
    """Times a telemetry subscriber's queue overflowed, since the start: each time, that
    subscriber misses messages (a gap in its ``seq``) until it has read its queue down."""


@message("control_reply")
class ControlReply(Message):
    """The answer to a ``control_request``.

    ``code`` is a ``ControlCode``: ``ok`` or a stable error code.
    ``status`` answers ``status``; ``data`` carries JSON for ``snapshot``.
    """

    cmd_id: str
    ok: bool
    code: str
    reason: str
    status: CellStatus | None = None
    data: str = ""


# ---------------------------------------------------------------- telemetry (cell host -> subscribers)

TOPICS = tuple(t.value for t in Topic)
"""Telemetry topics, in the order the cell host publishes them within a tick."""


@message("pose3")
class Pose3(Message):
    """A frame in the cell: position (m) and orientation quaternion (x, y, z, w)."""

    x: float
    y: float
    z: float
    qx: float
    qy: float
    qz: float
    qw: float


@message("arm_state")
class ArmState(Message):
    """One arm at a tick: joint names and positions, its base, tool and link frames, what it does."""

    robot: str
    names: tuple[str, ...]
    q: tuple[float, ...]
    base: Pose3
    tcp: Pose3
    state: PackMLState
    step: ExecStep
    op_id: str
    holding: str
    links: tuple[str, ...] = ()
    """The URDF names of the arm's links, root first (what ``link_poses`` lists)."""
    link_poses: tuple[float, ...] = ()
    """Each link's URDF frame in the cell as the world has it this tick, seven numbers a
    link in ``links`` order (x, y, z, qx, qy, qz, qw): flat, as a tick's frame of
    nested poses cost the host four times as much to encode."""

    def poses(self) -> tuple[Pose3, ...]:
        """``link_poses`` as one ``Pose3`` per link."""
        v = self.link_poses
        return tuple(Pose3(*v[i : i + 7]) for i in range(0, len(v) - 6, 7))


@message("joints_frame")
class JointsFrame(Message):
    """Topic ``joints``: every arm, once per control tick. ``seq`` counts per topic from 0."""

    seq: int
    t_ns: int
    arms: tuple[ArmState, ...]


@message("parts_frame")
class PartsFrame(Message):
    """Topic ``parts``: every live part's pose and ledger location, once per control tick."""

    seq: int
    t_ns: int
    parts: tuple[PartPose, ...]
    locations: tuple[str, ...]


@message("event_frame")
class EventFrame(Message):
    """Topic ``events``: one event-log line (ledger change, assignment, fault, state), as JSON."""

    seq: int
    t_ns: int
    kind: str
    data: str


@message("kpi_frame")
class KpiFrame(Message):
    """Topic ``kpis``: the KPI snapshot (as in ``kpis.json``), as JSON: once per sim second, every
    10 at events fidelity (``supervisor.kpis.PUBLISH_EVERY_S``)."""

    seq: int
    t_ns: int
    data: str
