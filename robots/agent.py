"""The robot agent: one robot's PackML machine, its bids and its skills, stepped by the clock.

``RobotAgent`` is a ``bus.participant.Participant``. Each tick it reads what
the world sensed, handles its inbox in order (commands, calls for bids,
awards, revokes), lets an acting state complete when its time is up, steps
the running skill and returns the ``RobotAct`` for the world. It talks only
to the supervisor ("supervisor" on the bus) and reads time only from the tick.

The agent never picks its own work: it prices what it is offered (a bid is
the sim time it would finish, from a real plan) and runs what it is awarded,
one operation at a time.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import random
from collections.abc import Mapping

from bus.cellspec import CellSpec, RobotSpec
from bus.enums import ExecStep, Grip, OpStatus, PackMLState, UnitMode
from bus.errors import ConfigError, PlanError
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    Command,
    CommandReply,
    Degrade,
    Envelope,
    Heartbeat,
    Message,
    ModeChanged,
    Operation,
    OpReport,
    OpStarted,
    PathSegment,
    ReportAck,
    Revoke,
    RobotAct,
    RobotSense,
    SetMode,
    StateChanged,
    Tick,
    Tune,
)
from bus.participant import Outbox
from bus.simtime import NS
from robots.errors import CommandRefused, SkillFailed
from robots.motion import Q, Trajectory
from robots.packml import PackML, Place
from robots.plans import IKPlanner, Planner
from robots.skills import Outcome, SkillContext, SkillRun, Want
from robots.timed import TimedPlanner

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
"""The supervisor's name on the cell bus."""

S = PackMLState

ACTING_S: Mapping[PackMLState, float] = {
    S.RESETTING: 0.3,
    S.STARTING: 0.2,
    S.COMPLETING: 0.3,
    S.HOLDING: 0.3,
    S.UNHOLDING: 0.2,
    S.SUSPENDING: 0.3,
    S.UNSUSPENDING: 0.2,
    S.STOPPING: 0.3,
    S.ABORTING: 0.2,
    S.CLEARING: 0.3,
}
"""Sim seconds each acting state takes before it completes (Resetting: at least, plus homing)."""

REPLY_MEMORY = 256
"""Command replies (and operation reports) remembered for idempotent retries (oldest first out)."""

ESTIMATES_KEPT = 32
"""Estimates remembered (a bid's, for the award that follows it)."""

UNACKED_MAX = 64
"""Operation reports kept for re-sending until the supervisor acknowledges them."""

Attempt = tuple[str, int]
"""An operation id and the award's attempt: the unit of work done once."""


@dataclasses.dataclass(slots=True)
class _Queued:
    """An awarded operation not started yet, with what it is expected to cost."""

    op: Operation
    est_ns: int
    end_q: Q
    attempt: int = 0


@dataclasses.dataclass(slots=True)
class _Running:
    """The operation being executed."""

    op: Operation
    run: SkillRun
    started_ns: int
    est_end_ns: int
    end_q: Q
    attempt: int = 0


class RobotAgent:
    """One robot of ``cell``, called ``name``: PackML, bids and skills.

    Pure constructor (no physics, no sockets): ``setup()`` builds the
    kinematic model; ``step()`` is driven by ``bus.run_participant``;
    ``shutdown()`` frees the model.
    """

    role = "robot"

    def __init__(self, cell: CellSpec, name: str, *, spec: RobotSpec | None = None) -> None:
        """``spec``: a robot built in the cell (not in its file), as ``CellSpec.built_robot``."""
        self.cell = cell
        self.name = name
        try:
            self.spec = spec if spec is not None else cell.robot(name)
        except KeyError:
            raise ConfigError(cell.source, "robots", f"no robot called {name!r}") from None
        self.kin: Planner = (
            TimedPlanner(cell, self.spec)
            if cell.fidelity == "events"
            else IKPlanner(cell, self.spec)
        )
        """How it plans: IK on its own model, or the calibration's times at events fidelity."""
        self.packml = PackML(on_change=self._changed, on_mode=self._mode_changed)
        self.now = 0
        """Sim time of the tick being stepped (ns)."""
        self.q_cmd: Q = self.kin.home
        """The joint target last sent to the world."""
        self.holding = ""
        """The part the world says is in the gripper."""
        self._sensed = False
        self._out: Outbox | None = None
        self._replies: collections.OrderedDict[str, CommandReply] = collections.OrderedDict()
        self._reports: collections.OrderedDict[Attempt, OpReport] = collections.OrderedDict()
        """Reports of work ended, by attempt: a re-sent award of it is answered, not redone."""
        self._unacked: collections.OrderedDict[Attempt, OpReport] = collections.OrderedDict()
        """Reports the supervisor has not acknowledged: re-sent with every heartbeat."""
        self._done: collections.OrderedDict[str, OpReport] = collections.OrderedDict()
        """The last report of each operation done, whatever its attempt."""
        self._gaps = 0
        self._slow: tuple[float, int] = (1.0, 0)
        """A slow_robot fault: (factor, until sim time)."""
        self._slow_seen = True
        """Whether its own estimates see the slowdown (not: a hidden slow_robot)."""
        self._scale = 1.0
        self.refused_tunes = 0
        """The speed scale self-optimization set (``tune``), within the cell file's limits."""
        self._queue: collections.deque[_Queued] = collections.deque()
        self._running: _Running | None = None
        self._acting_until = 0
        self._acting_motion: Trajectory | None = None
        self._grip = Grip.NONE
        self._next_heartbeat: int | None = None
        self._estimates: collections.OrderedDict[
            tuple[Operation, Q, float], tuple[int, Q] | PlanError
        ] = collections.OrderedDict()
        """Plans' durations and end poses by (operation, start pose, speed), newest last."""
        self._wake_ns = 0
        self._tick = -1
        """The last tick stepped."""
        self._changes = 0
        """State changes so far (a step that changed the state is stepped again next tick)."""
        self._path: tuple[Trajectory, int] | None = None
        """The motion last sent to the world, and its shift then."""
        self._paths = 0
        """Motions sent so far (each one's ``RobotAct.path_id``)."""

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        """Build the kinematic model (a private PyBullet client)."""
        self.kin.setup()

    def shutdown(self) -> None:
        """Free the kinematic model."""
        self.kin.close()

    def finish(self, t_ns: int, reason: str) -> None:
        """The run ended: log where the robot stood."""
        log.info("%s: run ended at %.3f s (%s) in %s", self.name, t_ns / NS, reason, self.state)

    @property
    def state(self) -> PackMLState:
        """The PackML state."""
        return self.packml.state

    @property
    def op_id(self) -> str:
        """The running operation ("" for none)."""
        return self._running.op.op_id if self._running is not None else ""

    @property
    def queued(self) -> tuple[str, ...]:
        """Awarded operations not started yet, in order."""
        return tuple(q.op.op_id for q in self._queue)

    # ------------------------------------------------------------ the tick

    def step(self, tick: Tick, inbox: list[Envelope], out: Outbox) -> RobotAct:
        """One control tick: sense, inbox in order, acting states, skill, heartbeat."""
        self.kin.setup()  # no-op once set up; a launcher that forgot setup() still works
        self.now = tick.t_ns
        self._out = out
        self._grip = Grip.NONE
        self._gaps = out.gaps.get(SUPERVISOR, 0)
        changes = self._changes
        self._caught_up(tick.tick)
        try:
            sense = tick.sense if isinstance(tick.sense, RobotSense) else None
            if sense is not None:
                if not self._sensed:
                    self.q_cmd = tuple(sense.q)
                    self._sensed = True
                self.holding = sense.holding
            for env in inbox:
                self._handle(env.body)
            self._complete_acting()
            want = self._advance(sense)
            self._heartbeat()
        finally:
            self._out = None
        if want.q is not None:
            self.q_cmd = want.q
        self._wake_ns = self._next_wake(want, changed=self._changes != changes)
        path_id, path, shift = self._motion()
        return RobotAct(
            robot=self.name,
            q=self.q_cmd,
            grip=want.grip if want.grip is not Grip.NONE else self._grip,
            observe=want.observe,
            fasten=want.fasten,
            inspect=want.inspect,
            state=self.state,
            step=self.packml.step,
            op_id=self.op_id,
            path_id=path_id,
            path=path,
            path_shift_ns=shift,
            aim=want.aim,
            mode=self.packml.mode,
        )

    def _caught_up(self, k: int) -> None:
        """Ticks went by without us (the event clock): the world moved the arm along the
        motion we sent, so the last target is that motion's pose at the end of the tick
        before this one, as if we had sent it ourselves; a skill plans on from there."""
        if self._path is None or k <= self._tick + 1:
            self._tick = k
            return
        self._tick = k
        traj = self._path[0]
        q = traj.at(self.cell.tick_at(k - 1) + self.cell.tick_ns)
        self.q_cmd = q
        if self._running is not None and self._running.run.ctx.motion is traj:
            self._running.run.ctx.q = q

    def wake(self) -> int:
        """When the last step says it must be stepped again (``bus.participant``)."""
        return self._wake_ns

    def _next_wake(self, want: Want, *, changed: bool) -> int:
        """The earliest sim time the agent must act again unless a message or a change of
        its gripper's hold reaches it first: the end of an acting state, the running skill's
        next point (a trajectory's end, a grasp's deadline), the next heartbeat; the next
        tick whenever the state just changed or work waits to start."""
        nxt = self.now + self.cell.tick_ns
        if changed or self._next_heartbeat is None:
            return nxt
        if self.packml.acting:
            wake = self._acting_until
        elif self.state is not S.EXECUTE:
            wake = self._next_heartbeat
        elif self._running is None:
            wake = nxt if self._queue else self._next_heartbeat
        elif self._running.run.paused:
            wake = self._next_heartbeat
        else:
            wake = want.wake_ns or nxt
        return max(nxt, min(wake, self._next_heartbeat))

    def _motion(self) -> tuple[int, tuple[PathSegment, ...], int]:
        """The motion the arm is on, for the world to follow between our ticks: its number,
        its segments and its shift (``RobotAct.path_id``).

        The segments go once per motion (and again, as a new motion, after a Hold shifted
        it); later acts name it by number only. No motion (0) stops the world following.
        """
        traj = self._acting_motion
        if traj is None and self._running is not None and self.state is S.EXECUTE:
            traj = self._running.run.ctx.motion
        if traj is None or traj.paused or traj.done(self.now + self.cell.tick_ns):
            self._path = None
            return 0, (), 0
        if self._path is not None and self._path[0] is traj and self._path[1] == traj.shift_ns:
            return self._paths, (), traj.shift_ns
        self._paths += 1
        self._path = (traj, traj.shift_ns)
        segments = tuple(PathSegment(g.t0_ns, g.t1_ns, g.q0, g.q1) for g in traj.segments)
        return self._paths, segments, traj.shift_ns

    @property
    def speed(self) -> float:
        """Joint speed for motions planned now: the spec's times the tuned scale, slowed while
        a fault lasts."""
        factor, until = self._slow
        speed = self.spec.speed * self._scale
        return speed / factor if self.now < until else speed

    @property
    def estimate_speed(self) -> float:
        """The speed its bids are planned at: its real one, but for a slowdown it cannot see
        (a hidden slow_robot), which leaves it bidding at the speed it plans at."""
        return self.speed if self._slow_seen else self.spec.speed * self._scale

    def _send(self, msg: Message) -> None:
        if self._out is None:
            raise RuntimeError(f"{self.name}: sending {msg.TAG} outside a tick")
        self._out.send(SUPERVISOR, msg)

    def _heartbeat(self) -> None:
        """Every interval: say we live (and what we hold); re-send unacknowledged reports."""
        if self._next_heartbeat is not None and self.now < self._next_heartbeat:
            return
        beat = Heartbeat(
            self.name,
            self.now,
            self.state,
            self.packml.step,
            self.op_id,
            queued=self.queued,
            gaps=self._gaps,
            mode=self.packml.mode,
        )
        self._send(beat)
        for report in self._unacked.values():
            if report.t_ns < self.now:  # not the ones just sent
                self._send(report)
        self._next_heartbeat = self.now + round(self.cell.heartbeat_s * NS)

    # ------------------------------------------------------------ inbox

    def _handle(self, body: Message) -> None:
        if isinstance(body, Command | SetMode):
            self._on_command(body)
        elif isinstance(body, CallForBids):
            self._send(Bid(body.op.op_id, self.name, self.bid(body.op)))
        elif isinstance(body, Award):
            if body.robot == self.name:
                self._on_award(body.op, body.attempt)
        elif isinstance(body, ReportAck):
            self._unacked.pop((body.op_id, body.attempt), None)
        elif isinstance(body, Revoke):
            if body.robot in (self.name, ""):
                self._on_revoke(body.op_id)
        elif isinstance(body, Degrade):
            if body.robot == self.name and body.factor >= 1.0:
                self._slow = (body.factor, body.until_ns)
                self._slow_seen = body.seen
                log.info(
                    "%s: motions %.3gx slower until %.3f s",
                    self.name,
                    body.factor,
                    body.until_ns / NS,
                )
        elif isinstance(body, Tune):
            self._tune(body)
        else:
            log.debug("%s: ignoring %s", self.name, body.TAG)

    def _tune(self, body: Tune) -> None:
        """A new speed scale, if it is for this robot and within the cell file's limits (a
        peer's bad value is refused and counted, never planned at)."""
        if body.robot != self.name:
            return
        bounds = self.cell.optimize.bounds(self.name)
        if bounds is None or not bounds[0] <= body.speed_scale <= bounds[1]:
            self.refused_tunes += 1
            log.warning(
                "%s: tune to %r refused: outside the cell file's limits %s",
                self.name,
                body.speed_scale,
                bounds,
            )
            return
        self._scale = body.speed_scale
        log.info("%s: speed scale %.3g (%s)", self.name, body.speed_scale, body.reason)

    def _on_command(self, cmd: Command | SetMode) -> None:
        done = self._replies.get(cmd.cmd_id)
        if done is not None:
            self._send(done)  # a retry: same answer, not applied twice
            return
        if cmd.robot != self.name:
            reply = CommandReply(
                cmd.cmd_id,
                self.name,
                False,
                self.state,
                f"command for {cmd.robot} reached {self.name}",
            )
        else:
            try:
                if isinstance(cmd, SetMode):
                    self.packml.set_mode(cmd.mode, reason=f"command mode {cmd.mode.value}")
                else:
                    self.packml.command(cmd.command)
                reply = CommandReply(cmd.cmd_id, self.name, True, self.state, "")
            except CommandRefused as exc:
                log.info("%s: %s", self.name, exc.reason)
                reply = CommandReply(cmd.cmd_id, self.name, False, self.state, exc.reason)
        self._replies[cmd.cmd_id] = reply
        while len(self._replies) > REPLY_MEMORY:
            self._replies.popitem(last=False)
        self._send(reply)

    def bid(self, op: Operation) -> int:
        """The sim time this robot would finish ``op`` if awarded now, or -1 to decline."""
        why = self._decline(op)
        if why:
            log.debug("%s: declines %s: %s", self.name, op.op_id, why)
            return -1
        start_ns, from_q = self._free_at()
        try:
            est_ns, _ = self.estimate(op, from_q)
        except PlanError as exc:
            log.debug("%s: declines %s: %s", self.name, op.op_id, exc)
            return -1
        return start_ns + est_ns

    def _decline(self, op: Operation) -> str:
        if self.packml.mode is not UnitMode.PRODUCTION:
            return f"in mode {self.packml.mode.value}"
        if self.state is not S.EXECUTE:
            return f"not in Execute ({self.state.value})"
        if op.skill not in self.spec.capabilities:
            return f"cannot {op.skill.value}"
        if self._queue:
            return "already has an operation queued"
        return ""

    def estimate(self, op: Operation, from_q: Q) -> tuple[int, Q]:
        """How long ``op`` takes from arm pose ``from_q``, and where the arm ends (PlanError if not).

        A plan is a pure function of the operation, the start pose and the speed, so the
        one made for a bid serves the award that follows it (IK is most of an agent's cost).
        It is planned at ``estimate_speed``: what the robot believes of itself.
        """
        speed = self.estimate_speed
        if self.cell.fidelity == "events":
            # a timed plan depends on where the last operation ended, not on the pose (which
            # does not change): nothing to cache, and nothing costly
            return self.kin.estimate(op, from_q, speed)
        key = (op, from_q, speed)
        known = self._estimates.get(key)
        if known is not None:
            self._estimates.move_to_end(key)
            if isinstance(known, PlanError):
                raise known
            return known
        try:
            found: tuple[int, Q] | PlanError = self.kin.estimate(op, from_q, speed)
        except PlanError as exc:
            found = exc
        self._estimates[key] = found
        while len(self._estimates) > ESTIMATES_KEPT:
            self._estimates.popitem(last=False)
        if isinstance(found, PlanError):
            raise found
        return found

    def _free_at(self) -> tuple[int, Q]:
        """When and in which pose the arm is done with what it already has."""
        t, q = self.now, self.q_cmd
        if self._running is not None:
            t, q = max(t, self._running.est_end_ns), self._running.end_q
        for queued in self._queue:
            t, q = t + queued.est_ns, queued.end_q
        return t, q

    def _on_award(self, op: Operation, attempt: int = 0) -> None:
        """Queue awarded work, once per attempt.

        An award sent again (the supervisor did not hear that it arrived) for
        work in hand changes nothing; for work already ended it gets the same
        report again. A new attempt of the operation running now (the
        supervisor gave it out again while it could not hear us) is the same
        work: it goes on under the new attempt.
        """
        answer = self._reports.get((op.op_id, attempt))
        done = self._done.get(op.op_id)
        if answer is None and done is not None:
            # done under an earlier attempt (its report was lost): it is done, not to redo
            answer = dataclasses.replace(done, attempt=attempt)
            self._remember(answer)
        if answer is not None:
            self._send(answer)
            return
        if self._running is not None and self._running.op.op_id == op.op_id:
            self._running.attempt = max(self._running.attempt, attempt)
            return
        for queued in self._queue:
            if queued.op.op_id == op.op_id:
                queued.attempt = max(queued.attempt, attempt)
                return
        refuse = ""
        if self.packml.mode is not UnitMode.PRODUCTION:
            refuse = f"in mode {self.packml.mode.value}, not Production"
        elif self.state is not S.EXECUTE:
            refuse = f"not in Execute (state {self.state.value})"
        elif op.skill not in self.spec.capabilities:
            refuse = f"{self.name} cannot {op.skill.value}"
        if refuse:
            self._report(op, OpStatus.REFUSED, refuse, attempt=attempt)
            return
        _, from_q = self._free_at()
        try:
            est_ns, end_q = self.estimate(op, from_q)
        except PlanError:
            est_ns, end_q = 0, from_q  # it will fail with the reason when it runs
        self._queue.append(_Queued(op, est_ns, end_q, attempt))
        log.debug("%s: awarded %s (%d queued)", self.name, op.op_id, len(self._queue))

    def _on_revoke(self, op_id: str) -> None:
        for queued in list(self._queue):
            if queued.op.op_id == op_id:
                self._queue.remove(queued)
                log.debug("%s: %s revoked", self.name, op_id)
                return
        if self.op_id == op_id:
            log.info("%s: revoke of %s ignored: already started", self.name, op_id)

    def _report(
        self,
        op: Operation,
        status: OpStatus,
        detail: str,
        found: Outcome | None = None,
        *,
        attempt: int,
    ) -> None:
        """Send the report and keep it until acknowledged (and to answer a re-sent award)."""
        inspection = found.inspection if found is not None else None
        report = OpReport(op.op_id, self.name, status, detail, self.now, inspection, attempt)
        self._remember(report)
        self._send(report)

    def _remember(self, report: OpReport) -> None:
        key = (report.op_id, report.attempt)
        self._reports[key] = report
        self._unacked[key] = report
        if report.status is OpStatus.DONE:
            self._done[report.op_id] = report
        self._reports.move_to_end(key)
        self._unacked.move_to_end(key)
        for memory, limit in ((self._reports, REPLY_MEMORY), (self._unacked, UNACKED_MAX)):
            while len(memory) > limit:
                memory.popitem(last=False)
        while len(self._done) > REPLY_MEMORY:
            self._done.popitem(last=False)

    # ------------------------------------------------------------ PackML

    def _changed(self, src: Place, dst: Place, reason: str) -> None:
        """Entry actions of the machine: messages out, timers, pausing the skill."""
        old = S.EXECUTE if isinstance(src, ExecStep) else src
        new = S.EXECUTE if isinstance(dst, ExecStep) else dst
        if old is new:
            return
        self._changes += 1
        self._send(StateChanged(self.name, self.now, old, new, reason))
        run = self._running
        if new in ACTING_S:
            self._acting_until = self.now + round(ACTING_S[new] * NS)
            self._acting_motion = None
        if new in (S.HOLDING, S.SUSPENDING) and run is not None:
            run.run.pause(self.now)
        elif new is S.EXECUTE and run is not None and run.run.paused:
            run.est_end_ns += run.run.resume(self.now)
        elif new in (S.STOPPING, S.ABORTING):
            self._give_back(f"interrupted by {reason} in {old.value}")
        elif new is S.RESETTING:
            self._start_homing()

    def _mode_changed(self, src: UnitMode, dst: UnitMode, reason: str) -> None:
        """The unit mode changed: say so (the heartbeat repeats it)."""
        self._changes += 1
        self._send(ModeChanged(self.name, self.now, src, dst, reason))

    def _give_back(self, why: str) -> None:
        """Stop or Abort: the running operation failed; queued ones go back unstarted."""
        if self._running is not None:
            running, self._running = self._running, None
            running.run.close()
            self._report(running.op, OpStatus.FAILED, why, attempt=running.attempt)
        while self._queue:
            queued = self._queue.popleft()
            self._report(queued.op, OpStatus.REFUSED, why, attempt=queued.attempt)

    def _start_homing(self) -> None:
        """Resetting: open the gripper and plan a move to the home pose."""
        if self.holding:
            self._grip = Grip.RELEASE
        self.kin.homed()
        motion = Trajectory.through(self.now, self.q_cmd, (self.kin.home,), speed=self.speed)
        self._acting_motion = motion
        self._acting_until = max(self._acting_until, motion.end_ns)

    def _complete_acting(self) -> None:
        if self.packml.acting and self.now >= self._acting_until:
            self._acting_motion = None
            self.packml.state_complete()

    # ------------------------------------------------------------ skills

    def _advance(self, sense: RobotSense | None) -> Want:
        if self._acting_motion is not None:
            return Want(q=self._acting_motion.at(self.now + self.cell.tick_ns))
        if self.state is not S.EXECUTE or sense is None:
            return Want()
        if self._running is None and self._queue:
            self._start(self._queue.popleft())
        running = self._running
        if running is None:
            return Want()
        try:
            result = running.run.advance(self.now, sense)
        except (SkillFailed, PlanError) as exc:
            self._finish(OpStatus.FAILED, str(exc), None)
            return Want()
        except Exception as exc:  # a bug in a skill fails its op, not the robot
            log.exception("%s: %s crashed", self.name, running.op.op_id)
            self._finish(OpStatus.FAILED, f"internal error: {exc!r}", None)
            return Want()
        if isinstance(result, Outcome):
            self._finish(OpStatus.DONE, result.detail, result)
            return Want()
        return result

    def _start(self, queued: _Queued) -> None:
        spec = dataclasses.replace(self.spec, speed=self.speed)  # a slow_robot fault shows here
        # the attempt's own draw: same run, same draw; another start time, another draw
        draw = random.Random(f"{self.name}/{queued.op.op_id}/{queued.attempt}/{self.now}").random()
        ctx = SkillContext(
            self.cell, spec, self.kin, q=self.q_cmd, enter=self._enter_step, draw=draw
        )
        run = SkillRun(queued.op, ctx)
        self._running = _Running(
            queued.op, run, self.now, self.now + queued.est_ns, queued.end_q, queued.attempt
        )
        self._send(OpStarted(queued.op.op_id, self.name, self.now, queued.attempt))
        log.debug("%s: started %s", self.name, queued.op.op_id)

    def _enter_step(self, step: ExecStep) -> None:
        self.packml.enter_step(step)

    def _finish(self, status: OpStatus, detail: str, found: Outcome | None) -> None:
        running = self._running
        assert running is not None
        self._running = None
        self.packml.enter_step(ExecStep.WAITING, reason=detail)
        if status is OpStatus.FAILED:
            log.info("%s: %s failed: %s", self.name, running.op.op_id, detail)
        self._report(running.op, status, detail, found, attempt=running.attempt)
