"""Each tick: the recovery and allocation policies decide, and their decisions are applied.

For every ready operation, in the order units started and steps come, the
recovery policy first says what becomes of a part that fell (``Wait``,
``AsIs``, ``Landed``, ``Recover``, ``Scrap``); an operation that may go on,
with its stations free, its belt not jammed and its part there, is offered
to the allocation policy, whose ``Call`` or ``Assign`` is applied at once,
so the next offer sees it; a ``Yield`` (the operation waits for another to use
a station first) is logged, once for each operation it waits for. Calls for
bids that are over are closed first. Both decide on a ``CellView``; only this module and ``Work`` change state.
"""

from __future__ import annotations

from typing import Any

from bus.enums import PackMLState, Skill
from bus.messages import Award, CallForBids
from bus.participant import Outbox
from supervisor import recovery
from supervisor.allocation import AllocationPolicy, Assign, Call, Unanswered, Yield
from supervisor.assignments import Assignments
from supervisor.eventlog import EventLog
from supervisor.fleet import Fleet
from supervisor.kpis import Kpis
from supervisor.plan import Op, OpState
from supervisor.units import Units
from supervisor.view import CellView
from supervisor.work import Work

YIELDS_KEPT = 64
"""Operations held back remembered at most before the ones gone are forgotten."""


class Dispatcher:
    """Runs the policies on the view and applies what they decide."""

    def __init__(
        self,
        policy: AllocationPolicy,
        view: CellView,
        work: Work,
        *,
        units: Units,
        assignments: Assignments,
        fleet: Fleet,
        kpis: Kpis,
        events: EventLog,
        tick_ns: int,
    ) -> None:
        self.policy = policy
        self.view = view
        self.work = work
        self.units = units
        self.assignments = assignments
        self.fleet = fleet
        self.kpis = kpis
        self.events = events
        self.tick_ns = tick_ns
        self._accounted: tuple[int, dict[str, str]] = (-1, {})
        """When idle time was last booked, and which robots were starved or blocked then."""
        self._yielded: dict[str, str] = {}
        """Operation held back -> the operation it yields its station to (logged once)."""

    def snapshot(self) -> dict[str, Any]:
        """What a restarted supervisor needs to go on as if never stopped: when idle time was
        last booked and why (the ticks it skipped are booked from it), and the waits already
        logged (so none is logged twice)."""
        last, idle = self._accounted
        return {"accounted": [last, dict(idle)], "yielded": dict(self._yielded)}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        last, idle = data["accounted"]
        self._accounted = (int(last), {str(k): str(v) for k, v in idle.items()})
        self._yielded = {str(k): str(v) for k, v in data["yielded"].items()}

    def close(self, out: Outbox) -> None:
        """Apply the policy's decisions on the calls for bids that are over."""
        for decision in self.policy.close(self.view):
            op = self.units.ops[decision.op_id]
            self.assignments.close(op.op_id)
            if isinstance(decision, Unanswered):
                self.assignments.unanswered(op, self.view.now)
                if op.pick:
                    op.pick = ()  # no robot would plan it: decided afresh, within MAX_RECOVERIES
                elif op.spec.part != op.base_kind and op.spec.skill is Skill.PICK_PLACE:
                    op.part = ""
                self.events.write(self.view.now, "auction_failed", op=op.op_id)
            else:
                self._award(op, decision, out)

    def open(self, out: Outbox) -> None:
        """Offer every operation that could start now to the allocation policy."""
        view = self.view
        for unit in self.units.units.values():
            if unit.finished_ns >= 0:
                continue
            for op in unit.ops.values():
                if op.state is not OpState.READY or view.now < op.not_before_ns:
                    continue
                if not self._recovered(op):
                    continue
                if view.busy(op.stations) or view.jammed(op.dst):
                    continue  # hold: a station is taken, or nothing goes onto a jammed belt
                if op.attempts and view.looks_done(op):
                    # taken back from a robot the supervisor could not hear, but the world
                    # shows it done: settle it rather than do it twice
                    self.work.settle(op, op.robot, "world")
                    continue
                part = view.material(op)
                if not part:
                    continue
                decision = self.policy.offer(view, op)
                if decision is None:
                    continue
                if isinstance(decision, Yield):
                    self._yield(op, decision)
                    continue
                if op.spec.skill is Skill.PICK_PLACE:
                    op.part = part
                if isinstance(decision, Call):
                    self._call(op, decision, out)
                else:
                    self._award(op, decision, out)

    def account(self) -> None:
        """Book starved and blocked time for robots idle in Execute.

        The tick just opened goes to what each robot is now; the ticks since the step
        before (the event clock skipped them: nothing changed meanwhile, or the
        supervisor would have been ticked) to what it was then.
        """
        now = self.view.now
        last, before = self._accounted
        skipped = max(0, now - last - self.tick_ns) if last >= 0 else 0
        for name, why in before.items():
            stats = self.kpis.robots.get(name)
            if stats is not None and skipped:
                if why == "blocked":
                    stats.blocked_ns += skipped
                else:
                    stats.starved_ns += skipped
        ready = [o for o in self.units.ops.values() if o.state is OpState.READY]
        idle: dict[str, str] = {}
        for robot in self.fleet:
            if not robot.alive or robot.state is not PackMLState.EXECUTE:
                continue
            if self.assignments.queue(robot.name):
                continue
            doable = [o for o in ready if self.view.able(robot, o)]
            stats = self.kpis.robots[robot.name]
            if any(self.view.busy(o.stations) for o in doable):
                stats.blocked_ns += self.tick_ns
                idle[robot.name] = "blocked"
            else:
                stats.starved_ns += self.tick_ns
                idle[robot.name] = "starved"
        self._accounted = (now, idle)

    def _recovered(self, op: Op) -> bool:
        """Apply the recovery policy's decision on ``op``; whether it may be allocated now."""
        decision = recovery.decide(self.view, op)
        now = self.view.now
        if isinstance(decision, recovery.Wait):
            return False
        if isinstance(decision, recovery.AsIs):
            if decision.at_station:
                op.pick = ()  # (back) where it is picked as usual
            return True
        if isinstance(decision, recovery.Landed):
            self.work.settle(op, "", "landed")
            return False
        if isinstance(decision, recovery.Scrap):
            self.work.scrap(op, decision)
            return False  # next tick: the next part from the feeder (or nothing: unit scrapped)
        op.pick = decision.pose
        op.recoveries += 1
        x, y, z = decision.pose[:3]
        self.events.write(
            now,
            "op_recovery",
            op=op.op_id,
            part=op.part,
            at=decision.at,
            pose=[round(x, 4), round(y, 4), round(z, 4)],
            tilt_deg=decision.tilt_deg,
            robots=list(decision.robots),
            recovery=op.recoveries,
        )
        return True

    def _call(self, op: Op, decision: Call, out: Outbox) -> None:
        self.assignments.call(op, self.view.tick)
        msg = CallForBids(op.message())
        for name in decision.robots:
            out.send(name, msg)
        robots = list(decision.robots)
        self.events.write(self.view.now, "auction", op=op.op_id, part=op.part, robots=robots)

    def _yield(self, op: Op, decision: Yield) -> None:
        """``op`` waits for another unit's operation to use a station first: logged once for
        each operation it yields to in a row (``station_yielded``)."""
        if self._yielded.get(op.op_id) == decision.to:
            return
        if len(self._yielded) > YIELDS_KEPT:
            self._yielded = {k: v for k, v in self._yielded.items() if k in self.units.ops}
        self._yielded[op.op_id] = decision.to
        d = decision
        wait = d.ready_in_s + d.to_s
        why = (
            f"{d.to} can start at {d.station} in {d.ready_in_s:.2f} s and holds it "
            f"{d.to_s:.2f} s ({d.to_robot}); {op.op_id} would hold it {d.held_s:.2f} s "
            f"({d.robot}): {op.op_id} waits {wait:.2f} s rather than {d.to} "
            f"{d.held_s - d.ready_in_s:.2f} s"
        )
        self.events.write(
            self.view.now,
            "station_yielded",
            op=op.op_id,
            robot=d.robot,
            station=d.station,
            to=d.to,
            to_robot=d.to_robot,
            reason=why,
            evidence={
                "held_s": round(d.held_s, 4),
                "to_s": round(d.to_s, 4),
                "ready_in_s": round(d.ready_in_s, 4),
            },
        )

    def _award(self, op: Op, decision: Assign, out: Outbox) -> None:
        robot = decision.robot
        self._yielded.pop(op.op_id, None)
        self.assignments.award(op, robot, self.view.now)
        out.send(robot, Award(op.message(), robot, op.attempts))
        self.events.write(
            self.view.now,
            "op_awarded",
            op=op.op_id,
            robot=robot,
            finish_ns=decision.finish_ns,
            bids=[list(b) for b in decision.bids],
        )
