"""The lock-step clock: the world ticks only when every participant is done.

The clock owner (the sim server) binds a ROUTER; each participant (agents, the
supervisor) connects a DEALER named after itself. Per control tick:

1. the clock sends ``Tick(k, t, expect, sense)`` to every member, where
   ``expect`` lists, per sender, how many cell messages that sender addressed
   to this member during tick ``k-1`` (the causal barrier);
2. each member reads exactly those messages, acts, sends its own messages and
   answers ``Done(k, sent, act)``;
3. the clock steps physics to ``t + tick`` and starts ``k+1``.

A member that does not answer within ``guard_s`` seconds of wall time is
dropped from the barrier (a dead process never freezes the cell); it may join
again with ``Join`` and is included from the next tick. A member the launcher
restarts comes back at a set tick instead (``rejoin_at``): the clock waits for
its ``Join`` there, so how long a restart takes in wall time never shows in
sim time, and a run with killed processes is as reproducible as one without.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import zmq

from bus.codec import CodecError, decode, encode
from bus.messages import Count, Done, ErrorReply, Join, Message, Shutdown, Tick
from bus.sockets import make_socket

log = logging.getLogger(__name__)

GONE_CHECK_MS = 50
"""While the barrier waits, how often it asks which members are known to be dead."""
FROZEN_S = 2.0
"""A wait that overran its timeout by this much wall time means the clock's own process
was stopped; the guard does not count that time against the members."""


class ClockServer:
    """The clock owner's side of the barrier."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, *, guard_s: float = 10.0) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.guard_s = guard_s
        self.members: dict[str, str] = {}
        """Members in the barrier: name to role."""
        self.joined: list[Join] = []
        """Joins seen since the last call to ``take_joins`` (for the launcher and the log)."""
        self.dropped: list[str] = []
        """Members dropped by the wall-clock guard since the last ``take_dropped``."""
        self.malformed = 0
        """Messages on the clock socket that could not be decoded."""
        self._expect: dict[str, dict[str, int]] = {}
        self._sock: zmq.Socket[Any] | None = None
        self._rejoin: dict[str, int] = {}
        """Restarted members and the tick they come back at."""
        self._held: dict[str, Join] = {}
        """Their Joins, held until that tick."""
        self.silent: list[str] = []
        """Members the guard dropped (silent, not known dead), for the launcher to replace."""
        self.waits: list[tuple[str, float]] = []
        """Wall seconds the cell stood still at each rejoin, waiting for a restarted member's
        Join (0 when it was ready in time): the wall-clock cost of a restart."""

    def setup(self) -> None:
        """Bind the clock socket."""
        self._sock = make_socket(self.ctx, zmq.ROUTER)
        self._sock.bind(self.endpoint)

    def wait_for(self, names: Iterable[str], timeout_s: float) -> set[str]:
        """Wait until every name in ``names`` has joined, or ``timeout_s``; return the missing."""
        missing = set(names) - set(self.members)
        deadline = time.monotonic() + timeout_s
        while missing and time.monotonic() < deadline:
            self._poll(int(max(1, (deadline - time.monotonic()) * 1000)), None, {})
            missing -= set(self.members)
        return missing

    def tick(
        self,
        k: int,
        t_ns: int,
        senses: dict[str, Message | None],
        *,
        side: tuple[zmq.Socket[Any], Callable[[], None]] | None = None,
        gone: Callable[[], Iterable[str]] | None = None,
    ) -> dict[str, Done]:
        """Run tick ``k``: send every member its Tick, gather every Done (or drop the silent).

        ``side`` is another socket and its handler, served while the barrier
        waits (the cell host's control socket: a request is answered within
        the tick, not only between ticks). ``gone`` names members known to be
        dead (the launcher's children that exited): asked every
        ``GONE_CHECK_MS`` while waiting, they are dropped at once, so a killed
        process never stands the cell still for the guard.
        """
        sock = self._require()
        expect = self._expect
        for name in sorted(self.members):
            counts = tuple(Count(s, n) for s, n in sorted(expect.get(name, {}).items()) if n)
            tick = Tick(tick=k, t_ns=t_ns, expect=counts, sense=senses.get(name))
            sock.send_multipart([name.encode(), encode(tick)])
        dones: dict[str, Done] = {}
        waiting = set(self.members)
        deadline = time.monotonic() + self.guard_s
        while waiting:
            for name in sorted(waiting & set(gone() if gone is not None else ())):
                self.drop(name)  # its process is dead: no guard to wait out
            waiting &= set(self.members)
            if not waiting:
                break
            before = time.monotonic()
            left = deadline - before
            if left <= 0:
                # answers already queued count: read them before judging anyone silent
                self._poll(0, k, dones, side)
                for name in sorted(waiting - set(dones)):
                    log.warning("clock: %s missed tick %d; dropped from the barrier", name, k)
                    self.members.pop(name, None)
                    self.dropped.append(name)
                    self.silent.append(name)
                break
            wait_ms = min(int(left * 1000) + 1, GONE_CHECK_MS if gone is not None else 1 << 30)
            self._poll(wait_ms, k, dones, side)
            overslept = time.monotonic() - before - wait_ms / 1000
            if overslept > FROZEN_S:
                # this process itself was stopped (SIGSTOP, a suspended VM): the members
                # were not silent for that long, so the guard starts again
                deadline = time.monotonic() + self.guard_s
            waiting -= set(dones)
            waiting &= set(self.members)
        nxt: dict[str, dict[str, int]] = {}
        for sender, done in dones.items():
            for c in done.sent:
                nxt.setdefault(c.peer, {})[sender] = c.n
        self._expect = nxt
        return dones

    def rejoin_at(self, name: str, tick: int) -> None:
        """``name`` (restarted) is let in at ``tick``, not before, and waited for then."""
        self._rejoin[name] = tick
        self._held.pop(name, None)

    def admit(self, k: int, timeout_s: float) -> list[str]:
        """Before tick ``k``: let in the members due back, waiting for their Join; return them.

        One that has not joined within ``timeout_s`` of wall time is given up
        and named in ``silent`` (hung while starting, or frozen: the launcher
        replaces it); it may still join later, the ordinary way.
        """
        due = sorted(n for n, at in self._rejoin.items() if at <= k)
        deadline = time.monotonic() + timeout_s
        back = []
        for name in due:
            start = time.monotonic()
            while name not in self._held and time.monotonic() < deadline:
                self._poll(int(max(1, (deadline - time.monotonic()) * 1000)), None, {})
            self.waits.append((name, round(time.monotonic() - start, 3)))
            del self._rejoin[name]
            join = self._held.pop(name, None)
            if join is None:
                log.error("clock: %s did not come back within %.0f s", name, timeout_s)
                self.silent.append(name)
                continue
            self.members[name] = join.role
            self.joined.append(join)
            back.append(name)
        return back

    def drop(self, name: str) -> None:
        """Take ``name`` out of the barrier now (its process is known to be dead)."""
        if self.members.pop(name, None) is not None:
            log.warning("clock: %s dropped from the barrier (gone)", name)
            self.dropped.append(name)

    def shutdown(self, t_ns: int, reason: str) -> None:
        """Tell every member the run is over, and those held back to rejoin later too."""
        sock = self._require()
        for name in sorted({*self.members, *self._held}):
            sock.send_multipart([name.encode(), encode(Shutdown(t_ns=t_ns, reason=reason))])

    def pending(self) -> list[str]:
        """Names due to (re)join at a later tick that have not been let in yet."""
        return sorted(self._rejoin)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def take_joins(self) -> list[Join]:
        """Joins since the last call."""
        out, self.joined = self.joined, []
        return out

    def take_dropped(self) -> list[str]:
        """Members dropped since the last call."""
        out, self.dropped = self.dropped, []
        return out

    def _require(self) -> zmq.Socket[Any]:
        if self._sock is None:
            raise RuntimeError("ClockServer.setup() was not called")
        return self._sock

    def _poll(
        self,
        timeout_ms: int,
        k: int | None,
        dones: dict[str, Done],
        side: tuple[zmq.Socket[Any], Callable[[], None]] | None = None,
    ) -> None:
        sock = self._require()
        if side is None:
            if not sock.poll(timeout_ms):
                return
        else:
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(side[0], zmq.POLLIN)
            ready = dict(poller.poll(timeout_ms))
            if side[0] in ready:
                side[1]()
            if sock not in ready:
                return
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames, k, dones)

    def _handle(self, frames: list[bytes], k: int | None, dones: dict[str, Done]) -> None:
        sock = self._require()
        ident = frames[0]
        try:
            if len(frames) != 2:
                raise CodecError(f"expected 1 payload frame, got {len(frames) - 1}")
            msg = decode(frames[1])
        except CodecError as exc:
            self.malformed += 1
            log.warning("clock: malformed message from %r: %s", ident, exc)
            sock.send_multipart([ident, encode(ErrorReply(code="malformed", reason=str(exc)))])
            return
        name = ident.decode(errors="replace")
        if isinstance(msg, Join):
            if msg.name != name:
                self.malformed += 1
                why = f"identity {name!r} joined as {msg.name!r}"
                reply = ErrorReply(code="bad_join", reason=why)
                sock.send_multipart([ident, encode(reply)])
                return
            if name in self._rejoin:
                self._held[name] = msg  # restarted: let in at its tick
                return
            self.members[name] = msg.role
            self.joined.append(msg)
            log.info("clock: %s (%s, pid %d) joined", name, msg.role, msg.pid)
        elif isinstance(msg, Done):
            if name in self.members and msg.name == name and msg.tick == k:
                dones[name] = msg
            # a Done for another tick (a late answer after a drop) is stale: ignored
        else:
            self.malformed += 1
            reply = ErrorReply(code="unexpected", reason=f"{msg.TAG} is not a clock message")
            sock.send_multipart([ident, encode(reply)])


class ClockClient:
    """A participant's side of the barrier."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, name: str, *, role: str) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.name = name
        self.role = role
        self._sock: zmq.Socket[Any] | None = None

    def setup(self) -> None:
        """Connect and ask to join the barrier."""
        self._sock = make_socket(self.ctx, zmq.DEALER, identity=self.name)
        self._sock.connect(self.endpoint)
        self._sock.send(encode(Join(name=self.name, role=self.role, pid=os.getpid())))

    def next(self, timeout_s: float) -> Tick | Shutdown | None:
        """The next Tick or Shutdown, or None if the clock said nothing for ``timeout_s``."""
        sock = self._require()
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                return None
            try:
                msg = decode(sock.recv())
            except CodecError as exc:  # only the clock talks here; be loud but keep going
                log.error("%s: malformed message from the clock: %s", self.name, exc)
                continue
            if isinstance(msg, Tick | Shutdown):
                return msg
            if isinstance(msg, ErrorReply):
                log.error("%s: clock refused: %s %s", self.name, msg.code, msg.reason)

    def done(self, tick: int, sent: tuple[Count, ...], act: Message | None) -> None:
        """Close ``tick``; never blocks (with no clock to take it, the Done is dropped)."""
        try:
            self._require().send(
                encode(Done(tick=tick, name=self.name, sent=sent, act=act)), zmq.NOBLOCK
            )
        except zmq.Again:
            log.warning("%s: the clock is not there to take Done %d", self.name, tick)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _require(self) -> zmq.Socket[Any]:
        if self._sock is None:
            raise RuntimeError("ClockClient.setup() was not called")
        return self._sock
