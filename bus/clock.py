"""The clock: the world steps on only when every participant ticked is done.

The clock owner (the sim server) binds a ROUTER; each participant (agents, the
supervisor) connects a DEALER named after itself. At a control tick ``k``:

1. the clock sends ``Tick(k, t, expect, sense)`` to every member ticked now,
   where ``expect`` lists, per sender, how many cell messages that sender
   addressed to this member during tick ``k-1`` (the causal barrier);
2. each member reads exactly those messages, acts, sends its own messages and
   answers ``Done(k, sent, act, wake_ns)``;
3. the clock steps physics to ``t + tick`` and goes on to ``k+1``.

Under the fixed-rate barrier every member is ticked at every tick. Under the event
clock (``due``) a member is ticked only when it must act: its ``wake_ns`` has come, a
peer wrote to it during the tick before, the world has news for it, or it has gone
``max_step_ns`` without a tick. That is the conservative lookahead of Chandy-Misra-Bryant
simulation: no member can be reached by anything before the time it named, so skipping
it changes nothing, and the event log is the one the fixed-rate barrier gives.

A member that does not answer within ``guard_s`` seconds of wall time is
dropped from the barrier (a dead process never freezes the cell); it may join
again with ``Join`` and is included from the next tick. A member the launcher
restarts comes back at a set tick instead (``rejoin_at``): the clock waits for
its ``Join`` there, so how long a restart takes in wall time never shows in
sim time, and a run with killed processes is as reproducible as one without.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import zmq

from bus.codec import CodecError, decode, encode, non_finite
from bus.errors import ConfigError
from bus.messages import Count, Done, ErrorReply, Join, Message, Shutdown, Tick
from bus.security import server_keys
from bus.sockets import make_socket
from bus.trust import (
    PARTICIPANTS,
    HandshakeWatch,
    LiveKeys,
    NodeKeys,
    Quota,
    RateLog,
    route_id,
    safe_name,
    user_of,
)

log = logging.getLogger(__name__)

MAX_PER_POLL = 256
"""Messages read from the clock socket per poll: a flood never keeps the barrier from
looking at its deadline or the control socket."""
MAX_PER_PEER_TICK = 8
"""Messages taken from one connection per tick, and per ``PEER_WINDOW_S`` of wall time (a
Join and a Done need two); past it the rest are dropped unread and counted in ``flooded``."""
PEER_WINDOW_S = 0.1
"""The longest wall-time window the per-connection cap counts over (before the first tick,
or while a tick waits long, a peer is not muted for good)."""
MAX_COUNT = 100_000
"""Most cell messages a ``Done`` may say it sent to one peer in a tick."""
MAX_ROLE = 64
"""Longest ``Join.role``."""
GONE_CHECK_MS = 50
"""While the barrier waits, how often it asks which members are known to be dead."""
FROZEN_S = 2.0
"""A wait that overran its timeout by this much wall time means the clock's own process
was stopped; the guard does not count that time against the members."""


class Local(Protocol):
    """A member stepped on the clock's own thread (``bus.participant.LocalMember``)."""

    name: str
    role: str

    def step(self, tick: Tick) -> Done:
        """Read the tick's messages, act, and answer as a Done sent over the socket would."""

    def finish(self, t_ns: int, reason: str) -> None:
        """The run ended (its Shutdown)."""


class ClockServer:
    """The clock owner's side of the barrier."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        *,
        guard_s: float = 10.0,
        keys: LiveKeys | None = None,
    ) -> None:
        """``keys``: bind as a CURVE server; each name is then bound to its participant key."""
        self.ctx = ctx
        self.endpoint = endpoint
        self.guard_s = guard_s
        self.keys = keys
        self.members: dict[str, str] = {}
        """Members in the barrier: name to role."""
        self.joined: list[Join] = []
        """Joins seen since the last call to ``take_joins`` (for the launcher and the log)."""
        self.dropped: list[str] = []
        """Members dropped by the wall-clock guard since the last ``take_dropped``."""
        self.malformed = 0
        """Messages on the clock socket that could not be decoded."""
        self.refused = 0
        """Well-formed messages refused: a name that is not the sender's key's, a bad count."""
        self.flooded = 0
        """Messages dropped unread: past ``MAX_PER_PEER_TICK`` from one connection in a tick."""
        self._routes: dict[str, bytes] = {}
        """Member name to the routing id of its authenticated connection."""
        self._known: set[str] = set()
        """Every name that ever joined (a Done may count messages to one that is away)."""
        self._quota = Quota(PEER_WINDOW_S)
        self._warn = RateLog(log)
        self.watch: HandshakeWatch | None = None
        """With keys: the connections turned away (no key, an unknown or revoked one)."""
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
        self._wake: dict[str, int] = {}
        """Each member's ``Done.wake_ns`` of its last tick (none yet: due at once)."""
        self._last: dict[str, int] = {}
        """The sim time of each member's last tick."""
        self.opened = 0
        """Ticks sent to members so far (each is one Tick/Done round trip)."""
        self.messages = 0
        """Cell-bus messages the members said they sent, so far."""
        self.max_step_ns = 1 << 62
        """The event clock's longest gap between a member's ticks (the sim server sets it)."""
        self._earliest = 0
        """No member is due before this sim time unless it is owed messages (``due``)."""
        self._local: dict[str, Local] = {}
        """Members on this thread (``attach``): called, not sent a Tick."""
        self.local_errors: list[BaseException] = []
        """What a local member raised (it was dropped then); the launcher re-raises the first."""
        self._frozen: set[str] = set()
        """Local members that will not answer their next tick (``freeze``)."""

    def setup(self) -> None:
        """Bind the clock socket."""
        self._sock = make_socket(self.ctx, zmq.ROUTER)
        if self.keys is not None:
            public, secret = server_keys(self.keys.keys_dir)
            self._sock.curve_secretkey, self._sock.curve_publickey = secret, public
            self._sock.curve_server = True
            self._sock.zap_domain = PARTICIPANTS.encode()
            # a name moves to a new connection only on a Join signed by its own key
            self._sock.setsockopt(zmq.ROUTER_HANDOVER, 0)
            self.watch = HandshakeWatch(self._sock)
        self._sock.bind(self.endpoint)

    def counts(self) -> dict[str, int]:
        """What the clock refused so far (for the run's stats and the cell's snapshot)."""
        if self.watch is not None:
            self.watch.count()
        return {
            "malformed": self.malformed,
            "refused": self.refused,
            "flooded": self.flooded,
            "handshakes_failed": self.watch.failed if self.watch else 0,
            "disconnected": self.watch.disconnected if self.watch else 0,
        }

    def _route(self, name: str) -> bytes:
        return self._routes.get(name, name.encode())

    def attach(self, member: Local) -> None:
        """Let ``member`` in as a member stepped on this thread, as if it had joined.

        A one-process cell over ``inproc`` (``cells.launch``) runs its supervisor and agents
        this way: at each tick the clock calls every due member in turn instead of a
        Tick/Done round trip over the socket to its thread, which cost more than the members'
        own work. Nothing else changes: a member still reads exactly the messages sent to it
        during the tick before (``Mailbox.collect`` takes only those), so calling the due
        members one after another gives the event log that running them at once does. One
        due back at a set tick (``rejoin_at``: a robot built in the cell) waits until then.
        """
        name = member.name
        self._local[name] = member
        self._known.add(name)
        join = Join(name=name, role=member.role, pid=os.getpid())
        if name in self._rejoin:
            self._held[name] = join
            return
        self.members[name] = member.role
        self._fresh(name)
        self.joined.append(join)
        log.info("clock: %s (%s) joined, stepped on the clock's thread", name, member.role)

    def detach(self, name: str) -> Local | None:
        """Take local member ``name`` away (killed in the launcher's stead: ``cells.residents``),
        out of the barrier, and out of the held-back ones; the member, or None."""
        member = self._local.pop(name, None)
        self._held.pop(name, None)
        self._frozen.discard(name)
        self.drop(name)
        return member

    def freeze(self, name: str) -> None:
        """Local member ``name`` stands still as a stopped process does: ticked at the next tick
        (``poke``), it does not answer, and is dropped then as the guard drops a silent
        member (named in ``silent``, for the launcher to replace). The guard's wall-time
        wait is not stood: it changes nothing in sim time."""
        if name in self._local:
            self._frozen.add(name)
            self.poke(name)

    def _step_local(self, name: str, tick: Tick, dones: dict[str, Done]) -> None:
        """Step local member ``name``; one that raises is dropped, as a crashed thread is."""
        if name in self._frozen:
            log.warning("clock: %s missed tick %d; dropped from the barrier", name, tick.tick)
            self._frozen.discard(name)
            self.members.pop(name, None)
            self.dropped.append(name)
            self.silent.append(name)
            return
        try:
            dones[name] = self._local[name].step(tick)
        except Exception as exc:  # a member's bug must not take the clock down with it
            log.exception("clock: %s failed at tick %d; dropped from the barrier", name, tick.tick)
            self.local_errors.append(exc)
            del self._local[name]
            self.drop(name)

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
        only: set[str] | None = None,
    ) -> dict[str, Done]:
        """Run tick ``k``: send every member its Tick, gather every Done (or drop the silent).

        ``only`` (the event clock): tick just these members, and those owed messages; the
        rest sit this tick out.

        ``side`` is another socket and its handler, served while the barrier
        waits (the cell host's control socket: a request is answered within
        the tick, not only between ticks). ``gone`` names members known to be
        dead (the launcher's children that exited): asked every
        ``GONE_CHECK_MS`` while waiting, they are dropped at once, so a killed
        process never stands the cell still for the guard.
        """
        sock = self._require()
        expect = self._expect
        self._quota.reset()
        targets = set(self.members)
        if only is not None:
            # whoever is owed messages is ticked now: they are stamped for this tick only
            targets &= {*only, *self.owed()}
        local: list[tuple[str, Tick]] = []
        for name in sorted(targets):
            counts = tuple(Count(s, n) for s, n in sorted(expect.get(name, {}).items()) if n)
            tick = Tick(tick=k, t_ns=t_ns, expect=counts, sense=senses.get(name))
            if name in self._local:
                local.append((name, tick))
            else:
                sock.send_multipart([self._route(name), encode(tick)])
        self.opened += len(targets)
        dones: dict[str, Done] = {}
        for name, tick in local:  # while the others (processes) work on theirs
            self._step_local(name, tick, dones)
        waiting = set(targets) - set(self._local)  # a local one dropped is not a member
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
                self.messages += c.n
            self._wake[sender], self._last[sender] = done.wake_ns, t_ns
        self._expect = nxt
        self._earliest = min(
            (
                min(self._wake.get(n, 0), self._last[n] + self.max_step_ns)
                if n in self._last
                else 0
                for n in self.members
            ),
            default=0,
        )
        return dones

    def skip(self) -> None:
        """Nobody was ticked at this tick (the event clock jumped over it): what was owed then
        to a member away from the barrier is not owed at any later tick."""
        self._expect = {}

    def next_due_ns(self) -> int:
        """The earliest sim time a member will be due without a message reaching it (its wake
        time, or ``max_step_ns`` after its last tick); 0 if one is owed or due at once."""
        if self._expect or self._rejoin:
            return 0
        return self._earliest

    def owed(self) -> set[str]:
        """Members that cell messages were sent to during the last tick."""
        return {n for n, counts in self._expect.items() if any(counts.values())}

    def due(self, t_ns: int) -> set[str]:
        """The members the event clock must tick at ``t_ns``: those owed messages, those whose
        wake time has come, those new to the barrier, and any not ticked for ``max_step_ns``."""
        max_step_ns = self.max_step_ns
        if not self._expect and t_ns < self._earliest:
            return set()  # the common case of a jump: nobody is due, and nothing is owed
        owed = self.owed()
        out = set()
        for name in self.members:
            last = self._last.get(name)
            if (
                name in owed
                or last is None
                or self._wake.get(name, 0) <= t_ns
                or t_ns - last >= max_step_ns
            ):
                out.add(name)
        return out

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
            self._fresh(name)
            self.joined.append(join)
            back.append(name)
        return back

    def poke(self, name: str) -> None:
        """Tick ``name`` at the next tick whatever it said (the launcher froze its process: the
        cell stands still for it then, as under the fixed-rate barrier)."""
        if name in self._wake:
            self._wake[name] = 0
            self._earliest = 0

    def _fresh(self, name: str) -> None:
        """A member (back) in the barrier is ticked at the next tick, whatever it said before."""
        self._wake.pop(name, None)
        self._last.pop(name, None)
        self._earliest = 0

    def drop(self, name: str) -> None:
        """Take ``name`` out of the barrier now (its process is known to be dead)."""
        if self.members.pop(name, None) is not None:
            log.warning("clock: %s dropped from the barrier (gone)", name)
            self.dropped.append(name)

    def shutdown(self, t_ns: int, reason: str) -> None:
        """Tell every member the run is over, and those held back to rejoin later too."""
        sock = self._require()
        for name in sorted({*self.members, *self._held}):
            if name in self._local:
                self._local.pop(name).finish(t_ns, reason)
                continue
            sock.send_multipart([self._route(name), encode(Shutdown(t_ns=t_ns, reason=reason))])

    def pending(self) -> list[str]:
        """Names due to (re)join at a later tick that have not been let in yet."""
        return sorted(self._rejoin)

    def close(self) -> None:
        """Close the socket."""
        if self.watch is not None:
            self.watch.close(self._sock)
            self.watch = None
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
        for _ in range(MAX_PER_POLL):
            try:
                if self.keys is None:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                    user = None
                else:
                    raw = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    frames, user = [f.bytes for f in raw], self.keys.name(user_of(raw[-1]))
            except zmq.Again:
                return
            self._handle(frames, k, dones, user)

    def _refuse(self, ident: bytes, code: str, why: str, *, malformed: bool = False) -> None:
        """Count, log (rate-limited) and answer a refused message."""
        if malformed:
            self.malformed += 1
        else:
            self.refused += 1
        self._warn.warn(code, "clock: %s from %r: %s", code, ident[:80], why)
        reply = encode(ErrorReply(code=code, reason=why[:200]))
        with contextlib.suppress(zmq.ZMQError):
            self._require().send_multipart([ident, reply], zmq.NOBLOCK)

    def _handle(
        self, frames: list[bytes], k: int | None, dones: dict[str, Done], user: str | None
    ) -> None:
        ident = frames[0]
        if self._quota.take(ident) > MAX_PER_PEER_TICK:
            self.flooded += 1
            return
        try:
            if len(frames) != 2:
                raise CodecError(f"expected 1 payload frame, got {len(frames) - 1}")
            msg = decode(frames[1])
        except CodecError as exc:
            self._refuse(ident, "malformed", str(exc), malformed=True)
            return
        # with keys, a connection's name is its key's; without, its identity (ipc, inproc)
        name = user if self.keys is not None else ident.decode(errors="replace")
        if isinstance(msg, Join):
            if name is None or msg.name != name:
                why = f"{'a key of no participant' if name is None else name!r} joined as "
                self._refuse(ident, "bad_join", f"{why}{msg.name[:64]!r}")
                return
            if not _join_ok(msg):
                self._refuse(ident, "bad_join", "a Join's name or role is not a safe name")
                return
            self._routes[name] = ident  # handover: only ever to a connection with this key
            self._known.add(name)
            if name in self._rejoin:
                self._held[name] = msg  # restarted: let in at its tick
                return
            self.members[name] = msg.role
            self._fresh(name)
            self.joined.append(msg)
            log.info("clock: %s (%s, pid %d) joined", name, msg.role, msg.pid)
        elif isinstance(msg, Done):
            if name is None or msg.name != name or self._routes.get(name, ident) != ident:
                self._refuse(ident, "bad_done", f"a Done for {msg.name[:64]!r} from another key")
                return
            problem = self._check_sent(msg) or _finite(msg)
            if problem:
                self._refuse(ident, "bad_done", problem)
                return
            if name in self.members and msg.tick == k:
                dones[name] = msg
            # a Done for another tick (a late answer after a drop) is stale: ignored
        else:
            self._refuse(ident, "unexpected", f"{msg.TAG} is not a clock message", malformed=True)

    def _check_sent(self, done: Done) -> str:
        """Why ``done.sent`` cannot be believed, or "": counts are what receivers wait for."""
        # a peer may be away (dropped, restarting) and still be written to: any name that
        # ever joined, or is due back, is one; the counts are bounded by the participants
        known = self._known
        if len(done.sent) > len(known) + len(self._rejoin) + 1:
            return f"sent lists {len(done.sent)} peers; the cell has {len(known)}"
        for c in done.sent:
            if not 0 <= c.n <= MAX_COUNT:
                return f"sent {c.n} to {c.peer[:64]!r}: counts are 0 to {MAX_COUNT}"
            if c.peer not in known and c.peer not in self._rejoin:
                return f"sent to {c.peer[:64]!r}, who never joined the barrier"
        return ""


def _finite(done: Done) -> str:
    bad = non_finite(done)
    return f"{bad} is not a finite number" if bad else ""


def _join_ok(join: Join) -> bool:
    try:
        safe_name(join.name, "a participant name")
    except ConfigError:
        return False
    return 0 < len(join.role) <= MAX_ROLE and join.role.isidentifier()


class ClockClient:
    """A participant's side of the barrier."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        name: str,
        *,
        role: str,
        keys: NodeKeys | None = None,
    ) -> None:
        """``keys``: connect as a CURVE client with this participant's own key pair."""
        self.ctx = ctx
        self.endpoint = endpoint
        self.name = name
        self.role = role
        self.keys = keys
        self._sock: zmq.Socket[Any] | None = None

    def setup(self) -> None:
        """Connect and ask to join the barrier."""
        if self.keys is None:
            self._sock = make_socket(self.ctx, zmq.DEALER, identity=self.name)
        else:
            self._sock = make_socket(self.ctx, zmq.DEALER, identity=route_id(self.name))
            self.keys.client(self._sock, self.keys.clock_public)
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

    def done(
        self, tick: int, sent: tuple[Count, ...], act: Message | None, wake_ns: int = 0
    ) -> None:
        """Close ``tick``, saying when we must be ticked again (``wake_ns``, 0: next tick);
        never blocks (with no clock to take it, the Done is dropped)."""
        try:
            done = Done(tick=tick, name=self.name, sent=sent, act=act, wake_ns=wake_ns)
            self._require().send(encode(done), zmq.NOBLOCK)
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
