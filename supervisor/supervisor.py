"""The cell supervisor: allocates operations by contract net and keeps the ledger.

Each tick it reads what the world reports (parts spawned, grasped, settled,
arrived; the sensors), handles what the robots said (heartbeats, state
changes, bids, reports), brings robots up to Execute, starts a unit when a
base part waits at the infeed and a fixture is free, auctions every ready
operation to the capable robots that reach its stations (each bids its finish
time; the earliest wins), and retires finished units at the end of the
outfeed. It never moves a joint: the world acts, the robots move.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec, Output, RecipeSpec, RobotSpec, StationKind
from bus.enums import OpStatus, PackMLCommand, PackMLState, Skill, WorldEventKind
from bus.mailbox import Mailbox
from bus.messages import (
    Award,
    Bid,
    Command,
    CommandReply,
    Commission,
    CommissionCheck,
    ControlRequest,
    Envelope,
    Heartbeat,
    Message,
    OpReport,
    OpStarted,
    ReportAck,
    Revoke,
    StateChanged,
    Tick,
    WorldAct,
    WorldEvent,
    WorldSense,
)
from bus.participant import Outbox
from supervisor import recovery
from supervisor.auction import account, close_auctions, open_auctions
from supervisor.builds import Builds
from supervisor.control import COMMAND_RETRY_NS, ControlDesk
from supervisor.faultstats import FaultTracker
from supervisor.inspection import judge
from supervisor.journal import EventLog
from supervisor.kpis import NS, Kpis, RobotStats
from supervisor.ledger import Ledger, LedgerError
from supervisor.plan import RETRY_NS, Op, OpState, Unit, finished, make_unit, refresh
from supervisor.recovery import Rests
from supervisor.reliability import add_figures
from supervisor.store import Journal, snapshot
from supervisor.store import restore as restore_state
from supervisor.watch import Watch

log = logging.getLogger(__name__)

STALE_NS = NS // 2
"""A sensor silent for longer than this is stale (readings come every tick)."""


@dataclasses.dataclass(slots=True)
class RobotView:
    """What the supervisor knows about one robot."""

    spec: RobotSpec
    state: PackMLState | None = None
    alive: bool = False
    last_seen_ns: int = 0
    ops: list[str] = dataclasses.field(default_factory=list)
    pending_cmd: str = ""
    pending_since_ns: int = 0
    pending_command: PackMLCommand | None = None
    manual: bool = False
    """An operator stopped or aborted it: the supervisor does not restart it."""
    clear_after_ns: int = 0
    """After an injected fault, the supervisor clears it no earlier than this."""
    reported_op: str = ""
    """The operation its last heartbeat said it was running."""


class Supervisor:
    """The cell's planner and bookkeeper; a ``bus.Participant``."""

    role = "supervisor"

    def __init__(
        self,
        cell: CellSpec,
        *,
        seed: int = 0,
        out_dir: Path | None = None,
        name: str = "supervisor",
        restore: bool = False,
    ) -> None:
        """A supervisor for ``cell``; with ``restore`` it carries on from ``out_dir``'s journal."""
        self.cell = cell
        self.name = name
        self.seed = seed
        self.out_dir = out_dir
        self.stations = cell.stations()
        self.ledger = Ledger()
        self.kpis = Kpis([r.name for r in cell.robots])
        self.journal = Journal(out_dir / "journal.sqlite") if out_dir else None
        saved = self.journal.load() if (restore and self.journal) else None
        history = self.journal.lines() if (saved and self.journal) else None
        if self.journal is not None and saved is None:
            self.journal.reset()
        self.faults = FaultTracker(r.name for r in cell.robots)
        """Faults, outages and robot timelines from the event log (rebuilt from its history)."""
        self.events = EventLog(
            out_dir / "events.jsonl" if out_dir else None,
            lines=history,
            observers=(self.faults.feed,),
        )
        self.robots = {r.name: RobotView(r) for r in cell.robots}
        self.watch = Watch(cell, self.events)
        self.units: dict[str, Unit] = {}
        self.ops: dict[str, Op] = {}
        self.bids: dict[str, list[tuple[int, str]]] = {}
        self.busy_stations: dict[str, str] = {}
        self.sensors: dict[str, str] = {}
        self.result: dict[str, Any] = {}
        self.counters = {
            "unknown_part_events": 0,
            "unexpected_messages": 0,
            "stale_bids": 0,
            "stale_reports": 0,
            "awards_resent": 0,
        }
        self.now = 0
        self.tick = 0
        self.bus_counters: dict[str, int] = {}
        """The cell socket's counts of refused, late and missing messages."""
        self.cmd_seq = 0
        self._retire: list[str] = []
        self.desk = ControlDesk(self)
        self.kpi_second = -1
        self.builds = Builds(cell)
        """Mount points, serials and genealogy of the robots this cell builds."""
        self._commission: list[Commission] = []
        self.intakes = {r.base: self._intake_station(r) for r in cell.recipes}
        """Each recipe's base kind -> the infeed its base parts arrive on."""
        self.outfeeds = sorted(c.name for c in cell.conveyors if c.role is StationKind.OUTFEED)
        self.sensor_seen: dict[str, int] = {}
        """When each sensor last reported (a blacked-out sensor reports nothing)."""
        self.stale: set[str] = set()
        """Sensors silent for longer than ``STALE_NS``: their stations are held."""
        self.fastened: set[str] = set()
        """Units the world reported fastened (to settle operations after a restart)."""
        self.rests = Rests()
        """How loose parts came to rest, to judge whether a dropped one can be picked up."""
        self.resync_at = -1
        """After a restart: when to settle the operations robots finished while it was away."""
        if saved is not None:
            tick, t_ns, state = saved
            restore_state(self, state)
            self.restored_from = (tick, t_ns)
            self.resync_at = 0
            # units shipped just before the crash may still be in the world: retire them again
            self._retire = [
                u.unit_id for u in self.units.values() if u.finished_ns >= t_ns - 2 * NS
            ]

    # ------------------------------------------------------------------ loop

    def step(self, tick: Tick, inbox: list[Envelope], out: Outbox) -> Message | None:
        """One control tick (see the module docstring for the order)."""
        self.now, self.tick = tick.t_ns, tick.tick
        if self.resync_at == 0:
            self._restored()
        if isinstance(out, Mailbox):
            self.bus_counters = {
                "malformed": out.malformed,
                "late": out.late,
                "missing": out.missing,
                # refused by key, stamped too far ahead, past the per-sender cap (peers untrusted)
                "refused": out.refused,
                "ahead": out.ahead,
                "flooded": out.flooded,
                "handshakes_failed": out.handshakes_failed,
            }
        requests: tuple[ControlRequest, ...] = ()
        if isinstance(tick.sense, WorldSense):
            for ev in tick.sense.events:
                self._world_event(ev)
            for check in tick.sense.checks:
                self._checked(check)
            for reading in tick.sense.sensors:
                self.sensors[reading.sensor] = reading.part
                self.sensor_seen[reading.sensor] = self.now
            self._watch_sensors()
            requests = tick.sense.requests
        for env in inbox:
            self.watch.heard(env.src)
            self._message(env.src, env.body, out)
        if isinstance(out, Mailbox):
            self.watch.socket_gaps(out.gaps, self.now)
        self.watch.links_ok(self.now)
        self.watch.conveyors(self.sensors, self.stale, self.now)
        for req in requests:
            self.desk.request(req, out)
        self.desk.resend(out)
        if 0 < self.resync_at <= self.now:
            self._resync(out)
        self._liveness()
        self._bring_up(out)
        self._start_units()
        self._forget_finished()
        self._ship()
        self._mounted()
        close_auctions(self, out)
        open_auctions(self, out)
        account(self)
        retire, self._retire = tuple(self._retire), []
        kpis = ""
        if self.now // NS != self.kpi_second:
            self.kpi_second = self.now // NS
            kpis = json.dumps(self.report(), sort_keys=True)
        lines = self.events.take_fresh()
        if self.journal is not None and lines:
            self.journal.commit(self.tick, self.now, lines, snapshot(self))
        commission, self._commission = tuple(self._commission), []
        return WorldAct(
            retire=retire,
            events=lines,
            kpis=kpis,
            replies=self.desk.take_replies(),
            commission=commission,
        )

    def finish(self, t_ns: int, reason: str) -> None:
        """Write ``kpis.json`` and close the event log."""
        self.now = t_ns
        self.events.write(t_ns, "run_end", reason=reason)
        self.result = self.report()
        if self.journal is not None:
            self.journal.commit(self.tick, t_ns, self.events.take_fresh(), snapshot(self))
        self.close()
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.result, indent=2, sort_keys=True)
            (self.out_dir / "kpis.json").write_text(text + "\n", encoding="utf-8")

    def close(self) -> None:
        """Close the event log and the journal without writing results (tests, aborted runs)."""
        self.events.close()
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def report(self) -> dict[str, Any]:
        """The KPIs and ledger totals now."""
        led = self.ledger
        extra = {
            "cell": self.cell.name,
            "seed": self.seed,
            "ledger": {
                "created": led.created,
                "shipped": led.shipped,
                "scrapped": led.scrapped,
                "consumed": led.consumed,
                "wip": led.wip,
                "by_location": led.by_location(),
            },
            "ledger_balanced": led.check(),
            "units_in_progress": sum(1 for u in self.units.values() if u.finished_ns < 0),
            "events": self.events.count,
            "orders": [dict(o) for o in self.desk.orders],
            "counters": dict(sorted(self.counters.items())),
            "bus": dict(sorted(self.bus_counters.items())),
        }
        if self.builds.active:
            extra.update(self.builds.report(len(self.cell.robots)))
        return add_figures(self.kpis.report(self.now, extra), self.faults, self.now)

    # ------------------------------------------------------------------ world

    def _world_event(self, ev: WorldEvent) -> None:
        self.rests.note(ev)
        fields = {"part": ev.part, "part_kind": ev.part_kind, "location": ev.location}
        try:
            if ev.kind is WorldEventKind.SPAWNED:
                self.ledger.create(ev.part, ev.part_kind, ev.location)
                self.watch.part_at(ev.part, ev.location, ev.t_ns)
                self.events.write(ev.t_ns, "part_created", **fields)
                return
            if ev.kind is WorldEventKind.FASTENED:
                self.fastened.add(ev.part)
            if ev.kind in (WorldEventKind.RETIRED, WorldEventKind.FASTENED):
                if ev.kind is WorldEventKind.RETIRED:
                    self.watch.part_gone(ev.part)
                self.events.write(ev.t_ns, f"part_{ev.kind.value}", **fields)
                return
            old = self.ledger.move(ev.part, ev.location)
            self.watch.part_at(ev.part, ev.location, ev.t_ns)
        except LedgerError as exc:
            self.counters["unknown_part_events"] += 1
            log.warning("supervisor: %s ignored: %s", ev.kind.value, exc)
            return
        if old != ev.location:
            self.events.write(ev.t_ns, "part_moved", src=old, dst=ev.location, **fields)

    # ------------------------------------------------------------------ robots

    def _message(self, src: str, body: Message, out: Outbox) -> None:
        robot = self.robots.get(src)
        if robot is None:
            self.counters["unexpected_messages"] += 1
            return
        if not robot.alive:
            robot.alive = True
            self.events.write(self.now, "robot_joined", robot=src)
        robot.last_seen_ns = self.now
        if isinstance(body, Heartbeat):
            robot.reported_op = body.op_id
            self.watch.heartbeat_gaps(src, body.gaps, self.now)
            if body.state is not robot.state:
                self._set_state(robot, body.state, "heartbeat")
            self._reconcile(robot, body, out)
        elif isinstance(body, StateChanged):
            self._set_state(robot, body.dst, body.reason)
        elif isinstance(body, CommandReply):
            if self.desk.reply(src, body):
                pass
            elif body.cmd_id == robot.pending_cmd:
                robot.pending_cmd, robot.pending_command = "", None
            if not body.accepted:
                self.events.write(self.now, "command_refused", robot=src, reason=body.reason)
        elif isinstance(body, Bid):
            bids = self.bids.get(body.op_id)
            if bids is None:
                self.counters["stale_bids"] += 1
            elif body.finish_ns >= 0:
                bids.append((body.finish_ns, src))
        elif isinstance(body, OpStarted):
            self._claim(robot, body.op_id, out)
        elif isinstance(body, OpReport):
            self._op_report(src, body, out)
        else:
            self.counters["unexpected_messages"] += 1

    def _claim(self, robot: RobotView, op_id: str, out: Outbox) -> None:
        """The robot says it is running ``op_id`` (``op_started``, or a heartbeat).

        Its own award: now running (the ``op_started`` may have been lost). Work
        the supervisor took back while it could not hear the robot, not yet
        started by another: the robot keeps it (``op_readopted``) under the
        current attempt, and an award to another robot is revoked.
        """
        op = self.ops.get(op_id)
        name = robot.spec.name
        if op is None:
            return
        if op.robot == name and op.state is OpState.AWARDED:
            op.state, op.started_ns = OpState.RUNNING, self.now
            self.kpis.op_started(name, self.now)
            self.events.write(self.now, "op_started", op=op.op_id, robot=name)
            return
        if op.robot == name:
            return
        if op.state is OpState.AWARDED:
            out.send(op.robot, Revoke(op.op_id, op.robot))
        elif op.state not in (OpState.READY, OpState.AUCTION):
            return
        self.release(op)
        op.robot, op.state, op.started_ns = name, OpState.RUNNING, self.now
        robot.ops.append(op.op_id)
        for st in op.stations:
            self.busy_stations.setdefault(st, op.op_id)
        self.kpis.op_started(name, self.now)
        out.send(name, Award(op.message(), name, op.attempts))
        self.events.write(self.now, "op_readopted", op=op.op_id, robot=name)

    def _reconcile(self, robot: RobotView, beat: Heartbeat, out: Outbox) -> None:
        """Compare a heartbeat with what the robot was given: re-send awards that never arrived."""
        name = robot.spec.name
        if beat.op_id:
            self._claim(robot, beat.op_id, out)
        for op_id in list(robot.ops):
            op = self.ops[op_id]
            if op.state is not OpState.AWARDED or op_id in beat.queued:
                continue
            if beat.t_ns > op.awarded_ns and beat.op_id != op_id:
                out.send(name, Award(op.message(), name, op.attempts))
                self.counters["awards_resent"] += 1

    def _set_state(self, robot: RobotView, state: PackMLState, reason: str) -> None:
        name = robot.spec.name
        old = robot.state
        robot.state = state
        self.kpis.state(name, state, self.now)
        src = old.value if old is not None else ""
        self.events.write(
            self.now, "robot_state", robot=name, src=src, dst=state.value, reason=reason
        )
        if state not in (PackMLState.EXECUTE, PackMLState.HOLDING, PackMLState.HELD):
            # a robot leaving production gives back what it has not started
            for op_id in list(robot.ops):
                op = self.ops[op_id]
                if op.state is OpState.AWARDED:
                    self.requeue(op, f"{name} left Execute ({state.value})")

    def _send_command(self, robot: RobotView, cmd: PackMLCommand, out: Outbox) -> None:
        self.cmd_seq += 1
        robot.pending_cmd = f"sup-{self.cmd_seq}"
        robot.pending_command = cmd
        robot.pending_since_ns = self.now
        out.send(robot.spec.name, Command(robot.pending_cmd, robot.spec.name, cmd))
        self.events.write(self.now, "command", robot=robot.spec.name, command=cmd.value)

    def _bring_up(self, out: Outbox) -> None:
        """Drive every live robot towards Execute (Reset, Start, Clear)."""
        wanted = {
            PackMLState.STOPPED: PackMLCommand.RESET,
            PackMLState.COMPLETE: PackMLCommand.RESET,
            PackMLState.IDLE: PackMLCommand.START,
            PackMLState.ABORTED: PackMLCommand.CLEAR,
        }
        for robot in self.robots.values():
            if not robot.alive or robot.state is None or robot.manual:
                continue
            if self.desk.in_flight(robot.spec.name):
                continue  # an operator's command is on its way: its answer decides
            if robot.state is PackMLState.ABORTED and self.now < robot.clear_after_ns:
                continue
            if robot.pending_cmd:
                if self.now - robot.pending_since_ns < COMMAND_RETRY_NS:
                    continue
                assert robot.pending_command is not None
                out.send(
                    robot.spec.name,
                    Command(robot.pending_cmd, robot.spec.name, robot.pending_command),
                )
                robot.pending_since_ns = self.now
                continue
            cmd = wanted.get(robot.state)
            if cmd is not None:
                self._send_command(robot, cmd, out)

    def _liveness(self) -> None:
        """A robot silent for 3 heartbeat intervals of sim time is lost; its work is re-auctioned."""
        limit = int(3 * self.cell.heartbeat_s * NS)
        for name, robot in self.robots.items():
            if robot.alive and self.now - robot.last_seen_ns > limit:
                robot.alive = False
                robot.pending_cmd = ""
                self.events.write(self.now, "robot_lost", robot=name)
                for op_id in list(robot.ops):
                    self.requeue(self.ops[op_id], f"{name} lost")

    # ------------------------------------------------------------------ units

    def add_robot(self, spec: RobotSpec) -> None:
        """Take a robot into the fleet (one built in the cell): it is planned for from now on
        and is brought up to Execute once it is heard."""
        name = spec.name
        self.robots.setdefault(name, RobotView(spec))
        self.kpis.robots.setdefault(name, RobotStats())
        self.faults.add_robot(name)
        self.watch.add_robot(name)

    @staticmethod
    def _intake_station(recipe: RecipeSpec) -> str:
        for op in recipe.ops:
            if op.part == recipe.base and op.dst == "fixture":
                return op.src
        return ""

    def _start_units(self) -> None:
        """Start a unit for each base part waiting at its intake, if a fixture is free.

        An arm (a recipe that builds robots) also needs a free mount point, kept for
        it from now on: an arm with nowhere to go is not started.
        """
        for recipe in self.cell.recipes:
            intake = self.intakes[recipe.base]
            if not intake or f"{intake}.end" in self.stale:
                continue  # hold the intake: its sensor is blind, a part there may not be what it says
            part = self.sensors.get(f"{intake}.end", "")
            if not part or part in self.units or part not in self.ledger.live:
                continue
            if self.ledger.kind(part) != recipe.base:
                continue
            busy = {u.fixture for u in self.units.values() if u.finished_ns < 0 and u.fixture}
            free = [f for f in self.cell.fixtures_for(recipe) if f not in busy]
            if not free:
                continue
            mount = overflow = ""
            if recipe.output is Output.COMMISSION:
                mount = self.builds.free_mount()
                if not mount and not recipe.overflow:
                    continue
                if mount:
                    self.builds.keep(mount, part)
                else:
                    overflow = recipe.overflow  # the bay is full: this arm ships
            unit = make_unit(recipe, part, free[0], self.now, mount=mount, overflow=overflow)
            self.units[part] = unit
            for op in unit.ops.values():
                self.ops[op.op_id] = op
            if mount or overflow:
                where = {"mount": mount} if mount else {"ships_to": overflow}
                self.events.write(self.now, "unit_started", unit=part, fixture=free[0], **where)
            else:
                self.events.write(self.now, "unit_started", unit=part, fixture=free[0])

    def _mounted(self) -> None:
        """Arms whose last step put them on their mount point become robots.

        Their parts are consumed in the ledger (with the genealogy: which robot did
        which step when) and the world is told to replace them by the robot.
        """
        for unit in self.units.values():
            if not unit.mount or unit.finished_ns >= 0 or unit.rejected or not finished(unit):
                continue
            if self.ledger.location(unit.unit_id) != f"mount:{unit.mount}":
                continue  # still settling onto the plate
            ids = self._unit_parts(unit.unit_id)
            parts = [[p, self.ledger.kind(p)] for p in ids]
            for p in ids:
                self.ledger.consume(p)
            unit.finished_ns = self.now
            built, spec = self.builds.commission(unit.unit_id, unit.mount, parts, self.now)
            self._commission.append(Commission(unit.unit_id, spec.name, unit.mount))
            self.kpis.commissioned(unit.created_ns, self.now)
            self.events.write(
                self.now,
                "arm_commissioned",
                unit=unit.unit_id,
                serial=built.serial,
                robot=spec.name,
                mount=unit.mount,
                model=built.model,
                parts=ids,
                ops=built.ops,
                cycle_s=round((self.now - unit.created_ns) / NS, 3),
            )

    def _checked(self, check: CommissionCheck) -> None:
        """A built robot's commissioning check came back: log the evidence; if it passed, the
        robot joins the fleet (its agent is being started)."""
        evidence = {
            "sweep_rad": check.sweep_rad,
            "tcp_mm": check.tcp_mm,
            "lift_mm": check.lift_mm,
            "detail": check.detail,
        }
        built = self.builds.checked(check.robot, evidence, check.passed and check.joining, self.now)
        if built is None:
            self.counters["unexpected_messages"] += 1
            return
        self.events.write(
            self.now,
            "robot_commission_check",
            robot=check.robot,
            serial=built.serial,
            passed=check.passed,
            **evidence,
        )
        if check.passed and check.joining:
            self.events.write(
                self.now, "robot_added", robot=check.robot, serial=built.serial, mount=built.mount
            )
            self.add_robot(self.cell.built_robot(check.robot, built.mount))

    def _watch_sensors(self) -> None:
        """Notice sensors that fell silent (and came back): plan on them only when fresh."""
        for sensor, seen in sorted(self.sensor_seen.items()):
            silent = self.now - seen > STALE_NS
            if silent and sensor not in self.stale:
                self.stale.add(sensor)
                self.events.write(self.now, "sensor_stale", sensor=sensor, last_ns=seen)
            elif not silent and sensor in self.stale:
                self.stale.discard(sensor)
                self.events.write(self.now, "sensor_restored", sensor=sensor)

    def _forget_finished(self) -> None:
        """Drop units finished over 10 s ago: the journal's snapshot stays the size of the WIP.

        (The ledger keeps their parts' fate; the KPIs keep their cycle times.)
        """
        old = [u for u in self.units.values() if 0 <= u.finished_ns < self.now - 10 * NS]
        for unit in old:
            del self.units[unit.unit_id]
            for op in unit.ops.values():
                self.ops.pop(op.op_id, None)
            self.fastened.discard(unit.unit_id)

    def _unit_parts(self, unit_id: str) -> list[str]:
        return [unit_id, *self.ledger.at(f"unit:{unit_id}")]

    def _ship(self) -> None:
        """Retire finished units that reached the end of an outfeed."""
        for conveyor in self.outfeeds:
            if f"{conveyor}.end" in self.stale:
                continue  # units wait at the stop until the sensor sees them again
            part = self.sensors.get(f"{conveyor}.end", "")
            unit = self.units.get(part)
            if unit is None and part in self.ledger.live and part not in self._retire:
                # not a unit at all: a part that rode out on another; reject it
                self.ledger.scrap(part)
                self._retire.append(part)
                self.events.write(
                    self.now, "part_scrapped", part=part, reason=f"stray on {conveyor}"
                )
                continue
            if unit is None or unit.finished_ns >= 0 or not finished(unit):
                continue
            if part not in self.ledger.live:
                continue
            parts = self._unit_parts(part)
            for p in parts:
                if unit.rejected:
                    self.ledger.scrap(p)
                else:
                    self.ledger.ship(p)
            unit.finished_ns = self.now
            if unit.rejected:
                self.kpis.units_scrapped += 1
                self.events.write(
                    self.now, "unit_scrapped", unit=part, parts=parts, reason=unit.reason
                )
            else:
                self.kpis.shipped(unit.created_ns, self.now)
                self.desk.shipped()
                cycle = round((self.now - unit.created_ns) / NS, 3)
                self.events.write(self.now, "unit_shipped", unit=part, parts=parts, cycle_s=cycle)
            self._retire.append(part)

    def _scrap_unit(self, unit: Unit, reason: str) -> None:
        """A unit that cannot be finished: scrap its parts, cancel its steps, free its fixture."""
        parts = [p for p in self._unit_parts(unit.unit_id) if p in self.ledger.live]
        for p in parts:
            self.ledger.scrap(p)
        for op in unit.ops.values():
            if op.state not in (OpState.DONE, OpState.CANCELLED):
                self.release(op)
                op.state = OpState.CANCELLED
        unit.finished_ns = self.now
        unit.rejected, unit.reason = True, reason
        self.builds.free(unit.unit_id)
        self.kpis.units_scrapped += 1
        self.events.write(self.now, "unit_scrapped", unit=unit.unit_id, parts=parts, reason=reason)
        self._retire.append(unit.unit_id)

    # ------------------------------------------------------------------ operations

    def _op_report(self, src: str, rep: OpReport, out: Outbox) -> None:
        """A robot ended an operation: settle it, once.

        Every report is acknowledged (the robot re-sends it until then). One
        from an earlier attempt is stale, with one exception: work reported
        done while the supervisor had taken it back (it could not hear the
        robot) and not yet given it to anyone who started it: it is done, so
        it is settled and the new award revoked, never done twice.
        """
        out.send(src, ReportAck(rep.op_id, src, rep.attempt))
        op = self.ops.get(rep.op_id)
        if op is None or op.state in (OpState.DONE, OpState.CANCELLED, OpState.WAITING):
            self.counters["stale_reports"] += 1
            return
        current = (
            op.robot == src
            and op.state in (OpState.AWARDED, OpState.RUNNING)
            and rep.attempt == op.attempts
        )
        if not current:
            unstarted = op.state in (OpState.READY, OpState.AUCTION) or (
                op.state is OpState.AWARDED and op.robot != src
            )
            if rep.status is not OpStatus.DONE or not unstarted:
                self.counters["stale_reports"] += 1
                return
            if op.state is OpState.AWARDED:
                out.send(op.robot, Revoke(op.op_id, op.robot))
            self.release(op)
            op.robot = src
            self.events.write(self.now, "op_late_report", op=op.op_id, robot=src)
        ok = rep.status is OpStatus.DONE
        if ok and op.started_ns >= 0:
            step = f"{op.spec.name}@{','.join(op.stations)}"
            self.watch.op_time(src, op.op_id, step, self.now - op.started_ns, self.now)
        self.kpis.op_ended(src, self.now, ok=ok)
        self.events.write(
            self.now, f"op_{rep.status.value}", op=op.op_id, robot=src, detail=rep.detail
        )
        if not ok:
            self.requeue(op, rep.detail or rep.status.value)
            return
        self.builds.note(op.unit, op.spec.name, src, self.now)
        unit = self.units[op.unit]
        if op.spec.skill is Skill.INSPECT:
            self._judge(unit, rep)
        self.complete(op)
        if unit.rejected and unit.mount:
            # an arm that failed its test is not mounted: it is scrapped, its mount freed
            self._scrap_unit(unit, unit.reason)

    def complete(self, op: Op) -> None:
        """``op`` is done: free its stations and wake what comes after it."""
        self.release(op)
        op.state = OpState.DONE
        for woke in refresh(self.units[op.unit]):
            self.events.write(self.now, "op_ready", op=woke.op_id)

    # ------------------------------------------------------------------ restart

    def _restored(self) -> None:
        """First tick after a restart: give robots time to be heard, say what came back."""
        tick, t_ns = self.restored_from
        for robot in self.robots.values():
            robot.last_seen_ns = self.now
            robot.pending_cmd, robot.pending_command = "", None
        self.resync_at = self.now + int(2 * self.cell.heartbeat_s * NS)
        for part, record in sorted(self.ledger.live.items()):
            self.watch.part_at(part, record.location, self.now)  # belts are watched again
        led = self.ledger
        self.events.write(
            self.now,
            "supervisor_restored",
            from_tick=tick,
            from_t_ns=t_ns,
            ledger={p: r.location for p, r in sorted(led.live.items())},
            created=led.created,
            shipped=led.shipped,
            scrapped=led.scrapped,
            open_ops={
                o.op_id: [o.state.value, o.robot]
                for o in self.ops.values()
                if o.state not in (OpState.DONE, OpState.CANCELLED, OpState.WAITING)
            },
        )

    def _resync(self, out: Outbox) -> None:
        """Settle operations whose reports were lost while the supervisor was away."""
        self.resync_at = -1
        for op in list(self.ops.values()):
            if op.state not in (OpState.AWARDED, OpState.RUNNING):
                continue
            robot = self.robots.get(op.robot)
            if robot is not None and robot.alive and robot.reported_op == op.op_id:
                continue  # still running: its report will come
            if self.looks_done(op):
                self.events.write(self.now, "op_settled", op=op.op_id, robot=op.robot, how="done")
                self.complete(op)
            else:
                if robot is not None and op.state is OpState.AWARDED:
                    out.send(op.robot, Revoke(op.op_id, op.robot))
                self.requeue(op, "not running after a supervisor restart")

    def looks_done(self, op: Op) -> bool:
        """Whether the world shows ``op`` done (the part where it was to go, the unit fastened)."""
        if op.spec.skill is Skill.FASTEN:
            return op.unit in self.fastened
        if op.spec.skill is not Skill.PICK_PLACE or not op.part:
            return False
        where = self.ledger.location(op.part)
        if op.spec.part != op.base_kind:
            return where == f"unit:{op.unit}"
        return where in (
            f"fixture:{op.dst}",
            f"conveyor:{op.dst}",
            f"stand:{op.dst}",
            f"mount:{op.dst}",
            "shipped",
            "consumed",
        )

    def _judge(self, unit: Unit, rep: OpReport) -> None:
        """Compare what the camera saw with what the recipe puts on the unit (``inspection``)."""
        verdict = judge(
            self.cell.recipe_for(unit.base_kind or self.cell.recipe.base), rep.inspection
        )
        if not verdict.ok:
            unit.rejected, unit.reason = True, verdict.reason
        self.events.write(self.now, "inspected", unit=unit.unit_id, **verdict.fields)

    def release(self, op: Op) -> None:
        for st in op.stations:
            if self.busy_stations.get(st) == op.op_id:
                del self.busy_stations[st]
        if op.robot:
            robot = self.robots[op.robot]
            if op.op_id in robot.ops:
                robot.ops.remove(op.op_id)
        self.bids.pop(op.op_id, None)

    def requeue(self, op: Op, reason: str) -> None:
        """Give an operation back to the auction.

        ``supervisor.recovery`` decides what becomes of its part: a part that
        fell is picked up again or scrapped once the world says where it came
        to rest (before the operation is auctioned again).
        """
        self.release(op)
        op.robot = ""
        op.attempts += 1
        op.state = OpState.READY
        op.not_before_ns = self.now + RETRY_NS
        self.events.write(self.now, "op_requeued", op=op.op_id, reason=reason, attempts=op.attempts)
        recovery.requeued(self, op)
        where = self.ledger.location(op.part) if op.part in self.ledger.live else ""
        lost = self.desk.lost_part(where)
        if lost:
            recovery.scrap(self, op, lost, fell=False)  # held by a robot failed for good
