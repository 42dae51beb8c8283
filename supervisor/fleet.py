"""What the supervisor knows of each robot, and bringing robots up to Execute.

``Fleet`` owns one ``RobotView`` per robot (its PackML state and unit mode as last heard,
whether it answers, the supervisor's own command in flight, whether an
operator or a fault keeps it down) and the numbering of the supervisor's
commands. Which work a robot holds is not here: that is ``Assignments``'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from bus.cellspec import RobotSpec
from bus.enums import PackMLCommand, PackMLState, UnitMode
from bus.messages import Command, SetMode
from bus.participant import Outbox
from bus.simtime import NS
from supervisor.eventlog import EventLog
from supervisor.journal import field_names

COMMAND_RETRY_NS = 2 * NS
"""Resend an unanswered command (same id) after this long (sim ns)."""
NEVER_NS = 2**63 - 1
"""``RobotView.clear_after_ns`` of a robot that failed for good (a permanent
``robot_fault``): no sim time reaches it, so the supervisor never clears the
robot, and the value survives a restart from the journal like any other."""
BRING_UP = {
    PackMLState.STOPPED: PackMLCommand.RESET,
    PackMLState.COMPLETE: PackMLCommand.RESET,
    PackMLState.IDLE: PackMLCommand.START,
    PackMLState.ABORTED: PackMLCommand.CLEAR,
}
"""The command that takes a robot in each state one step towards Execute."""


@dataclasses.dataclass(slots=True)
class RobotView:
    """What the supervisor knows about one robot."""

    spec: RobotSpec
    state: PackMLState | None = None
    alive: bool = False
    last_seen_ns: int = 0
    pending_cmd: str = ""
    pending_since_ns: int = 0
    pending_command: PackMLCommand | UnitMode | None = None
    """The supervisor's own command in flight: a PackML command or a change of unit mode."""
    mode: UnitMode = UnitMode.PRODUCTION
    """Its unit mode as it last said (a robot not heard yet is taken to be in Production)."""
    manual: bool = False
    """An operator stopped or aborted it: the supervisor does not restart it."""
    held: str = ""
    """Why the supervisor keeps it out of production ("" for not): ``maintenance`` while it
    is taken out, maintained and brought back (``supervisor.maintenance``)."""
    clear_after_ns: int = 0
    """After an injected fault, the supervisor clears it no earlier than this."""
    reported_op: str = ""
    """The operation its last heartbeat said it was running."""

    @property
    def name(self) -> str:
        """The robot's name."""
        return self.spec.name


def failed_for_good(robot: RobotView) -> bool:
    """Whether ``robot`` had a permanent fault and no operator has cleared it since."""
    return robot.clear_after_ns == NEVER_NS


class Fleet:
    """Every robot's view, in the cell file's order (built robots after)."""

    def __init__(self, specs: list[RobotSpec], events: EventLog) -> None:
        self.views = {s.name: RobotView(s) for s in specs}
        self.events = events
        self.cmd_seq = 0
        """The supervisor's own commands sent so far (their ids are ``sup-N``)."""

    def __iter__(self) -> Iterator[RobotView]:
        return iter(self.views.values())

    def add(self, spec: RobotSpec) -> None:
        """A robot joins (one built in the cell): planned for once it is heard."""
        self.views.setdefault(spec.name, RobotView(spec))

    def heard(self, robot: RobotView, now_ns: int) -> None:
        """A message from ``robot``: it is alive (logged when it was not)."""
        if not robot.alive:
            robot.alive = True
            self.events.write(now_ns, "robot_joined", robot=robot.name)
        robot.last_seen_ns = now_ns

    def lost(self, now_ns: int, heartbeat_s: float) -> Iterator[RobotView]:
        """Robots silent for 3 heartbeat intervals of sim time, marked lost (and logged).

        One at a time: the caller gives back each one's work before the next is
        marked, so the log reads robot by robot.
        """
        limit = int(3 * heartbeat_s * NS)
        for robot in self.views.values():
            if robot.alive and now_ns - robot.last_seen_ns > limit:
                robot.alive = False
                robot.pending_cmd = ""
                self.events.write(now_ns, "robot_lost", robot=robot.name)
                yield robot

    def bring_up(self, out: Outbox, now_ns: int, busy: Callable[[str], bool]) -> None:
        """Drive every live robot towards Execute (Reset, Start, Clear).

        ``busy(name)``: an operator's command to it is on its way, and its answer decides.
        """
        for robot in self.views.values():
            if not robot.alive or robot.state is None or robot.manual:
                continue
            if busy(robot.name):
                continue
            if robot.held or (robot.mode is not UnitMode.PRODUCTION and not robot.pending_cmd):
                continue  # out of production: maintenance (or an operator) brings it back
            if robot.state is PackMLState.ABORTED and now_ns < robot.clear_after_ns:
                continue
            if robot.pending_cmd:
                if now_ns - robot.pending_since_ns < COMMAND_RETRY_NS:
                    continue
                assert robot.pending_command is not None
                out.send(
                    robot.name,
                    command_message(robot.pending_cmd, robot.name, robot.pending_command),
                )
                robot.pending_since_ns = now_ns
                continue
            cmd = BRING_UP.get(robot.state)
            if cmd is not None:
                self.send(robot, cmd, out, now_ns)

    def answered(self, robot: RobotView, cmd_id: str) -> None:
        """``robot`` answered the supervisor's own command ``cmd_id`` (if it is that one)."""
        if cmd_id == robot.pending_cmd:
            robot.pending_cmd, robot.pending_command = "", None

    def send(
        self, robot: RobotView, cmd: PackMLCommand | UnitMode, out: Outbox, now_ns: int
    ) -> None:
        """Send ``robot`` a command of the supervisor's own (a PackML command, or a change of
        unit mode), sent again every ``COMMAND_RETRY_NS`` until it is answered."""
        self.cmd_seq += 1
        robot.pending_cmd = f"sup-{self.cmd_seq}"
        robot.pending_command = cmd
        robot.pending_since_ns = now_ns
        out.send(robot.name, command_message(robot.pending_cmd, robot.name, cmd))
        what = f"mode {cmd.value}" if isinstance(cmd, UnitMode) else cmd.value
        self.events.write(now_ns, "command", robot=robot.name, command=what)

    def mode_heard(self, robot: RobotView, mode: UnitMode, now_ns: int, reason: str) -> None:
        """``robot`` says it is in unit mode ``mode`` (logged when that is news)."""
        if mode is robot.mode:
            return
        old, robot.mode = robot.mode, mode
        self.events.write(
            now_ns, "robot_mode", robot=robot.name, src=old.value, dst=mode.value, reason=reason
        )

    def restarted(self, now_ns: int) -> None:
        """After a supervisor restart: every robot is given time to be heard again.

        Commands in flight are forgotten (their answers went to the dead process),
        and so is what each robot last said it ran: only a heartbeat heard since
        the restart counts when the supervisor settles what happened meanwhile.
        """
        for robot in self.views.values():
            robot.last_seen_ns = now_ns
            robot.pending_cmd, robot.pending_command = "", None
            robot.reported_op = ""

    def snapshot(self) -> dict[str, Any]:
        """Every view's fields but its spec, and the command count, as plain data."""
        views = {}
        for name, r in self.views.items():
            fields = {n: getattr(r, n) for n in field_names(type(r)) if n != "spec"}
            fields["state"] = r.state.value if r.state is not None else None
            fields["pending_command"] = r.pending_command.value if r.pending_command else None
            fields["mode"] = r.mode.value
            views[name] = fields
        return {"views": views, "cmd_seq": self.cmd_seq}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote (the robots must be in the fleet already)."""
        for name, fields in data["views"].items():
            view = self.views[name]
            for key, value in fields.items():
                setattr(view, key, value)
            view.state = PackMLState(fields["state"]) if fields["state"] else None
            pc = fields["pending_command"]
            view.pending_command = _command(pc) if pc else None
            view.mode = UnitMode(fields.get("mode", UnitMode.PRODUCTION.value))
        self.cmd_seq = data["cmd_seq"]


def command_message(cmd_id: str, robot: str, cmd: PackMLCommand | UnitMode) -> Command | SetMode:
    """The message that carries ``cmd``: a PackML ``command`` or a ``set_mode``."""
    if isinstance(cmd, UnitMode):
        return SetMode(cmd_id, robot, cmd)
    return Command(cmd_id, robot, cmd)


def _command(value: str) -> PackMLCommand | UnitMode:
    """A snapshot's command in flight, back from its value (the two enums share no value)."""
    try:
        return PackMLCommand(value)
    except ValueError:
        return UnitMode(value)
