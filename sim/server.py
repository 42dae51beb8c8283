"""The sim server: owns the world and the lock-step clock, and runs the cell's ticks.

Per control tick (DESIGN principle 3): every member due (all of them under
``sync = "tick"``, see ``bus.clock``) gets a ``Tick`` carrying what the world
senses for it (a ``RobotSense`` for a robot, a ``WorldSense`` for the
supervisor); the clock gathers every ``Done``; the acts are applied in sorted
participant order (so the run is reproducible); every robot not ticked follows
the motion it sent; physics advances one tick. A participant that stops answering is dropped by the clock's wall-clock
guard, so a dead process never freezes the cell.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.cellspec import CellSpec
from bus.clock import ClockServer
from bus.endpoints import Endpoints
from bus.errors import LightsoutError
from bus.messages import Done, Message, RobotAct, WorldAct
from bus.trust import LiveKeys, start_zap, stop_zap
from sim.events import EventWorld
from sim.host import CellHost
from sim.rebuild import KeptUnit, rebuild
from sim.world import World

log = logging.getLogger(__name__)

ADMIT_S = 30.0
"""Wall seconds the clock waits, at its tick, for a restarted member to join before it gives
it up (and the launcher replaces it): longer than a freeze of a process still starting up
(chaos freezes last up to 20 s) plus its start-up, well short of the 60 s of clock silence
after which every participant leaves."""

SUPERVISOR = "supervisor"
"""The clock name of the cell supervisor; every other member is a robot."""


class SimServer:
    """``SimServer(cell, endpoints, seed=..., duration_s=...)``, then ``setup()``, ``run()``, ``shutdown()``."""

    def __init__(
        self,
        cell: CellSpec,
        endpoints: Endpoints,
        *,
        seed: int,
        duration_s: float,
        ctx: zmq.Context[Any] | None = None,
        guard_s: float = 10.0,
        join_timeout_s: float = 60.0,
        on_tick: Callable[[int, int], None] | None = None,
        subscribers: int = 0,
        keys_dir: Path | None = None,
    ) -> None:
        self.cell = cell
        self.endpoints = endpoints
        self.seed = seed
        self.duration_ns = round(duration_s * 1e9)
        self.guard_s = guard_s
        self.join_timeout_s = join_timeout_s
        self.on_tick = on_tick
        self.subscribers = subscribers
        self.keys_dir = keys_dir
        """CURVE keys and roles for the control and telemetry sockets (None: open)."""
        """Telemetry subscribers (e.g. a recorder) to wait for before the first tick."""
        self.host: CellHost | None = None
        self.pace_realtime = 0.0
        """If > 0, start paced to the wall clock times this factor (``--realtime``)."""
        """The control endpoint and telemetry publisher (after ``setup``)."""
        self.world: World = (
            EventWorld(cell, seed=seed) if cell.fidelity == "events" else World(cell, seed=seed)
        )
        """PyBullet's, or the discrete-event model at ``fidelity = \"events\"`` (``sim.events``)."""
        self.robots: tuple[str, ...] = tuple(sorted(r.name for r in cell.robots))
        """The robots of the barrier: the cell file's, and those built and admitted since."""
        self.ticks = 0
        """Control ticks run so far."""
        self.malformed_acts = 0
        """Acts that were neither a RobotAct from its own robot nor a WorldAct from the supervisor."""
        self.dropped: list[str] = []
        """Members the clock dropped from the barrier, in order (a name may repeat)."""
        self._ctx = ctx
        self._own_ctx = ctx is None
        self.clock: ClockServer | None = None
        self.live: LiveKeys | None = None
        """The keys every socket of this process checks (re-read as they change), with keys."""
        self.gone: Callable[[], list[str]] | None = None
        """Members known to be dead (the launcher's exited children), dropped without a wait."""
        self.reason = ""
        """Why the run ended (after ``run``)."""
        self._kept: tuple[KeptUnit, ...] = ()
        self.stop_reason = ""
        """Set (e.g. by a signal handler) to end the run after the current tick, with this reason."""
        self.opened_ticks = 0
        """Control ticks at which the clock opened a tick for anyone (all of them under
        ``sync = "tick"``)."""
        self._sensed: dict[str, str] = {}
        """What each robot last sensed in its gripper (a change wakes it)."""
        self._view: tuple[tuple[str, str], ...] | None = None
        """What the supervisor last read of the sensors (a change wakes it)."""
        self.horizons: list[Callable[[], int]] = []
        """The next sim time each of the launcher's plans (faults, process kills) needs the
        tick at or after it seen: the events world skips no tick past one."""
        self.quiet_ticks = 0
        """Ticks the events world let go by unseen (nobody due, nothing happening)."""
        self.listeners: list[Callable[[str], None]] = []
        """Given every event-log line the supervisor sends, in order (``CellHost.listeners``)."""
        self.kpi_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Given every KPI snapshot the supervisor sends (``CellHost.kpi_listeners``)."""

    def carry_on(
        self, tick: int, last_ids: dict[str, int], units: tuple[KeptUnit, ...] = ()
    ) -> None:
        """Before ``setup``: a resumed run starts at control ``tick`` with a world that numbers
        its parts after ``last_ids`` (the ledger's), so no id of the run is used twice, and
        holds ``units`` in their fixtures again."""
        self.ticks = tick
        self.world.carry_on(tick, last_ids)
        self._kept = units

    def setup(self) -> None:
        """Build the world and bind the clock."""
        if self._ctx is None:
            self._ctx = zmq.Context()
        self.world.setup()
        rebuild(self.world, self._kept)
        if self.keys_dir is not None:
            # one ZAP handler for the clock, control and telemetry sockets, before any bind
            self.live = LiveKeys(self.keys_dir, self.cell.name)
            start_zap(self._ctx, self.live)
        self.clock = ClockServer(
            self._ctx, self.endpoints.clock, guard_s=self.guard_s, keys=self.live
        )
        self.clock.setup()
        self.clock.max_step_ns = round(self.max_step_s() * 1e9)
        self.host = CellHost(
            self._ctx, self.endpoints, self.world, keys_dir=self.keys_dir, live=self.live
        )
        self.host.listeners.extend(self.listeners)
        self.host.kpi_listeners.extend(self.kpi_listeners)
        self.host.setup()
        if self.pace_realtime > 0:
            self.host.pace, self.host.factor = "realtime", self.pace_realtime

    def run(self) -> int:
        """Wait for the supervisor and every robot, then tick until the duration; return 0.

        Raises ``LightsoutError`` naming whoever did not join in time.
        """
        clock = self._require()
        world = self.world
        missing = clock.wait_for((SUPERVISOR, *self.robots), self.join_timeout_s)
        if missing:
            who = ", ".join(sorted(missing))
            raise LightsoutError(f"sim: not joined within {self.join_timeout_s:g} s: {who}")
        host = self._host()
        if self.subscribers and not host.wait_subscribers(self.subscribers, self.join_timeout_s):
            raise LightsoutError(f"sim: {self.subscribers} telemetry subscriber(s) did not come")
        k = self.ticks  # 0, or the tick a resumed run carries on from
        reason = "duration reached"
        while world.t_ns < self.duration_ns:
            host.poll(0)
            while host.paused and not host.shutdown_requested:
                host.held()
                host.poll(0.1)
            host.held()
            if host.shutdown_requested:
                reason = "shutdown requested"
                break
            if self.stop_reason:
                reason = self.stop_reason
                break
            clock.admit(k, min(self.join_timeout_s, ADMIT_S))
            for j in clock.take_joins():
                log.info("sim: %s (%s) is in the barrier at tick %d", j.name, j.role, k)
            due = self._due(clock)
            dones: dict[str, Done] = {}
            if due:
                # a sense is only taken for a member ticked now, so nothing is lost meanwhile
                senses: dict[str, Message | None] = {}
                for r in sorted(due & set(self.robots)):
                    sensed = senses[r] = world.robot_sense(r)
                    self._sensed[r] = sensed.holding
                if SUPERVISOR in due:
                    self._view = world.sensor_view()
                    sense = world.world_sense()
                    senses[SUPERVISOR] = dataclasses.replace(sense, requests=host.take_requests())
                dones = clock.tick(
                    k, world.t_ns, senses, side=host.side(), gone=self.gone, only=due
                )
                self.opened_ticks += 1
                host.alive = set(clock.members)
                host.clock_counts = clock.counts()
                host.after_dones({name: done.act for name, done in sorted(dones.items())})
                for name in sorted(dones):
                    self._apply(name, dones[name].act)
                self.dropped.extend(clock.take_dropped())
            else:
                clock.skip()
                k = self._pass_quietly(k, clock, host)
            for r in self.robots:
                if r not in dones and r in clock.members:
                    world.follow(r)  # not ticked: its arm goes on along its path
            world.advance()
            host.after_advance()
            k += 1
            self.ticks = k
            if self.on_tick is not None:
                self.on_tick(world.t_ns, self.duration_ns)
        self.reason = reason
        host.run_end(reason)
        clock.shutdown(world.t_ns, reason)
        log.info("sim: %d ticks, %.3f s of sim time; done", k, world.t_ns / 1e9)
        return 0

    def max_step_s(self) -> float:
        """The longest a member goes without a tick: the cell file's ``max_step_s``, and at
        events fidelity at least the heartbeat interval. There every tick costs a round trip
        and nothing else, every agent wakes for its heartbeat anyway, and the supervisor for
        its own deadlines and for a control request (``_due``): the shorter bound only ticked
        members with nothing to do, a fifth of all round trips, and the event log is the same
        byte for byte (seed 1, 600 s, both bounds)."""
        if isinstance(self.world, EventWorld):
            return max(self.cell.max_step_s, self.cell.heartbeat_s)
        return self.cell.max_step_s

    def _pass_quietly(self, k: int, clock: ClockServer, host: CellHost) -> int:
        """Nobody is due at tick ``k``: in the events world, let the ticks go by unseen up to
        the one before anything can happen (DESIGN principle 9), the world advanced by them;
        return the tick the loop goes on with (``k`` itself in physics, or when nothing may
        be skipped).

        What can happen: a member's wake time or ``max_step_s`` (``ClockServer.next_due_ns``),
        a change in the world (``EventWorld.quiet_until_ns``), a fault or process event the
        launcher has planned (``horizons``), the end of the run; and nothing is skipped while
        the host needs every tick (``CellHost.quiet``). The ticks skipped are those no
        member would have been ticked at, so the run is the one stepping gives.
        """
        world = self.world
        if not isinstance(world, EventWorld) or not host.quiet():
            return k
        due = clock.next_due_ns()
        if due <= 0:
            return k
        until = min(due, world.quiet_until_ns(), self.duration_ns, *(h() for h in self.horizons))
        # the loop's own advance takes the world to tick k + 1; the last tick skipped is the
        # one before the first tick at or after ``until``
        first = self._first_tick_at(until)
        skip = first - (k + 1)
        if skip <= 0:
            return k
        world.advance_quiet(skip)
        host.pass_quietly(skip)
        self.quiet_ticks += skip
        return k + skip

    def _first_tick_at(self, t_ns: int) -> int:
        """The first control tick whose sim time is at or after ``t_ns``."""
        tick = self.cell.tick_ns
        k = max(0, t_ns // tick - 1)
        while self.cell.tick_at(k) < t_ns:
            k += 1
        return k

    def _due(self, clock: ClockServer) -> set[str]:
        """Who is ticked now: everyone (``sync = "tick"``), else the members the clock finds
        due and those the world has news for (a gripper that changed, an answer to a look,
        events or changed sensors, a control request for the supervisor)."""
        members = set(clock.members)
        if self.cell.sync == "tick":
            return members
        world, t = self.world, self.world.t_ns
        due = clock.due(t)
        for r in self.robots:
            if r in members and world.robot_news(r, self._sensed.get(r, "")):
                due.add(r)
        if SUPERVISOR in members and (
            self._view is None or world.news(self._view) or self._host().has_requests()
        ):
            due.add(SUPERVISOR)
        return due

    def admit_robot(self, name: str, ticks_ahead: int) -> None:
        """A robot built in the cell passed its check: it is sensed and may act from now on,
        and the clock lets it in ``ticks_ahead`` ticks from now, waiting for it then (so a
        run is as reproducible as one where it was there from the start)."""
        if name not in self.world.arms:
            raise LightsoutError(f"sim: no arm {name!r} in the world to admit")
        self.robots = tuple(sorted({*self.robots, name}))
        self._require().rejoin_at(name, self.ticks + ticks_ahead)

    def shutdown(self) -> None:
        """Close the clock and the world (and the context, if this server made it)."""
        if self.host is not None:
            self.host.close()
            self.host = None
        if self.clock is not None:
            self.clock.close()
            self.clock = None
        if self.live is not None and self._ctx is not None:
            stop_zap(self._ctx)
            self.live = None
        self.world.shutdown()
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> SimServer:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _apply(self, name: str, act: Message | None) -> None:
        if act is None:
            return
        if isinstance(act, RobotAct) and act.robot == name and name in self.robots:
            self.world.apply(act)
        elif isinstance(act, WorldAct) and name == SUPERVISOR:
            self.world.apply_world(act)
        else:
            self.malformed_acts += 1
            log.warning("sim: %s sent an act it may not send: %s", name, type(act).__name__)

    def _host(self) -> CellHost:
        if self.host is None:
            raise RuntimeError("SimServer.setup() was not called")
        return self.host

    def require_clock(self) -> ClockServer:
        """The clock (after ``setup``): the launcher attaches the members it steps itself."""
        return self._require()

    def _require(self) -> ClockServer:
        if self.clock is None:
            raise RuntimeError("SimServer.setup() was not called")
        return self.clock
