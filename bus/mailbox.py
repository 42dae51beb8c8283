"""The cell bus with the causal barrier: deterministic delivery across processes.

The supervisor is the hub (a ROUTER); each agent is a spoke (a DEALER named
after itself). Every message is an ``Envelope`` stamped with the sender's tick
and a per-sender sequence. At tick ``k`` a receiver takes exactly the messages
sent to it during tick ``k-1`` (the clock's ``Tick.expect`` says how many from
whom) and processes them sorted by (sender, sequence). The order of arrival on
the wire never matters, so the same seed gives the same run in one process or
many (DESIGN principle 4).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus.codec import CodecError, decode, encode, non_finite
from bus.messages import Count, Envelope, ErrorReply, Message, Tick
from bus.sockets import make_socket
from bus.trust import HandshakeWatch, LiveKeys, NodeKeys, RateLog, route_id, user_of

log = logging.getLogger(__name__)

MAX_AHEAD = 4
"""Ticks ahead of the receiver an envelope may be stamped (a sender is at most one ahead);
one stamped further is dropped and counted in ``ahead``, never queued."""
MAX_PENDING = 20_000
"""Envelopes held for a later tick, at most; past it they are dropped and counted."""
MAX_PER_POLL = 4096
"""Messages read per pass over the socket, so a flood cannot keep the receiver reading."""
MAX_PER_SENDER_TICK = 512
"""Envelopes taken from one sender for one tick beyond what the barrier promised."""
HELLO = b""
"""The one frame a spoke sends on connecting under CURVE: its route, signed by its key."""


@dataclasses.dataclass(frozen=True, slots=True)
class Impairment:
    """A lossy link to one peer (a ``message_loss`` fault): ``share`` of messages vanish."""

    share: float
    until_tick: int
    """The last tick the link is lossy (exclusive)."""


def lost_on_the_wire(src: str, dst: str, seq: int, share: float) -> bool:
    """Whether message ``seq`` from ``src`` to ``dst`` is lost on an impaired link.

    A hash, not a random generator: the same message is lost in every run, in
    one process or many, so a run with message loss is still reproducible.
    (A cryptographic one: consecutive sequence numbers must not lose in runs.)
    """
    digest = hashlib.blake2b(f"{src}>{dst}#{seq}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


class Mailbox:
    """One participant's end of the cell bus."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        name: str,
        *,
        hub: bool,
        hub_name: str = "supervisor",
        guard_s: float = 10.0,
        node: NodeKeys | None = None,
        live: LiveKeys | None = None,
    ) -> None:
        """``node`` (and, for the hub, ``live``): CURVE, each envelope's src bound to its key."""
        self.ctx = ctx
        self.endpoint = endpoint
        self.name = name
        self.hub = hub
        self.hub_name = hub_name
        self.guard_s = guard_s
        self.tick = 0
        """The tick being processed; stamped on what is sent."""
        self.malformed = 0
        """Undecodable or misaddressed messages received (answered with an ErrorReply)."""
        self.late = 0
        """Messages that arrived after their tick was processed (dropped)."""
        self.missing = 0
        """Messages the barrier promised that never came within the guard."""
        self.peers: set[str] = set()
        """Names heard from (for the hub: the spokes it can address)."""
        self.dropped = 0
        """Messages an impaired link lost (both ways), as the fault injected them."""
        self.gaps: dict[str, int] = {}
        """Per sender: messages missing from its sequence (lost on the way), as the receiver sees."""
        self.refused = 0
        """Envelopes whose src is not the name of the key that sent them (dropped)."""
        self.ahead = 0
        """Envelopes stamped too far ahead, or past the pending bound (dropped)."""
        self.flooded = 0
        """Envelopes past ``MAX_PER_SENDER_TICK`` from one sender in a tick (dropped)."""
        self.node = node
        self.live = live
        self._routes: dict[str, bytes] = {}
        self._backlog: list[tuple[list[bytes], str | None]] = []
        self._warn = RateLog(log)
        self.watch: HandshakeWatch | None = None
        """The hub with keys: connections turned away (watched once the spokes are in)."""
        self._impaired: dict[str, Impairment] = {}
        self._last_seq: dict[str, int] = {}
        self._sock: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        self._handshakes = 0
        self._seq: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._pending: list[Envelope] = []

    def setup(self) -> None:
        """Bind (hub) or connect (spoke), watching for the connections' handshakes."""
        node = self.node
        if self.hub:
            self._sock = make_socket(self.ctx, zmq.ROUTER)
            self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            # a restarted spoke takes its name back: without keys by its identity, with keys
            # only by a message signed with its own key (``_routes``)
            self._sock.setsockopt(zmq.ROUTER_HANDOVER, 0 if node else 1)
            if node is not None:
                node.serve(self._sock)
        elif node is None:
            self._sock = make_socket(self.ctx, zmq.DEALER, identity=self.name)
        else:
            self._sock = make_socket(self.ctx, zmq.DEALER, identity=route_id(self.name))
            node.client(self._sock, node.hub_public)
        if not self.endpoint.startswith("inproc://"):
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        if self.hub:
            self._sock.bind(self.endpoint)
        else:
            self._sock.connect(self.endpoint)
            if node is not None:
                self._sock.send(HELLO)  # queued until the handshake is done

    def wait_connected(self, peers: int, timeout_s: float) -> bool:
        """Wait until ``peers`` connections have completed their handshake; False on timeout.

        A participant joins the clock only once its cell socket is connected:
        a hub sends to a spoke by name, and until the spoke's connection is up
        the message is refused (``ROUTER_MANDATORY``). Left to chance, a
        restarted supervisor (or agent) would lose its first messages or not
        depending on wall-clock timing, and the run would not be reproducible.
        (``inproc`` connects at once; there is nothing to wait for.)
        """
        monitor = self._monitor
        if monitor is None:
            return True
        deadline = time.monotonic() + timeout_s
        if self.hub and self.node is not None:
            self._disable_monitor()
            ok = self._wait_routes(peers, deadline)
            self.watch = HandshakeWatch(self._require())
            return ok
        try:
            while self._handshakes < peers:
                left = deadline - time.monotonic()
                if left <= 0 or not monitor.poll(int(left * 1000) + 1):
                    log.warning(
                        "%s: %d of %d connection(s) up after %.0f s",
                        self.name,
                        self._handshakes,
                        peers,
                        timeout_s,
                    )
                    return False
                event = recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._handshakes += 1
            return True
        finally:
            if self.node is None:  # a keyed spoke keeps watching: see ``rehello``
                self._disable_monitor()

    def rehello(self) -> int:
        """A keyed spoke: say hello again on every new handshake; how many were said.

        Under CURVE the hub learns a spoke's route only from its signed hello. A
        restarted hub (the supervisor, after a crash) waits for every spoke's hello
        before it joins the clock, while the spokes' sockets reconnect to it on their
        own: without a second hello it would wait for ever. Called while the spoke
        waits for the clock (``bus.participant``). A connection gone again before its
        hello could be queued is let be: its next handshake brings another.
        """
        monitor = self._monitor
        if monitor is None or self.hub or self.node is None or self._sock is None:
            return 0
        said = 0
        while monitor.poll(0):
            event = recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                try:
                    self._sock.send(HELLO, zmq.NOBLOCK)
                except zmq.Again:
                    continue
                said += 1
        return said

    def _disable_monitor(self) -> None:
        if self._monitor is not None:
            self._require().disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    def _wait_routes(self, peers: int, deadline: float) -> bool:
        """Under CURVE, the hub waits for ``peers`` spokes' hellos (it addresses them by route)."""
        sock = self._require()
        while len(self._routes) < peers:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                log.warning("%s: %d of %d spoke(s) said hello", self.name, len(self._routes), peers)
                return False
            for frames, user in self._recv(sock):
                if not self._hello(frames, user):
                    self._backlog.append((frames, user))
        return True

    def _recv(self, sock: zmq.Socket[Any]) -> list[tuple[list[bytes], str | None]]:
        """Up to ``MAX_PER_POLL`` messages waiting, with their sender's participant name."""
        out: list[tuple[list[bytes], str | None]] = []
        for _ in range(MAX_PER_POLL):
            try:
                if self.live is None:
                    out.append((sock.recv_multipart(zmq.NOBLOCK), None))
                    continue
                raw = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            out.append(([f.bytes for f in raw], self.live.name(user_of(raw[-1]))))
        return out

    def _hello(self, frames: list[bytes], user: str | None) -> bool:
        """Learn a spoke's route from a hello; whether ``frames`` was one."""
        if len(frames) != 2 or frames[1] != HELLO:
            return False
        if user is None:
            self.refused += 1
            self._warn.warn("hello", "%s: a hello from a key of no participant", self.name)
        else:
            self._routes[user] = frames[0]
        return True

    @property
    def handshakes_failed(self) -> int:
        """Connections to the hub turned away (no key, or a key of no participant)."""
        if self.watch is None:
            return 0
        self.watch.count()
        return self.watch.failed

    def reconnect(self) -> None:
        """Connect a spoke again (its hub was replaced in this process): over ``inproc`` a
        connection does not come back by itself when the socket it went to is gone, as it
        does over ``ipc`` and ``tcp``. What was queued for the old hub is dropped with it,
        as with a hub that died."""
        if self.hub or self._sock is None:
            return
        with contextlib.suppress(zmq.ZMQError):
            self._sock.disconnect(self.endpoint)
        self._sock.connect(self.endpoint)

    def close(self) -> None:
        """Close the socket."""
        if self.watch is not None:
            self.watch.close(self._sock)
            self.watch = None
        if self._monitor is not None:
            self._monitor.close(0)
            self._monitor = None
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def impair(self, peer: str, share: float, until_tick: int) -> None:
        """Lose ``share`` of the messages to and from ``peer`` until ``until_tick``.

        Loss is applied at this end for both directions (a lost message still
        uses up its sequence number, so the other side sees the gap), and the
        barrier counts only what was really sent: a lost message never makes
        anyone wait for it.
        """
        self._impaired[peer] = Impairment(share, until_tick)

    def _lost(self, src: str, dst: str, seq: int, peer: str) -> bool:
        imp = self._impaired.get(peer)
        if imp is None:
            return False
        if self.tick >= imp.until_tick:
            del self._impaired[peer]
            return False
        if not lost_on_the_wire(src, dst, seq, imp.share):
            return False
        self.dropped += 1
        return True

    def send(self, dst: str, body: Message) -> bool:
        """Send ``body`` to ``dst``; False if the hub cannot reach ``dst`` (not counted).

        On an impaired link the message may be lost: then it is not sent, but
        reported sent (as a wire would), and its sequence number is used up.
        """
        sock = self._require()
        seq = self._seq.get(dst, 0)
        if self._lost(self.name, dst, seq, dst):
            self._seq[dst] = seq + 1
            return True
        env = Envelope(src=self.name, dst=dst, tick=self.tick, seq=seq, body=body)
        payload = encode(env)
        try:
            if self.hub:
                sock.send_multipart([self._routes.get(dst, dst.encode()), payload], zmq.NOBLOCK)
            else:
                if dst != self.hub_name:
                    raise ValueError(f"{self.name} can only send to {self.hub_name}, not {dst}")
                sock.send(payload, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.warning("%s: cannot send %s to %s: %s", self.name, body.TAG, dst, exc)
            return False
        self._seq[dst] = seq + 1
        self._sent[dst] = self._sent.get(dst, 0) + 1
        return True

    def take_counts(self) -> tuple[Count, ...]:
        """What was sent to whom this tick, for ``Done.sent``; resets the counts."""
        out = tuple(Count(peer, n) for peer, n in sorted(self._sent.items()))
        self._sent = {}
        return out

    def collect(self, tick: Tick) -> list[Envelope]:
        """The messages sent to us during the previous tick, in deterministic order."""
        self.tick = tick.tick
        want = tick.tick - 1
        need = {c.peer: c.n for c in tick.expect}
        got: dict[str, int] = {}
        batch: list[Envelope] = []
        keep: list[Envelope] = []

        def take(env: Envelope) -> None:
            n = got.get(env.src, 0)
            if n >= max(need.get(env.src, 0), MAX_PER_SENDER_TICK):
                self.flooded += 1
                return
            batch.append(env)
            got[env.src] = n + 1

        for env in self._pending:
            if env.tick == want:
                take(env)
            elif env.tick > want:
                keep.append(env)
            else:
                self.late += 1
        self._pending = keep

        def short() -> bool:
            return any(got.get(s, 0) < n for s, n in need.items())

        sock = self._require()
        deadline = time.monotonic() + self.guard_s
        while True:
            for env in self._drain(sock):
                if env.tick == want:
                    take(env)
                elif env.tick > want + MAX_AHEAD or len(self._pending) >= MAX_PENDING:
                    self.ahead += 1
                    self._warn.warn(
                        "ahead", "%s: envelope for tick %d dropped", self.name, env.tick
                    )
                elif env.tick > want:
                    self._pending.append(env)
                else:
                    self.late += 1
            if not short():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                lost = sum(max(0, n - got.get(s, 0)) for s, n in need.items())
                self.missing += lost
                log.warning("%s: %d message(s) of tick %d never came", self.name, lost, want)
                break
            sock.poll(int(left * 1000) + 1)
        batch.sort(key=lambda e: (e.src, e.seq))
        if self._impaired:
            batch = [e for e in batch if not self._lost(e.src, self.name, e.seq, e.src)]
        self._count_gaps(batch)
        return batch

    def _count_gaps(self, batch: list[Envelope]) -> None:
        """Notice sequence gaps: a sender's messages that never reached us.

        A sequence that starts again from 0 is a restarted sender, not a gap.
        """
        for env in batch:
            last = self._last_seq.get(env.src)
            if last is not None and env.seq > last + 1:
                self.gaps[env.src] = self.gaps.get(env.src, 0) + env.seq - last - 1
            self._last_seq[env.src] = env.seq

    def _drain(self, sock: zmq.Socket[Any]) -> list[Envelope]:
        out: list[Envelope] = []
        got, self._backlog = [*self._backlog, *self._recv(sock)], []
        for frames, user in got:
            if self.hub and self.node is not None and self._hello(frames, user):
                continue
            env = self._check(sock, frames, user)
            if env is not None:
                self.peers.add(env.src)
                out.append(env)
        return out

    def _check(
        self, sock: zmq.Socket[Any], frames: list[bytes], user: str | None = None
    ) -> Envelope | None:
        ident = frames[0] if self.hub else b""
        body = frames[1:] if self.hub else frames
        try:
            if len(body) != 1:
                raise CodecError(f"expected 1 payload frame, got {len(body)}")
            msg = decode(body[0])
            if not isinstance(msg, Envelope):
                raise CodecError(f"expected an envelope, got {msg.TAG}")
            if msg.dst != self.name:
                raise CodecError(f"envelope for {msg.dst[:64]!r} reached {self.name!r}")
            bad = non_finite(msg)
            if bad:
                raise CodecError(f"{bad} is not a finite number")
            if self.hub and self.node is not None:
                if user is None or msg.src != user:
                    self.refused += 1
                    who = user or "a key of no participant"
                    self._warn.warn(
                        "src", "%s: envelope from %r signed by %s", self.name, msg.src[:64], who
                    )
                    return None
                if msg.tick > self.tick + MAX_AHEAD:
                    self.ahead += 1  # before the route moves: a stale sender never steals it
                    return None
                self._routes[user] = ident  # a name's route moves only to its own key
            elif self.hub and msg.src != ident.decode(errors="replace"):
                raise CodecError(f"envelope from {msg.src!r} on connection {ident!r}")
        except CodecError as exc:
            self.malformed += 1
            self._warn.warn("malformed", "%s: malformed message dropped: %s", self.name, exc)
            if self.hub:
                reply = encode(ErrorReply(code="malformed", reason=str(exc)))
                with contextlib.suppress(zmq.ZMQError):
                    sock.send_multipart([ident, reply], zmq.NOBLOCK)
            return None
        return msg

    def _require(self) -> zmq.Socket[Any]:
        if self._sock is None:
            raise RuntimeError("Mailbox.setup() was not called")
        return self._sock
