"""Crashes and freezes of members that live in the launcher's own process.

A one-process cell (``cells.launch``, members stepped on the clock's thread)
has no process to kill or stop, but its members are the same objects a
process would hold: a robot agent, and a supervisor that keeps everything in
its SQLite journal. ``Residents`` does to them what ``cells.children.Children``
does to processes, at the same ticks, so the scenario's ``agent_crash``,
``supervisor_crash`` and freezes keep their effect in a cell that runs
without processes (a long study at events fidelity, a factory's lines):

* a crash takes the member out of the barrier, closes its sockets and drops
  the object with everything it held in memory; a fresh one is built (a
  supervisor from its journal, as ``--restore`` builds it) and let in
  ``RESTART_S`` of sim time later, as a restarted process is;
* a freeze longer than the clock's guard is a crash at the next tick (the
  clock drops the member there, unanswered, as its guard drops a stopped
  process); a shorter one only stood the cell still for wall seconds, which
  changes nothing in sim time, so only the fault's note is logged.

What it cannot show is what only a process shows: a real SIGKILL, a pid
that changes, an operating system that reaps it. ``--processes`` shows
those; the recovery the event log records is the same code either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq

from bus.endpoints import Endpoints
from bus.participant import LocalMember, Participant
from cells.children import RESTART_S, inject
from cells.faults import FREEZE_KINDS, PROCESS_KINDS, ScheduledFault
from sim import SimServer

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"

Build = Callable[[str], Participant]
"""A fresh participant of that name (the supervisor: restored from its journal)."""


class Residents:
    """Kills, freezes and restarts of the members on the clock's thread (per tick)."""

    def __init__(
        self,
        faults: tuple[ScheduledFault, ...],
        *,
        tick_ns: int,
        guard_s: float,
        ctx: zmq.Context[Any],
        endpoints: Endpoints,
        build: Build,
        members: list[LocalMember],
    ) -> None:
        """``build`` makes a member's replacement; ``members`` is the launcher's list of local
        members (closed at the end of the run): replacements join it."""
        self.kills = sorted(
            (round(f.at_s * 1e9), f.target) for f in faults if f.kind in PROCESS_KINDS
        )
        self.freezes = sorted(
            (f for f in faults if f.kind in FREEZE_KINDS), key=lambda f: (f.at_s, f.target)
        )
        self.guard_s = guard_s
        self.ctx, self.endpoints = ctx, endpoints
        self.build = build
        self.members = members
        self.restart_ticks = round(RESTART_S * 1e9 / tick_ns)
        self.restarts: dict[str, int] = {}
        self.killed: list[tuple[int, str]] = []
        self.frozen: list[tuple[int, str, float]] = []
        self.noted: dict[str, ScheduledFault] = {}
        """A frozen supervisor's freeze, logged once it is dropped (or, shorter than the
        guard, at the next tick): noted to it while frozen, it would be lost with it."""
        self.thawing: list[str] = []

    def pending(self) -> bool:
        """Whether the scenario still has a crash or freeze to do."""
        return bool(self.kills or self.freezes)

    def horizon(self) -> int:
        """The sim time of the next kill or freeze (``SimServer.horizons``)."""
        times = [t for t, _ in self.kills[:1]] + [round(f.at_s * 1e9) for f in self.freezes[:1]]
        return min(times, default=1 << 62)

    def check(self, server: SimServer) -> None:
        """Per tick, as ``Children.check``: kill and freeze what the scenario says, replace
        what was killed or dropped frozen."""
        clock = server.require_clock()
        now = server.world.t_ns
        while self.kills and self.kills[0][0] <= now:
            _, name = self.kills.pop(0)
            if self._alive(server, name):
                log.warning("killed %s (in this process) at %.3f s", name, now / 1e9)
                self.killed.append((now, name))
                self._replace(server, name)
        self._freeze(server, now)
        dropped, clock.silent[:] = list(clock.silent), []
        for name in dropped:
            if name in self.noted:
                inject(server, self.noted.pop(name))
            log.warning("%s stopped answering at %.3f s; replacing it", name, now / 1e9)
            self._replace(server, name)

    def _alive(self, server: SimServer, name: str) -> bool:
        clock = server.require_clock()
        return name in clock.members or name in clock.pending()

    def _freeze(self, server: SimServer, now: int) -> None:
        """Stand still what the scenario freezes now; then note the short freezes of the
        supervisor of the tick before (over by now), in the order ``Children`` notes them."""
        clock = server.require_clock()
        thawed, self.thawing = self.thawing, []
        while self.freezes and self.freezes[0].at_s * 1e9 <= now:
            fault = self.freezes.pop(0)
            name, wall_s = fault.target, fault.duration_s
            starting = name in clock.pending()
            if self._alive(server, name):
                self.frozen.append((now, name, wall_s))
                if starting:  # not back in the barrier yet: replaced now, as a process is
                    log.warning(
                        "froze %s at %.3f s while it started up: replacing it", name, now / 1e9
                    )
                    self._replace(server, name)
                elif wall_s >= self.guard_s:
                    log.warning(
                        "froze %s at %.3f s for %g s (past the guard)", name, now / 1e9, wall_s
                    )
                    clock.freeze(name)
                else:  # stood the cell still for wall seconds: nothing in sim time
                    log.warning(
                        "froze %s at %.3f s for %g s (within the guard)", name, now / 1e9, wall_s
                    )
            if name == SUPERVISOR and not starting and self._alive(server, name):
                self.noted[name] = fault
                if wall_s < self.guard_s:
                    self.thawing.append(name)
            else:
                inject(server, fault)
        for name in thawed:
            note = self.noted.pop(name, None)
            if note is not None:
                inject(server, note)

    def _replace(self, server: SimServer, name: str) -> None:
        """Drop ``name`` with all it held and let a fresh one in ``RESTART_S`` from now."""
        clock = server.require_clock()
        old = clock.detach(name)
        if isinstance(old, LocalMember):
            old.close()
            if old in self.members:
                self.members.remove(old)
            _discard(old.part)
        clock.rejoin_at(name, server.ticks + self.restart_ticks)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        part = self.build(name)
        hub = name == SUPERVISOR
        member = LocalMember(part, self.ctx, self.endpoints, hub=hub, guard_s=self.guard_s)
        member.setup()
        self.members.append(member)
        clock.attach(member)  # held until its tick
        if hub:
            for spoke in self.members:
                if spoke is not member:
                    spoke.mailbox.reconnect()


def _discard(part: Participant) -> None:
    """Free what a dropped member held outside Python (its files, its kinematic model)."""
    for name in ("close", "shutdown"):
        free = getattr(part, name, None)
        if callable(free):
            free()
            return
