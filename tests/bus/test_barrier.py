"""The lock-step clock and the causal cell bus, with real zmq sockets."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import zmq

from bus.clock import ClockServer
from bus.codec import decode, encode
from bus.endpoints import Endpoints
from bus.messages import Bid, Envelope, ErrorReply, Message, Tick
from bus.participant import Outbox, run_participant
from bus.sockets import make_socket

_n = 0


@pytest.fixture
def endpoints() -> Endpoints:
    global _n
    _n += 1
    return Endpoints.from_base(f"inproc://test-barrier-{_n}")


class Chatty:
    """Sends a seeded random number of bids to its peers each tick; records what it got."""

    role = "test"

    def __init__(self, name: str, peers: list[str], *, stall_at: int = -1) -> None:
        self.name = name
        self.peers = peers
        self.rng = random.Random(name)
        self.got: list[tuple[int, str, int, int]] = []
        self.stall_at = stall_at
        self.finished = False
        self.release = threading.Event()

    def step(self, tick: Tick, inbox: list[Envelope], out: Outbox) -> Message | None:
        if tick.tick == self.stall_at:
            self.release.wait(5)  # play dead until the test lets go
        for env in inbox:
            assert env.tick == tick.tick - 1, "delivered in the tick after it was sent"
            assert isinstance(env.body, Bid)
            self.got.append((tick.tick, env.src, env.seq, env.body.finish_ns))
        for peer in self.peers:
            for i in range(self.rng.randrange(3)):
                out.send(peer, Bid(op_id="x", robot=self.name, finish_ns=tick.tick * 10 + i))
        return None

    def wake(self) -> int:
        return 0  # every tick

    def finish(self, t_ns: int, reason: str) -> None:
        self.finished = True


def run_cell(ctx: zmq.Context[Any], endpoints: Endpoints, ticks: int) -> dict[str, Chatty]:
    hub = Chatty("supervisor", ["a", "b"])
    spokes = [Chatty("a", ["supervisor"]), Chatty("b", ["supervisor"])]
    clock = ClockServer(ctx, endpoints.clock, guard_s=5)
    clock.setup()
    threads = [
        threading.Thread(target=run_participant, args=(hub, ctx, endpoints), kwargs={"hub": True})
    ]
    threads += [
        threading.Thread(target=run_participant, args=(s, ctx, endpoints), kwargs={"hub": False})
        for s in spokes
    ]
    for t in threads:
        t.start()
    try:
        assert clock.wait_for(["supervisor", "a", "b"], 10) == set()
        for k in range(ticks):
            dones = clock.tick(k, k * 1000, {})
            assert set(dones) == {"supervisor", "a", "b"}
        clock.shutdown(ticks * 1000, "done")
    finally:
        for t in threads:
            t.join(10)
        clock.close()
    return {p.name: p for p in [hub, *spokes]}


def test_every_message_arrives_in_the_next_tick_in_sender_order(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    parts = run_cell(ctx, endpoints, 60)
    hub = parts["supervisor"]
    assert all(p.finished for p in parts.values())
    # the hub heard from both spokes, in (tick, sender, seq) order
    assert hub.got == sorted(hub.got)
    assert {src for _, src, _, _ in hub.got} == {"a", "b"}
    # nothing lost: sequences per sender are gapless
    for src in ("a", "b"):
        seqs = [seq for _, s, seq, _ in hub.got if s == src]
        assert seqs == list(range(len(seqs)))


def test_same_run_twice_gives_same_deliveries(ctx: zmq.Context[Any]) -> None:
    first = run_cell(ctx, Endpoints.from_base("inproc://twice-1"), 40)
    second = run_cell(ctx, Endpoints.from_base("inproc://twice-2"), 40)
    for name in first:
        assert first[name].got == second[name].got


def test_garbage_on_the_cell_socket_gets_an_error_reply(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    hub = Chatty("supervisor", [])
    clock = ClockServer(ctx, endpoints.clock, guard_s=5)
    clock.setup()
    t = threading.Thread(target=run_participant, args=(hub, ctx, endpoints), kwargs={"hub": True})
    t.start()
    rogue = make_socket(ctx, zmq.DEALER, identity="rogue")
    rogue.connect(endpoints.cell)
    try:
        assert clock.wait_for(["supervisor"], 10) == set()
        rogue.send(b"\xc1 not msgpack")
        rogue.send_multipart([b"two", b"frames"])
        forged = Envelope(src="a", dst="supervisor", tick=0, seq=0, body=Bid("x", "a", 1))
        rogue.send(encode(forged))  # claims to be "a" on rogue's connection
        for k in range(5):
            clock.tick(k, k, {})
        replies = []
        while rogue.poll(1000) and len(replies) < 3:
            replies.append(decode(rogue.recv()))
        assert [type(r) for r in replies] == [ErrorReply] * 3
        assert all(isinstance(r, ErrorReply) and r.code == "malformed" for r in replies)
        assert hub.got == []  # the forged bid never reached the logic
        clock.shutdown(5, "done")
    finally:
        t.join(10)
        rogue.close()
        clock.close()
    assert hub.finished


def test_garbage_on_the_clock_socket_is_answered_and_counted(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    clock = ClockServer(ctx, endpoints.clock, guard_s=1)
    clock.setup()
    rogue = make_socket(ctx, zmq.DEALER, identity="rogue")
    rogue.connect(endpoints.clock)
    try:
        rogue.send(b"garbage")
        clock.wait_for(["nobody"], 0.5)
        assert clock.malformed == 1
        assert rogue.poll(2000)
        reply = decode(rogue.recv())
        assert isinstance(reply, ErrorReply)
    finally:
        rogue.close()
        clock.close()


def test_a_silent_member_is_dropped_and_the_clock_goes_on(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    stuck = Chatty("a", [], stall_at=3)
    clock = ClockServer(ctx, endpoints.clock, guard_s=2.0)
    clock.setup()
    t = threading.Thread(
        target=run_participant,
        args=(stuck, ctx, endpoints),
        kwargs={"hub": False, "silence_s": 1.0},
    )
    t.start()
    try:
        assert clock.wait_for(["a"], 10) == set()
        for k in range(3):
            assert set(clock.tick(k, k, {})) == {"a"}
        assert clock.tick(3, 3, {}) == {}
        assert clock.take_dropped() == ["a"]
        assert clock.tick(4, 4, {}) == {}  # no longer waited for
    finally:
        stuck.release.set()
        clock.close()
        t.join(10)
    assert not t.is_alive()
