"""Settling operations: started, reported, completed, given back, scrapped.

``Work`` applies what the robots report and what the policies decide to the
components that own the state: operations change state through
``Assignments`` and ``Op.move``, parts through the ``Ledger``, and every
change is logged. It holds no state of its own but the parts to take out of
the world at the end of the tick (``retire``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bus.cellspec import CellSpec
from bus.enums import OpStatus, PackMLState, Skill
from bus.messages import Award, Heartbeat, OpReport, ReportAck, Revoke
from bus.participant import Outbox
from supervisor import recovery, rework
from supervisor.assignments import Assignments
from supervisor.builds import Builds
from supervisor.eventlog import EventLog
from supervisor.fleet import Fleet, RobotView
from supervisor.inspection import judge
from supervisor.kpis import Kpis
from supervisor.ledger import Ledger
from supervisor.plan import Op, OpState, Unit, refresh
from supervisor.units import Units
from supervisor.view import CellView, SimTime
from supervisor.watch import Watch

log = logging.getLogger(__name__)

SETTLED = (OpState.DONE, OpState.CANCELLED)
PRODUCTION = (PackMLState.EXECUTE, PackMLState.HOLDING, PackMLState.HELD)
"""States in which a robot keeps the work it was awarded."""


class Work:
    """Applies reports and decisions to operations, parts and units."""

    def __init__(
        self,
        cell: CellSpec,
        time: SimTime,
        view: CellView,
        *,
        units: Units,
        assignments: Assignments,
        fleet: Fleet,
        ledger: Ledger,
        kpis: Kpis,
        builds: Builds,
        events: EventLog,
        watch: Watch,
        counters: dict[str, int],
        lost_part: Callable[[str], str],
    ) -> None:
        self.cell = cell
        self.time = time
        self.view = view
        self.units = units
        self.assignments = assignments
        self.fleet = fleet
        self.ledger = ledger
        self.kpis = kpis
        self.builds = builds
        self.events = events
        self.watch = watch
        self.counters = counters
        self.lost_part = lost_part
        """Why a part at a location can never be used again ("" if it can): the control desk's."""
        self.retire: list[str] = []
        """Parts and units to take out of the world at the end of this tick."""

    # ------------------------------------------------------------------ robots say

    def claim(self, robot: RobotView, op_id: str, out: Outbox) -> None:
        """The robot says it is running ``op_id`` (``op_started``, or a heartbeat).

        Its own award: now running (the ``op_started`` may have been lost). Work
        the supervisor took back while it could not hear the robot, not yet
        started by another: the robot keeps it (``op_readopted``) under the
        current attempt, and an award to another robot is revoked.
        """
        op = self.units.ops.get(op_id)
        name, now = robot.name, self.time.ns
        if op is None:
            return
        if op.robot == name and op.state is OpState.AWARDED:
            self.assignments.start(op, now)
            self.kpis.op_started(name, now)
            self.events.write(now, "op_started", op=op.op_id, robot=name)
            return
        if op.robot == name:
            return
        if op.state is OpState.AWARDED:
            out.send(op.robot, Revoke(op.op_id, op.robot))
        elif op.state not in (OpState.READY, OpState.AUCTION):
            return
        self.assignments.claim(op, name, now)
        self.kpis.op_started(name, now)
        out.send(name, Award(op.message(), name, op.attempts))
        self.events.write(now, "op_readopted", op=op.op_id, robot=name)

    def reconcile(self, robot: RobotView, beat: Heartbeat, out: Outbox) -> None:
        """Compare a heartbeat with what the robot was given: re-send awards that never arrived."""
        name = robot.name
        if beat.op_id:
            self.claim(robot, beat.op_id, out)
        for op_id in self.assignments.queue(name):
            op = self.units.ops[op_id]
            if op.state is not OpState.AWARDED or op_id in beat.queued:
                continue
            if beat.t_ns > op.awarded_ns and beat.op_id != op_id:
                out.send(name, Award(op.message(), name, op.attempts))
                self.counters["awards_resent"] += 1

    def report(self, src: str, rep: OpReport, out: Outbox) -> None:
        """A robot ended an operation: settle it, once.

        Every report is acknowledged (the robot re-sends it until then). One
        from an earlier attempt is stale, with one exception: work reported
        done while the supervisor had taken it back (it could not hear the
        robot) and not yet given it to anyone who started it: it is done, so
        it is settled and the new award revoked, never done twice.
        """
        now = self.time.ns
        out.send(src, ReportAck(rep.op_id, src, rep.attempt))
        op = self.units.ops.get(rep.op_id)
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
            self.assignments.release(op)
            op.robot = src
            self.events.write(now, "op_late_report", op=op.op_id, robot=src)
        ok = rep.status is OpStatus.DONE
        if ok and op.started_ns >= 0:
            step = f"{op.spec.name}@{','.join(op.stations)}"
            self.watch.op_time(src, op.op_id, step, now - op.started_ns, now)
        self.kpis.op_ended(src, now, ok=ok)
        self.events.write(now, f"op_{rep.status.value}", op=op.op_id, robot=src, detail=rep.detail)
        if not ok:
            self.requeue(op, rep.detail or rep.status.value)
            return
        self.builds.note(op.unit, op.spec.name, src, now)
        unit = self.units.units[op.unit]
        if op.spec.skill is Skill.INSPECT:
            self._judge(unit, rep)
        self.complete(op)
        if unit.rejected and unit.mount:
            # an arm that failed its test is not mounted: it is scrapped, its mount freed
            self.scrap_unit(unit, unit.reason)

    def left_production(self, robot: RobotView, state: PackMLState) -> None:
        """A robot left production: it gives back what it has not started."""
        if state in PRODUCTION:
            return
        for op_id in self.assignments.queue(robot.name):
            op = self.units.ops[op_id]
            if op.state is OpState.AWARDED:
                self.requeue(op, f"{robot.name} left Execute ({state.value})")

    def lost(self, robot: RobotView) -> None:
        """A robot fell silent: all it held goes back to be allocated again."""
        for op_id in self.assignments.queue(robot.name):
            self.requeue(self.units.ops[op_id], f"{robot.name} lost")

    # ------------------------------------------------------------------ settling

    def complete(self, op: Op) -> None:
        """``op`` is done: free its stations and wake what comes after it."""
        self.assignments.release(op)
        op.move(OpState.DONE)
        for woke in refresh(self.units.units[op.unit]):
            self.events.write(self.time.ns, "op_ready", op=woke.op_id)

    def settle(self, op: Op, robot: str, how: str) -> None:
        """The world shows ``op`` done (``how``): complete it without anyone doing it again."""
        self.events.write(self.time.ns, "op_settled", op=op.op_id, robot=robot, how=how)
        self.complete(op)

    def requeue(self, op: Op, reason: str) -> None:
        """Give an operation back to be allocated again.

        The recovery policy then decides what becomes of its part: a built unit
        still in a gripper is scrapped; a part held by a robot that failed for
        good is written off; a part that fell is judged once the world says where
        it came to rest (before the operation is allocated again).
        """
        now = self.time.ns
        self.assignments.requeue(op, now)
        self.events.write(now, "op_requeued", op=op.op_id, reason=reason, attempts=op.attempts)
        op.pick = ()  # a recovery is decided afresh
        scrap = recovery.after_requeue(self.view, op)
        if scrap is not None:
            self.scrap(op, scrap)
        where = self.ledger.location(op.part) if op.part in self.ledger.live else ""
        lost = self.lost_part(where)
        if lost:
            self.scrap(op, recovery.Scrap(lost, fell=False))

    def scrap(self, op: Op, decision: recovery.Scrap) -> None:
        """Give up ``op``'s part: scrap it (its unit, if it is the unit's base) and take it out.

        The operation stays ready with no part, so the next part comes from the feeder.
        """
        unit = self.units.units[op.unit]
        why = f"fell: {decision.reason}" if decision.fell else decision.reason
        op.pick = ()
        if op.part == unit.unit_id:
            self.scrap_unit(unit, f"{op.part} {why}")
            return
        self.ledger.scrap(op.part)
        self.retire.append(op.part)
        self.events.write(self.time.ns, "part_scrapped", part=op.part, reason=why)
        op.part = ""

    def scrap_unit(self, unit: Unit, reason: str) -> None:
        """A unit that cannot be finished: scrap its parts, cancel its steps, free its fixture."""
        now = self.time.ns
        parts = [p for p in self.unit_parts(unit.unit_id) if p in self.ledger.live]
        for p in parts:
            self.ledger.scrap(p)
        for op in unit.ops.values():
            if op.state not in SETTLED:
                self.assignments.release(op)
                op.move(OpState.CANCELLED)
        unit.finished_ns = now
        unit.rejected, unit.reason = True, reason
        self.builds.free(unit.unit_id)
        self.kpis.units_scrapped += 1
        self.events.write(now, "unit_scrapped", unit=unit.unit_id, parts=parts, reason=reason)
        self.retire.append(unit.unit_id)

    def unit_parts(self, unit_id: str) -> list[str]:
        """The unit's base part and every part joined to it."""
        return [unit_id, *self.ledger.at(f"unit:{unit_id}")]

    def resync(self, out: Outbox) -> None:
        """After a restart: settle operations whose reports were lost while the supervisor was away."""
        for op in list(self.units.ops.values()):
            if op.state not in (OpState.AWARDED, OpState.RUNNING):
                continue
            robot = self.fleet.views.get(op.robot)
            if robot is not None and robot.alive and robot.reported_op == op.op_id:
                continue  # still running: its report will come
            if self.view.looks_done(op):
                self.settle(op, op.robot, "done")
            else:
                if robot is not None and op.state is OpState.AWARDED:
                    out.send(op.robot, Revoke(op.op_id, op.robot))
                self.requeue(op, "not running after a supervisor restart")

    def _judge(self, unit: Unit, rep: OpReport) -> None:
        """Compare what the camera saw with what the recipe puts on the unit (``inspection``)."""
        recipe = self.cell.recipe_for(unit.base_kind or self.cell.recipe.base)
        verdict = judge(recipe, rep.inspection)
        self.events.write(self.time.ns, "inspected", unit=unit.unit_id, **verdict.fields)
        steps = tuple(step for step, _ in verdict.defects)
        if not verdict.ok and rework.reworkable(recipe, unit, steps):
            redone = rework.redo(self.units, unit, steps)
            self.events.write(
                self.time.ns, "unit_rework", unit=unit.unit_id, steps=redone, reason=verdict.reason
            )
        elif not verdict.ok:
            unit.rejected, unit.reason = True, verdict.reason
