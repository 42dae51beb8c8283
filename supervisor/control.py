"""Control requests the supervisor decides: robot and cell commands, faults, orders.

The cell host owns the control socket and routes these here in
``world_sense.requests``; the answers go back in ``world_act.replies``. A
robot command travels to its agent with the client's ``cmd_id``, so a retry
reaches the agent with the same id and is not applied twice; the answer waits
for the agent's ``command_reply``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

from bus.enums import ControlCommand, FaultKind, PackMLCommand, PackMLState, UnitMode
from bus.messages import Command, CommandReply, ControlReply, ControlRequest, Degrade, SetMode
from bus.participant import Outbox
from bus.simtime import NS, to_ns
from supervisor.creep import Creeps
from supervisor.eventlog import EventLog
from supervisor.fleet import (
    COMMAND_RETRY_NS,
    NEVER_NS,
    Fleet,
    RobotView,
    command_message,
    failed_for_good,
)
from supervisor.view import SimTime

MANUAL = (PackMLCommand.STOP, PackMLCommand.ABORT)
"""Operator commands after which the supervisor leaves the robot alone (from when they are
sent, so it does not restart the robot meanwhile; undone if the robot refuses)."""
AUTOMATIC = (PackMLCommand.RESET, PackMLCommand.START, PackMLCommand.CLEAR)
"""Operator commands that hand the robot back to the supervisor, once the robot accepts one:
a refused Start leaves a robot an operator stopped stopped."""
StateHeard = Callable[[RobotView, PackMLState, str], None]
"""How the desk tells the supervisor a robot's state it learnt from a command reply."""


@dataclasses.dataclass(slots=True)
class _Waiting:
    """A control request waiting for agents' replies."""

    req: ControlRequest
    robots: set[str]
    refused: list[str]
    commands: dict[str, Command | SetMode] = dataclasses.field(default_factory=dict)
    """What went to each robot, to send again (same id) if no answer comes."""
    manual_before: dict[str, bool] = dataclasses.field(default_factory=dict)
    """Each robot's ``manual`` before a MANUAL command, put back if the robot refuses it."""
    sent_ns: int = 0


class ControlDesk:
    """Turns control requests into robot commands and answers; owns the orders."""

    def __init__(
        self,
        fleet: Fleet,
        events: EventLog,
        time: SimTime,
        *,
        tick_ns: int,
        product: str,
        state_heard: StateHeard,
    ) -> None:
        self.fleet = fleet
        self.events = events
        self.time = time
        self.tick_ns = tick_ns
        self.product = product
        self.state_heard = state_heard
        self.replies: list[ControlReply] = []
        self.waiting: dict[str, _Waiting] = {}
        self.by_cmd: dict[str, str] = {}
        """Agent command id -> control request id."""
        self.orders: list[dict[str, object]] = []
        self.creeps = Creeps()
        """Robots whose cycle creeps (``cycle_creep``): told their slowdown every second."""

    def in_flight(self, robot: str) -> bool:
        """Whether an operator's command to ``robot`` waits for its answer.

        The supervisor sends the robot nothing of its own meanwhile: its own
        Clear after an operator's would only be refused.
        """
        return any(robot in w.robots for w in self.waiting.values())

    def take_replies(self) -> tuple[ControlReply, ...]:
        """Answers ready to go back to the host."""
        out, self.replies = tuple(self.replies), []
        return out

    def _answer(
        self, req: ControlRequest, ok: bool, code: str, reason: str, *, data: str = ""
    ) -> None:
        self.replies.append(ControlReply(req.cmd_id, ok, code, reason, data=data))

    def snapshot(self) -> dict[str, Any]:
        """The orders and the creeping robots, as plain data (requests in flight die with the
        process)."""
        return {"orders": [dict(o) for o in self.orders], "creeps": self.creeps.snapshot()}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.orders = [dict(o) for o in data["orders"]]
        self.creeps.restore(data.get("creeps", {}))

    def request(self, req: ControlRequest, out: Outbox) -> None:
        """Handle one routed request."""
        robots = self.fleet.views
        self.events.write(
            self.time.ns,
            "control",
            command=req.command.value,
            target=req.target,
            action=req.action,
            value=req.value,
            **({"permanent": True} if req.permanent else {}),
        )
        if req.command is ControlCommand.ORDER:
            self._order(req)
        elif req.command is ControlCommand.FAULT:
            self._fault(req, out)
        elif req.command in (ControlCommand.ROBOT, ControlCommand.CELL):
            cmd = _command(req.action)
            if cmd is None:
                why = f"{req.action[:80]!r} is not a PackML command or a unit mode"
                self._answer(req, False, "bad_argument", why)
                return
            if req.command is ControlCommand.ROBOT:
                targets = [req.target]
            else:
                targets = [n for n, r in sorted(robots.items()) if r.alive]
            self._command(req, cmd, targets, out)
        else:
            self._answer(
                req, False, "unknown_command", f"{req.command.value} is not for the supervisor"
            )

    def _command(
        self, req: ControlRequest, cmd: PackMLCommand | UnitMode, targets: list[str], out: Outbox
    ) -> None:
        robots = self.fleet.views
        unknown = [t for t in targets if t not in robots]
        if unknown:
            self._answer(req, False, "unknown_robot", f"no robot {unknown[0]!r}")
            return
        down = [t for t in targets if not robots[t].alive]
        if down:
            self._answer(req, False, "unavailable", f"{', '.join(down)} not answering")
            return
        if not targets:
            self._answer(req, False, "unavailable", "no robot is answering")
            return
        wait = _Waiting(req, set(), [], sent_ns=self.time.ns)
        for name in targets:
            robot = robots[name]
            cmd_id = req.cmd_id if req.command is ControlCommand.ROBOT else f"{req.cmd_id}/{name}"
            if cmd in MANUAL:
                wait.manual_before[name] = robot.manual
                robot.manual = True
            wait.commands[name] = command_message(cmd_id, name, cmd)
            out.send(name, wait.commands[name])
            self.by_cmd[cmd_id] = req.cmd_id
            wait.robots.add(name)
        self.waiting[req.cmd_id] = wait

    def resend(self, out: Outbox) -> None:
        """Send again (same ids) the commands whose answers have not come: a lossy link.

        The agent answers a repeated id with its first answer, so a command
        is never applied twice.
        """
        now = self.time.ns
        self.creeps.send(out, now)
        for wait in self.waiting.values():
            if now - wait.sent_ns < COMMAND_RETRY_NS:
                continue
            wait.sent_ns = now
            for name in sorted(wait.robots):
                if self.fleet.views[name].alive:
                    out.send(name, wait.commands[name])

    def reply(self, robot: str, rep: CommandReply) -> bool:
        """An agent answered; True if it was one of ours."""
        key = self.by_cmd.pop(rep.cmd_id, None)
        if key is None:
            return False
        wait = self.waiting.get(key)
        if wait is None:
            return True
        wait.robots.discard(robot)
        view = self.fleet.views.get(robot)
        if not rep.accepted:
            wait.refused.append(f"{robot}: {rep.reason}")
            if view is not None and robot in wait.manual_before:
                view.manual = wait.manual_before[robot]
        elif view is not None:
            sent = wait.commands[robot]
            if isinstance(sent, Command) and sent.command in AUTOMATIC:
                view.manual = False
                view.clear_after_ns = 0  # the operator repaired it: a fault's wait is over
            if rep.state is not view.state:
                # its state_changed was lost: the reply says where the command took it, so the
                # supervisor does not act on the state it left (as for a heartbeat)
                self.state_heard(view, rep.state, "command_reply")
        if not wait.robots:
            del self.waiting[key]
            if wait.refused:
                self._answer(wait.req, False, "refused", "; ".join(wait.refused))
            else:
                self._answer(wait.req, True, "ok", f"{wait.req.action} accepted")
        return True

    def _fault(self, req: ControlRequest, out: Outbox) -> None:
        robots, now = self.fleet.views, self.time.ns
        if req.action == FaultKind.SLOW_ROBOT and req.target in robots:
            until = now + to_ns(req.value)
            out.send(req.target, Degrade(req.target, req.factor, until, not req.hidden))
        if req.action == FaultKind.MESSAGE_LOSS and req.target in robots:
            ticks = math.ceil(req.value * NS / self.tick_ns)
            out.impair(req.target, req.factor, self.time.tick + 1 + ticks)
        if req.action == FaultKind.CYCLE_CREEP and req.target in robots:
            self.creeps.start(req.target, now, to_ns(req.value), req.factor)
        # what the kind was given besides its duration, logged with it
        extra: dict[str, float | bool] = {}
        if req.action in (FaultKind.SLOW_ROBOT, FaultKind.CYCLE_CREEP):
            extra["factor"] = req.factor
        elif req.action in (
            FaultKind.MESSAGE_LOSS,
            FaultKind.GRIPPER_WEAR,
            FaultKind.BELT_WEAR,
            FaultKind.TOOL_WEAR,
        ):
            extra["share"] = req.factor
        elif req.action == FaultKind.JOINT_DRIFT:
            extra["joint"] = int(req.factor)
        elif req.action == FaultKind.ROBOT_FAULT and req.permanent:
            extra["permanent"] = True
        if req.hidden:
            extra["hidden"] = True

        def logged() -> None:
            self.events.write(
                now,
                "fault_injected",
                target=req.target,
                fault=req.action,
                duration_s=req.value,
                **extra,
            )

        if req.action != FaultKind.ROBOT_FAULT:
            # done by the host or the launcher already (or just told the robot): logged here
            logged()
            self._answer(req, True, "ok", f"{req.action} on {req.target}")
            return
        robot = robots.get(req.target)
        if robot is None:
            self._answer(req, False, "unknown_robot", f"no robot {req.target!r}")
            return
        if not robot.alive:
            self._answer(req, False, "unavailable", f"{req.target} not answering")
            return
        if req.permanent:
            robot.clear_after_ns = NEVER_NS
        else:
            robot.clear_after_ns = now + to_ns(max(req.value, 0.0))
        logged()
        abort = dataclasses.replace(
            req, command=ControlCommand.ROBOT, action=PackMLCommand.ABORT.value
        )
        self._command(abort, PackMLCommand.ABORT, [req.target], out)
        robot.manual = False  # a fault clears itself after its duration (or never)

    def lost_part(self, location: str) -> str:
        """Why a part at ``location`` can never be used again, or "".

        A part in the gripper of a robot that failed for good stays there until
        someone comes to the cell: it is written off, so the work that needed it
        goes on with a fresh one (or, for a unit's base, the unit is scrapped
        and its fixture freed). (A part that fell is ``supervisor.recovery``'s
        to judge.)
        """
        kind, _, name = location.partition(":")
        robot = self.fleet.views.get(name) if kind == "gripper" else None
        if robot is not None and failed_for_good(robot):
            return f"held by {name}, failed for good"
        return ""

    def _order(self, req: ControlRequest) -> None:
        product = self.product
        if req.action != product:
            self._answer(
                req, False, "bad_argument", f"this cell makes {product!r}, not {req.action!r}"
            )
            return
        count = req.value
        if count != int(count) or not 1 <= count <= 1_000_000:
            self._answer(
                req, False, "bad_argument", f"count must be a whole number from 1, got {count:g}"
            )
            return
        order = {
            "order": len(self.orders) + 1,
            "product": product,
            "count": int(count),
            "shipped": 0,
        }
        self.orders.append(order)
        self.events.write(self.time.ns, "order_added", **order)
        # the number a client follows the order by (kpis.orders) is data, not only words
        data = json.dumps(order, sort_keys=True)
        self._answer(
            req, True, "ok", f"order {order['order']}: {int(count)} x {product}", data=data
        )

    def shipped(self) -> None:
        """A unit shipped: it counts towards the oldest open order."""
        for order in self.orders:
            if int(str(order["shipped"])) < int(str(order["count"])):
                order["shipped"] = int(str(order["shipped"])) + 1
                return


def _command(action: str) -> PackMLCommand | UnitMode | None:
    """The PackML command or unit mode a control request names (None: neither)."""
    for kind in (PackMLCommand, UnitMode):
        try:
            return kind(action)
        except ValueError:
            continue
    return None
