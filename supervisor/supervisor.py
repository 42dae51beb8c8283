"""The cell supervisor: wires the components that own its state and runs the tick.

Each tick it reads what the world reports (parts spawned, grasped, settled,
arrived; the sensors), handles what the robots said (heartbeats, state
changes, bids, reports), brings robots up to Execute, starts a unit when a
base part waits at the infeed and a fixture is free, closes the calls for
bids that are over and offers every ready operation to the allocation
policy (``supervisor.dispatch``), and retires finished units at the end of
the outfeed. It never moves a joint: the world acts, the robots move.

State has one owner each (``docs/architecture.md``): the ``Ledger`` (parts),
``Units`` (units and operations), ``Assignments`` (calls, stations, queues),
the ``Fleet`` (robots), ``Sensors``, ``Rests``, ``Builds``, ``Kpis`` and the
``ControlDesk`` (orders); each snapshots and restores itself, and the
``Journal`` only composes them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec, RobotSpec
from bus.enums import PackMLState, WorldEventKind
from bus.messages import (
    Bid,
    CommandReply,
    ControlRequest,
    Envelope,
    Heartbeat,
    Message,
    ModeChanged,
    OpReport,
    OpStarted,
    StateChanged,
    Tick,
    WorldAct,
    WorldEvent,
    WorldSense,
)
from bus.participant import Outbox
from bus.simtime import NS
from supervisor.allocation import make_policy
from supervisor.assignments import Assignments
from supervisor.belts import belt_times
from supervisor.bottleneck import analyse
from supervisor.builds import Builds
from supervisor.checks import checked
from supervisor.control import ControlDesk
from supervisor.dispatch import Dispatcher
from supervisor.errors import LedgerError
from supervisor.eventlog import EventLog
from supervisor.faultstats import FaultTracker
from supervisor.fleet import Fleet, RobotView, failed_for_good
from supervisor.flow import Flow
from supervisor.health import Health
from supervisor.journal import Journal, Snapshots
from supervisor.kpis import Counters, Kpis, RobotStats, link_counters
from supervisor.ledger import Ledger
from supervisor.lookahead import deadlines, next_wake
from supervisor.maintenance import Maintenance
from supervisor.optimize import Optimizer
from supervisor.plan import Op, OpState
from supervisor.reliability import add_figures
from supervisor.rests import Rests
from supervisor.sensors import Sensors
from supervisor.units import Units
from supervisor.view import CellView, SimTime
from supervisor.watch import Watch
from supervisor.work import Work

log = logging.getLogger(__name__)

COUNTERS = (
    "unknown_part_events",
    "unexpected_messages",
    "stale_bids",
    "stale_reports",
    "awards_resent",
)
"""What the supervisor counts and refuses, in ``kpis.json``'s ``counters``."""


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
        policy: str = "",
    ) -> None:
        """A supervisor for ``cell``; with ``restore`` it carries on from ``out_dir``'s journal.

        ``policy`` names the allocation policy (``supervisor.allocation``); "" takes the
        cell file's.
        """
        self.cell = cell
        self.name = name
        self.seed = seed
        self.out_dir = out_dir
        self.time = SimTime()
        self.journal = Journal(out_dir / "journal.sqlite") if out_dir else None
        saved = self.journal.load() if (restore and self.journal) else None
        history = self.journal.lines() if (saved and self.journal) else None
        if self.journal is not None and saved is None:
            self.journal.reset()
        self.faults = FaultTracker(r.name for r in cell.robots)
        """Faults, outages and robot timelines from the event log (rebuilt from its history)."""
        self.units = Units(cell)
        self.optimizer = Optimizer(
            cell, self.units.ops.get, lambda: self.view, policy or cell.policy
        )
        """Self-optimization: learned operation times acted on (``supervisor.optimize``)."""
        self.health = Health(
            (r.name for r in cell.robots),
            op_of=lambda op: self.units.ops.get(op),
            jammed=lambda: self.watch.jammed,
            false_reject=max(r.false_reject for r in cell.recipes),
            belts=belt_times(cell),
        )
        """Self-diagnosis: drift in tracking errors, times, carries, transits and defects."""
        self.events = EventLog(
            out_dir / "events.jsonl" if out_dir else None,
            lines=history,
            observers=(self.faults.feed, self.health.feed, self.optimizer.feed),
        )
        self.counters = Counters(dict.fromkeys(COUNTERS, 0))
        self.ledger = Ledger()
        self.kpis = Kpis([r.name for r in cell.robots], fidelity=cell.fidelity)
        self.fleet = Fleet(list(cell.robots), self.events)
        self.watch = Watch(cell, self.events)
        self.assignments = Assignments()
        self.sensors = Sensors(self.events)
        self.rests = Rests()
        """How loose parts came to rest, to judge whether a dropped one can be picked up."""
        self.builds = Builds(cell)
        """Mount points, serials and genealogy of the robots this cell builds."""
        self.desk = ControlDesk(
            self.fleet,
            self.events,
            self.time,
            tick_ns=cell.tick_ns,
            product=cell.recipe.product,
            state_heard=self._set_state,
        )
        self.view = CellView(
            cell,
            self.time,
            ledger=self.ledger,
            units=self.units,
            assignments=self.assignments,
            fleet=self.fleet,
            rests=self.rests,
            jammed=self.watch.jammed,
            learned=self.optimizer.reader(),
        )
        self.work = Work(
            cell,
            self.time,
            self.view,
            units=self.units,
            assignments=self.assignments,
            fleet=self.fleet,
            ledger=self.ledger,
            kpis=self.kpis,
            builds=self.builds,
            events=self.events,
            watch=self.watch,
            counters=self.counters,
            lost_part=self.desk.lost_part,
        )
        self.dispatch = Dispatcher(
            make_policy(policy or cell.policy),
            self.view,
            self.work,
            units=self.units,
            assignments=self.assignments,
            fleet=self.fleet,
            kpis=self.kpis,
            events=self.events,
            tick_ns=cell.tick_ns,
        )
        self.flow = Flow(
            cell,
            self.time,
            self.work,
            sensors=self.sensors,
            ledger=self.ledger,
            units=self.units,
            builds=self.builds,
            kpis=self.kpis,
            events=self.events,
            shipped=self.desk.shipped,
        )
        self.maintenance = Maintenance(
            cell,
            fleet=self.fleet,
            assignments=self.assignments,
            units=self.units,
            work=self.work,
            health=self.health,
            creeps=self.desk.creeps,
            events=self.events,
        )
        """Acting on diagnoses: a wearing robot taken out, maintained and brought back."""
        self.snapshots = Snapshots(
            builds=self.builds,
            ledger=self.ledger,
            units=self.units,
            assignments=self.assignments,
            fleet=self.fleet,
            kpis=self.kpis,
            sensors=self.sensors,
            rests=self.rests,
            desk=self.desk,
            health=self.health,
            maintenance=self.maintenance,
            optimizer=self.optimizer,
            dispatch=self.dispatch,
            counters=self.counters,
            events=self.events,
        )
        """Every component the journal keeps, by name."""
        self.result: dict[str, Any] = {}
        self.bus_counters: dict[str, int] = {}
        """The cell socket's counts of refused, late and missing messages."""
        self.resync_at = -1
        """After a restart: when to settle the operations robots finished while it was away."""
        self.restored_from = (0, 0)
        if saved is not None:
            self._restore(*saved)

    @property
    def robots(self) -> dict[str, RobotView]:
        """Every robot's view, by name (the fleet's)."""
        return self.fleet.views

    @property
    def ops(self) -> dict[str, Op]:
        """Every operation followed, by id (the units')."""
        return self.units.ops

    @property
    def policy(self) -> str:
        """The allocation policy's name."""
        return self.dispatch.policy.name

    # ------------------------------------------------------------------ loop

    def step(self, tick: Tick, inbox: list[Envelope], out: Outbox) -> Message | None:
        """One control tick (see the module docstring for the order)."""
        self.time.ns, self.time.tick = tick.t_ns, tick.tick
        now = tick.t_ns
        if self.resync_at == 0:
            self._restored()
        self.bus_counters = link_counters(out)
        requests: tuple[ControlRequest, ...] = ()
        if isinstance(tick.sense, WorldSense):
            for ev in tick.sense.events:
                self._world_event(ev)
            for check in tick.sense.checks:
                built = (self.cell, self.builds, self.events, self.counters)
                if spec := checked(check, now, *built):
                    self.add_robot(spec)
            for reading in tick.sense.sensors:
                self.sensors.read(reading, now)
            for quiet in tick.sense.quiet:
                self.sensors.quiet(quiet.sensor, quiet.last_ns)
            self.health.tracking(tick.sense.tracking, now)
            self.sensors.watch(now)
            requests = tick.sense.requests
        for env in inbox:
            self.watch.heard(env.src)
            self._message(env.src, env.body, out)
        self.watch.socket_gaps(out.gaps, now)
        self.watch.links_ok(now)
        before = self.cell.tick_at(tick.tick - 1)
        self.watch.conveyors(self.sensors.parts, self.sensors.stale, now, before)
        for req in requests:
            self.desk.request(req, out)
        self.desk.resend(out)
        if 0 < self.resync_at <= now:
            self.resync_at = -1
            self.work.resync(out)
        for robot in self.fleet.lost(now, self.cell.heartbeat_s):
            self.work.lost(robot)
        self.fleet.bring_up(out, now, self.desk.in_flight)
        self.flow.start()
        self.units.forget_finished(now)
        self.flow.ship()
        self.flow.mounted()
        self.optimizer.watch(now, self.events)
        self.dispatch.close(out)
        self.dispatch.open(out)
        self.dispatch.account()
        retire, self.work.retire = tuple(self.work.retire), []
        self.maintenance.step(self.health.judge(self.events, now), out, now)
        self.optimizer.step(out, now, self.events)
        kpis = ""
        if self.kpis.due(now):
            kpis = json.dumps(self.report(), sort_keys=True)
        lines = self.events.take_fresh()
        if self.journal is not None and lines:
            self.journal.save(self.time.tick, now, lines, self.snapshots)
        commission, self.flow.commission = tuple(self.flow.commission), []
        return WorldAct(
            retire=retire,
            events=lines,
            kpis=kpis,
            replies=self.desk.take_replies(),
            commission=commission,
            maintain=self.maintenance.take_maintain(),
        )

    def wake(self) -> int:
        """When the supervisor must be ticked again for a timer of its own
        (``supervisor.lookahead``); messages and world news tick it besides."""
        now, parts = self.time.ns, (self.units, self.fleet, self.desk, self.sensors, self.watch)
        times = (*deadlines(now, self.cell, *parts, self.resync_at), *self.maintenance.deadlines())
        return next_wake(now, self.cell.tick_ns, times)

    def finish(self, t_ns: int, reason: str) -> None:
        """Write ``kpis.json`` and close the event log."""
        # the last control tick before the end, ticked or not (a resume goes on after it)
        self.time.ns = t_ns
        self.time.tick = max(self.time.tick, -(-t_ns * self.cell.control_hz // NS) - 1)
        self.events.write(t_ns, "run_end", reason=reason)
        self.result = self.report()
        if self.journal is not None:
            self.journal.save(self.time.tick, t_ns, self.events.take_fresh(), self.snapshots)
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
        extra = {
            "cell": self.cell.name,
            "seed": self.seed,
            "ledger": self.ledger.report(),
            "ledger_balanced": self.ledger.check(),
            "units_in_progress": sum(1 for _ in self.units.open()),
            "events": self.events.count,
            "orders": [dict(o) for o in self.desk.orders],
            "counters": dict(sorted(self.counters.items())),
            "bus": dict(sorted(self.bus_counters.items())),
            "health": self.health.report(),
            "maintenance": self.maintenance.report(),
            "optimize": self.optimizer.report(),
        }
        if self.builds.active:
            extra.update(self.builds.report(len(self.cell.robots)))
        out = add_figures(self.kpis.report(self.time.ns, extra), self.faults, self.time.ns)
        up = [name for name, view in self.fleet.views.items() if not failed_for_good(view)]
        rate = float(out.get("throughput_per_hour") or 0.0)
        paces = self.optimizer.times.paces()
        out["bottleneck"] = analyse(self.cell, self.health.op_times(), up, rate, paces)
        return out

    # ------------------------------------------------------------------ the journal

    def _restore(self, tick: int, t_ns: int, state: dict[str, Any]) -> None:
        """Carry on from a journal's state (committed at ``tick``, ``t_ns``)."""
        self.builds.restore(state["builds"])
        for spec in self.builds.fleet():
            self.add_robot(spec)  # built robots first: the fleet and the KPIs restore them too
        self.snapshots.restore(state, done=("builds",))
        self.restored_from = (tick, t_ns)
        self.resync_at = 0
        # units shipped just before the crash may still be in the world: retire them again
        self.work.retire = [
            u.unit_id for u in self.units.units.values() if u.finished_ns >= t_ns - 2 * NS
        ]

    def _restored(self) -> None:
        """First tick after a restart: give robots time to be heard, say what came back."""
        tick, t_ns = self.restored_from
        now = self.time.ns
        self.fleet.restarted(now)
        self.resync_at = now + int(2 * self.cell.heartbeat_s * NS)
        for part, record in sorted(self.ledger.live.items()):
            self.watch.part_at(part, record.location, now)  # belts are watched again
        led = self.ledger
        self.events.write(
            now,
            "supervisor_restored",
            from_tick=tick,
            from_t_ns=t_ns,
            ledger={p: r.location for p, r in sorted(led.live.items())},
            created=led.created,
            shipped=led.shipped,
            scrapped=led.scrapped,
            open_ops={
                o.op_id: [o.state.value, o.robot]
                for o in self.units.ops.values()
                if o.state not in (OpState.DONE, OpState.CANCELLED, OpState.WAITING)
            },
        )

    # ------------------------------------------------------------------ world

    def _world_event(self, ev: WorldEvent) -> None:
        self.rests.note(ev)
        self.health.world_event(ev)
        fields = {"part": ev.part, "part_kind": ev.part_kind, "location": ev.location}
        try:
            if ev.kind is WorldEventKind.SPAWNED:
                self.ledger.create(ev.part, ev.part_kind, ev.location)
                self.watch.part_at(ev.part, ev.location, ev.t_ns)
                self.events.write(ev.t_ns, "part_created", **fields)
                return
            if ev.kind is WorldEventKind.FASTENED:
                self.units.fastened.add(ev.part)
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

    def add_robot(self, spec: RobotSpec) -> None:
        """Take a robot into the fleet (one built in the cell): it is planned for from now on
        and is brought up to Execute once it is heard."""
        name = spec.name
        self.fleet.add(spec)
        self.kpis.robots.setdefault(name, RobotStats())
        self.faults.add_robot(name)
        self.watch.add_robot(name)
        self.health.add_robot(name)

    # ------------------------------------------------------------------ robots

    def _message(self, src: str, body: Message, out: Outbox) -> None:
        robot = self.fleet.views.get(src)
        if robot is None:
            self.counters["unexpected_messages"] += 1
            return
        self.fleet.heard(robot, self.time.ns)
        if isinstance(body, Heartbeat):
            robot.reported_op = body.op_id
            self.watch.heartbeat_gaps(src, body.gaps, self.time.ns)
            if body.state is not robot.state:
                self._set_state(robot, body.state, "heartbeat")
            self.fleet.mode_heard(robot, body.mode, self.time.ns, "heartbeat")
            self.work.reconcile(robot, body, out)
        elif isinstance(body, StateChanged):
            self._set_state(robot, body.dst, body.reason)
        elif isinstance(body, ModeChanged):
            self.fleet.mode_heard(robot, body.dst, self.time.ns, body.reason)
        elif isinstance(body, CommandReply):
            if not self.desk.reply(src, body):
                self.fleet.answered(robot, body.cmd_id)
            if not body.accepted:
                self.events.write(self.time.ns, "command_refused", robot=src, reason=body.reason)
        elif isinstance(body, Bid):
            if not self.assignments.bid(body.op_id, src, body.finish_ns):
                self.counters["stale_bids"] += 1
        elif isinstance(body, OpStarted):
            self.work.claim(robot, body.op_id, out)
        elif isinstance(body, OpReport):
            self.work.report(src, body, out)
        else:
            self.counters["unexpected_messages"] += 1

    def _set_state(self, robot: RobotView, state: PackMLState, reason: str) -> None:
        old = robot.state
        robot.state = state
        self.kpis.state(robot.name, state, self.time.ns)
        src = old.value if old is not None else ""
        self.events.write(
            self.time.ns, "robot_state", robot=robot.name, src=src, dst=state.value, reason=reason
        )
        self.work.left_production(robot, state)
