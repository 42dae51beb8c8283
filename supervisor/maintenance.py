"""Maintenance: a robot diagnosed as wearing is taken out before the wear breaks it.

The health model (``supervisor.health``) names a wear with its evidence; this
module acts on it. Two parts, as everywhere in the supervisor:

* the **policy**, ``decide``, a pure function of a ``MaintenanceView``: which
  diagnoses to act on now (``TakeOut``) and which only to log
  (``Wanted``: a belt, a robot that failed for good, acting turned off). One
  robot is out at a time: a second diagnosed robot waits for the first to come
  back, so a cell whose robots wear together keeps producing. A wear that
  breaks the robot (``joint_drift``: its drive trips) goes before one that
  only slows it or loses parts, then the earliest diagnosis first. A slowing
  robot (``cycle_creep``) is first watched: the health model cannot tell a
  creep from a passing slowdown (a ``slow_robot``, a heavy spell), so it is
  taken out only if ``CONFIRM_S`` after the diagnosis its motion series still
  read slow (``Health.persists``), and checked again every ``CONFIRM_S`` until
  then. A slowdown that passed is not acted on and writes no line (it is in
  ``kpis.json``'s ``maintenance.watched``).
* the **component**, ``Maintenance``, which owns the jobs under way and takes
  each robot through them, a phase per tick as the robot answers:

  1. ``draining``: the robot gets no more work (``RobotView.held``); what it
     holds but has not started is revoked and given back to be allocated
     again (``Work.requeue``); the operation it runs may finish, for at most
     ``DRAIN_S``;
  2. ``stopping``: it is sent Stop (which gives back an operation still
     running, the agent's ordinary Stop) until it is in a wait state;
  3. ``entering``: it is sent the unit mode Maintenance; once it says it is in
     it (``maintenance_begun``) the world is told to take the wear off
     (``WorldAct.maintain``), a creeping robot's slowdown ends, and the cell
     file's ``maintenance_s`` of sim time runs;
  4. ``returning``: it is sent the mode Production; once it says so its health
     series learn their baselines afresh (``Health.reset``), the hold ends
     (``maintenance_done``) and the fleet brings it up to Execute as after any
     stop.

A robot that fails for good on the way (a drive that tripped first) is not
maintained: the job is cancelled (``maintenance_cancelled``); a tripped drive
is never undone. Every step is a line of the event log with its reason, and
the component snapshots itself for the journal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import PackMLCommand, PackMLState, UnitMode
from bus.messages import Revoke
from bus.participant import Outbox
from bus.simtime import NS
from supervisor.assignments import Assignments
from supervisor.creep import Creeps
from supervisor.eventlog import EventLog
from supervisor.fleet import Fleet, RobotView, failed_for_good
from supervisor.health import Health
from supervisor.plan import OpState
from supervisor.units import Units
from supervisor.work import Work

DRAIN_S = 30.0
"""How long a robot taken out may go on with the operation it runs before it is stopped
(sim seconds): a pick-and-place takes 5 to 10 s, so it is nearly always let finish."""
QUIET_STATES = (PackMLState.STOPPED, PackMLState.IDLE, PackMLState.COMPLETE, PackMLState.ABORTED)
"""Wait states in which a robot holds no work, so its mode may change for maintenance (Held
keeps an operation: a held robot is stopped first)."""
BREAKS = ("joint_drift",)
"""Causes that end in a hard failure: maintained first."""
CONFIRM = ("cycle_creep",)
"""Causes acted on only once they are seen to last (a slowdown may pass by itself)."""
CONFIRM_S = 60.0
"""How long a slowing robot is watched before it is taken out, and between two looks."""
CONFIRM_WINDOW_S = 10.0
"""A look judges the samples of this last stretch of sim time (``Health.persists``)."""
COMMAND_GAP_NS = NS
"""A job sends its robot a command at most this often (a refused one is tried again)."""
PENDING_MAX = 64
"""Diagnoses kept waiting for their turn (one a target: more is a bug or a hostile log)."""

S = PackMLState
M = UnitMode


# ---------------------------------------------------------------- the policy


@dataclasses.dataclass(frozen=True, slots=True)
class TakeOut:
    """Take ``robot`` out to maintain it for the diagnosis ``diagnosis``, for ``reason``."""

    robot: str
    diagnosis: Mapping[str, Any]
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class LookAgain:
    """Not yet: look again at ``diagnosis`` later, for ``reason`` (a slowdown that may pass)."""

    diagnosis: Mapping[str, Any]
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Wanted:
    """Do not act on ``diagnosis``; log that it wants maintenance, and ``reason``."""

    diagnosis: Mapping[str, Any]
    reason: str


Decision = TakeOut | LookAgain | Wanted


@dataclasses.dataclass(frozen=True, slots=True)
class MaintenanceView:
    """What the policy reads: the diagnoses not yet acted on (in log order), each robot's
    standing (``up``: answers and has not failed for good), the robots out now, whether
    acting is on, and per diagnosis to confirm (by target) whether its wear still shows:
    None while it is not yet time to look."""

    diagnoses: tuple[Mapping[str, Any], ...]
    robots: Mapping[str, bool]
    out: frozenset[str]
    enabled: bool
    lasting: Mapping[str, bool | None] = dataclasses.field(default_factory=dict)


def decide(view: MaintenanceView) -> list[Decision]:
    """The decisions on ``view``'s diagnoses; a diagnosis left out waits for its turn."""
    decisions: list[Decision] = []
    busy = bool(view.out)
    order = sorted(
        view.diagnoses, key=lambda d: (d.get("cause") not in BREAKS, int(d.get("t_ns", 0)))
    )
    for diag in order:
        robot = str(diag.get("robot", ""))
        if not robot:
            decisions.append(Wanted(diag, "a belt is not taken out: maintain it by hand"))
        elif not view.enabled:
            decisions.append(Wanted(diag, "acting on diagnoses is off (--no-maintain)"))
        elif robot not in view.robots:
            decisions.append(Wanted(diag, f"{robot} is no robot of this cell"))
        elif not view.robots[robot]:
            decisions.append(Wanted(diag, f"{robot} failed for good before it was maintained"))
        elif robot in view.out:
            decisions.append(Wanted(diag, f"{robot} is being maintained already"))
        elif diag.get("cause") in CONFIRM and not view.lasting.get(robot):
            if view.lasting.get(robot) is False:
                decisions.append(LookAgain(diag, "its motions are not slow any more: watched"))
        elif not busy:
            busy = True
            cause, part = diag.get("cause", "?"), diag.get("component", "?")
            why = f"{cause} diagnosed ({part}): maintained before it fails"
            decisions.append(TakeOut(robot, diag, why))
    return decisions


# ---------------------------------------------------------------- the component


@dataclasses.dataclass(slots=True)
class Job:
    """One robot's maintenance under way."""

    robot: str
    cause: str
    component: str
    diagnosed_ns: int
    started_ns: int
    phase: str = "draining"
    drain_until_ns: int = 0
    begun_ns: int = -1
    until_ns: int = -1
    cmd_ns: int = -(2**62)
    """When the job last sent the robot a command ..."""
    cmd: str = ""
    """... and which: the same one goes again no sooner than ``COMMAND_GAP_NS`` after."""


class Maintenance:
    """The jobs under way, the diagnoses waiting, and what was done (for ``kpis.json``)."""

    def __init__(
        self,
        cell: CellSpec,
        *,
        fleet: Fleet,
        assignments: Assignments,
        units: Units,
        work: Work,
        health: Health,
        creeps: Creeps,
        events: EventLog,
    ) -> None:
        self.enabled = cell.maintain
        self.maintenance_ns = round(cell.maintenance_s * NS)
        self.fleet = fleet
        self.assignments = assignments
        self.units = units
        self.work = work
        self.health = health
        self.creeps = creeps
        self.events = events
        self.jobs: dict[str, Job] = {}
        self.pending: list[dict[str, Any]] = []
        """Diagnoses not acted on yet (waiting for another robot to come back)."""
        self.done: list[dict[str, Any]] = []
        """Every maintenance finished or cancelled, for ``kpis.json``."""
        self.wanted: list[dict[str, Any]] = []
        """Every diagnosis not acted on, with why."""
        self.maintain: list[str] = []
        """Robots the world is to take the wear off at the end of this tick."""
        self.look_at: dict[str, int] = {}
        """Targets of diagnoses to confirm: when to look again whether the wear lasts."""
        self.watched: list[dict[str, Any]] = []
        """Every look that found a slowdown passed (for ``kpis.json``)."""
        self.health_persists = health.persists

    # ------------------------------------------------------------ each tick

    def step(self, diagnoses: Iterable[Mapping[str, Any]], out: Outbox, now: int) -> None:
        """Take in this tick's diagnoses, apply the policy's decisions, move every job on."""
        for diag in diagnoses:
            if len(self.pending) < PENDING_MAX:
                self.pending.append(dict(diag))
                if diag.get("cause") in CONFIRM:
                    self.look_at[str(diag.get("target", ""))] = now + round(CONFIRM_S * NS)
        if self.pending:
            self._decide(now)
        for name in sorted(self.jobs):
            self._advance(self.jobs[name], out, now)

    def take_maintain(self) -> tuple[str, ...]:
        """The robots for ``WorldAct.maintain`` this tick."""
        names, self.maintain = tuple(self.maintain), []
        return names

    def _decide(self, now: int) -> None:
        robots = {v.name: v.alive and not failed_for_good(v) for v in self.fleet}
        lasting: dict[str, bool | None] = {}
        scores: dict[str, float] = {}
        for waiting in self.pending:
            target = str(waiting.get("target", ""))
            if waiting.get("cause") in CONFIRM and now >= self.look_at.get(target, 0):
                since = now - round(CONFIRM_WINDOW_S * NS)
                lasting[target], scores[target] = self.health_persists(
                    target, str(waiting.get("component", "")), since
                )
        view = MaintenanceView(
            tuple(self.pending), robots, frozenset(self.jobs), self.enabled, lasting
        )
        for decision in decide(view):
            diag = decision.diagnosis
            if isinstance(decision, LookAgain):
                target = str(diag.get("target", ""))
                self.look_at[target] = now + round(CONFIRM_S * NS)
                if len(self.watched) < PENDING_MAX:
                    score = scores.get(target, 0.0)
                    self.watched.append({"t_ns": now, "target": target, "score": score})
                continue
            self.pending = [d for d in self.pending if d is not diag]
            self.look_at.pop(str(diag.get("target", "")), None)
            if isinstance(decision, Wanted):
                self._wanted(diag, decision.reason, now)
            else:
                self._take_out(decision, now)

    def _wanted(self, diag: Mapping[str, Any], reason: str, now: int) -> None:
        target = str(diag.get("target", ""))
        fields = {
            "target": target,
            "cause": diag.get("cause", ""),
            "component": diag.get("component", ""),
            "evidence": diag.get("evidence", {}),
            "reason": reason,
        }
        who = {"robot": target} if diag.get("robot") else {"conveyor": target}
        self.wanted.append({"t_ns": now, **who, **fields})
        self.events.write(now, "maintenance_wanted", **who, **fields)

    def _take_out(self, d: TakeOut, now: int) -> None:
        diag = d.diagnosis
        job = Job(
            d.robot,
            str(diag.get("cause", "")),
            str(diag.get("component", "")),
            int(diag.get("t_ns", now)),
            now,
            drain_until_ns=now + round(DRAIN_S * NS),
        )
        self.jobs[d.robot] = job
        self.fleet.views[d.robot].held = "maintenance"
        self.events.write(
            now,
            "maintenance_started",
            robot=d.robot,
            cause=job.cause,
            component=job.component,
            quantity=diag.get("quantity", ""),
            evidence=diag.get("evidence", {}),
            recent=diag.get("recent", []),
            diagnosed_ns=job.diagnosed_ns,
            reason=d.reason,
            maintenance_s=self.maintenance_ns / NS,
        )

    def _advance(self, job: Job, out: Outbox, now: int) -> None:
        """One step of ``job``'s phases, as far as what the robot said allows."""
        view = self.fleet.views[job.robot]
        if failed_for_good(view):
            self._end(job, view, now, cancelled=f"{job.robot} failed for good first")
            return
        if job.phase == "draining":
            running = self._revoke_unstarted(job, out)
            if not running or now >= job.drain_until_ns:
                job.phase = "stopping"
        if job.phase == "stopping":
            if view.state in QUIET_STATES:
                job.phase = "entering"
            else:
                self._command(job, view, PackMLCommand.STOP, out, now)
        if job.phase == "entering":
            if view.mode is M.MAINTENANCE:
                self._begin(job, out, now)
            elif view.state in QUIET_STATES:
                self._command(job, view, M.MAINTENANCE, out, now)
            else:
                job.phase = "stopping"  # it left its wait state (an operator): stop it again
        if job.phase == "maintaining":
            if view.mode is not M.MAINTENANCE and view.state in QUIET_STATES:
                self._command(job, view, M.MAINTENANCE, out, now)  # an agent restarted meanwhile
            if now >= job.until_ns:
                job.phase = "returning"
        if job.phase == "returning":
            if view.mode is M.PRODUCTION:
                self._end(job, view, now)
            elif view.state in QUIET_STATES:
                self._command(job, view, M.PRODUCTION, out, now)

    def _revoke_unstarted(self, job: Job, out: Outbox) -> bool:
        """Give back what ``job``'s robot holds but has not started; whether it runs one."""
        running = False
        for op_id in self.assignments.queue(job.robot):
            op = self.units.ops[op_id]
            if op.state is OpState.AWARDED:
                out.send(job.robot, Revoke(op_id, job.robot))
                self.work.requeue(op, f"{job.robot} taken out for maintenance")
            elif op.state is OpState.RUNNING:
                running = True
        return running

    def _command(
        self, job: Job, view: RobotView, cmd: PackMLCommand | UnitMode, out: Outbox, now: int
    ) -> None:
        """Send ``cmd`` unless a command of the supervisor's to the robot is still in flight
        (the fleet sends that one again), the robot is not heard, or the job sent one less
        than ``COMMAND_GAP_NS`` ago (a refusal is answered, then tried again)."""
        again = cmd.value == job.cmd and now - job.cmd_ns < COMMAND_GAP_NS
        if view.alive and not view.pending_cmd and not again:
            job.cmd_ns, job.cmd = now, cmd.value
            self.fleet.send(view, cmd, out, now)

    def _begin(self, job: Job, out: Outbox, now: int) -> None:
        job.phase = "maintaining"
        job.begun_ns = now
        job.until_ns = now + self.maintenance_ns
        self.maintain.append(job.robot)
        self.creeps.maintain(job.robot, out, now)
        self.events.write(now, "maintenance_begun", robot=job.robot, until_ns=job.until_ns)

    def _end(self, job: Job, view: RobotView, now: int, *, cancelled: str = "") -> None:
        del self.jobs[job.robot]
        view.held = ""
        record = {
            "robot": job.robot,
            "cause": job.cause,
            "component": job.component,
            "diagnosed_ns": job.diagnosed_ns,
            "started_ns": job.started_ns,
            "begun_ns": job.begun_ns,
        }
        if cancelled:
            self.done.append({**record, "cancelled": cancelled, "ended_ns": now})
            self.events.write(now, "maintenance_cancelled", robot=job.robot, reason=cancelled)
            return
        self.health.reset(job.robot)
        out_s = round((now - job.started_ns) / NS, 3)
        self.done.append({**record, "done_ns": now, "out_s": out_s})
        self.events.write(
            now,
            "maintenance_done",
            robot=job.robot,
            cause=job.cause,
            component=job.component,
            started_ns=job.started_ns,
            begun_ns=job.begun_ns,
            out_s=out_s,
        )

    def deadlines(self) -> Iterator[int]:
        """When a job must move on though no robot says anything (the event clock's
        lookahead): its drain's end, its maintenance's end, a command to try again."""
        for job in self.jobs.values():
            if job.phase == "draining":
                yield job.drain_until_ns
            elif job.phase == "maintaining":
                yield job.until_ns
            if job.cmd:
                yield job.cmd_ns + COMMAND_GAP_NS

    # ------------------------------------------------------------ report, journal

    def report(self) -> dict[str, Any]:
        """For ``kpis.json``: the settings, every maintenance, those under way, those wanted."""
        return {
            "enabled": self.enabled,
            "maintenance_s": self.maintenance_ns / NS,
            "maintenances": list(self.done),
            "under_way": [dataclasses.asdict(j) for _, j in sorted(self.jobs.items())],
            "wanted": list(self.wanted),
            "watched": list(self.watched),
            "waiting": [
                {"target": d.get("target"), "cause": d.get("cause"), "diagnosed_ns": d.get("t_ns")}
                for d in self.pending
            ],
        }

    def snapshot(self) -> dict[str, Any]:
        """The jobs, the waiting diagnoses and the record, as plain data."""
        return {
            "jobs": {n: dataclasses.asdict(j) for n, j in sorted(self.jobs.items())},
            "pending": list(self.pending),
            "done": list(self.done),
            "wanted": list(self.wanted),
            "look_at": dict(sorted(self.look_at.items())),
            "watched": list(self.watched),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote (the fleet's holds are restored with the fleet)."""
        self.jobs = {n: Job(**j) for n, j in data.get("jobs", {}).items()}
        self.pending = [dict(d) for d in data.get("pending", [])]
        self.done = [dict(d) for d in data.get("done", [])]
        self.wanted = [dict(d) for d in data.get("wanted", [])]
        self.look_at = {k: int(v) for k, v in data.get("look_at", {}).items()}
        self.watched = [dict(d) for d in data.get("watched", [])]
