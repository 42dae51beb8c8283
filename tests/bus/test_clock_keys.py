"""The clock with participant keys: a name is its key's, and moves only to that key.

Real CURVE sockets over tcp on loopback, in this process (the live attack test
does the same against a whole cell of processes).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.clock import ClockServer
from bus.codec import decode, encode
from bus.endpoints import Endpoints, free_loopback_base
from bus.messages import Count, Done, ErrorReply, Join, Tick
from bus.trust import LiveKeys, NodeKeys, Quota, create_participant, start_zap, stop_zap

OPEN: list[Any] = []


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[ClockServer, Path, zmq.Context[Any]]]:
    keys = tmp_path / "keys"
    for name in ("supervisor", "R1", "R4"):
        create_participant(keys, "cell", name)
    ctx: zmq.Context[Any] = zmq.Context()
    live = LiveKeys(keys, "cell")
    start_zap(ctx, live)
    clock = ClockServer(ctx, Endpoints.from_base(free_loopback_base()).clock, keys=live)
    clock.setup()
    try:
        yield clock, keys, ctx
    finally:
        for sock in OPEN:
            sock.close(0)
        OPEN.clear()
        clock.close()
        stop_zap(ctx)
        ctx.term()


def dealer(ctx: zmq.Context[Any], clock: ClockServer, keys: Path, key: str) -> Any:
    node = NodeKeys.load(keys, "cell", key)
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    node.client(s, node.clock_public)
    s.connect(clock.endpoint)
    OPEN.append(s)
    return s


def test_a_name_is_taken_only_with_its_own_key_and_moves_only_to_it(
    keyed: tuple[ClockServer, Path, zmq.Context[Any]],
) -> None:
    clock, keys, ctx = keyed
    r4 = dealer(ctx, clock, keys, "R4")
    r4.send(encode(Join(name="R1", role="robot", pid=1)))  # another's name: refused
    assert clock.wait_for(["R1"], 1.0) == {"R1"}
    assert r4.poll(2000)
    reply = decode(r4.recv())
    assert isinstance(reply, ErrorReply) and reply.code == "bad_join"
    r4.send(encode(Join(name="R4", role="robot", pid=1)))  # its own: in
    assert clock.wait_for(["R4"], 2.0) == set()
    # a second connection with R4's key takes R4's place (a restart); ticks go there now
    again = dealer(ctx, clock, keys, "R4")
    again.send(encode(Join(name="R4", role="robot", pid=2)))
    deadline = time.monotonic() + 2
    while clock.joined[-1].pid != 2 and time.monotonic() < deadline:
        clock.wait_for(["nobody"], 0.05)
    again.send(encode(Done(tick=0, name="R4", sent=(), act=None)))
    r4.send(encode(Done(tick=0, name="R4", sent=(), act=None)))  # the old connection
    dones = clock.tick(0, 0, {})
    assert set(dones) == {"R4"}
    assert again.poll(2000) and isinstance(decode(again.recv()), Tick)
    got = [decode(r4.recv()) for _ in range(2) if r4.poll(500)]
    assert not any(isinstance(m, Tick) for m in got)
    assert clock.refused >= 1  # the Join as R1 (and the old connection's Done, if it came)


def test_a_done_may_count_messages_to_a_peer_that_is_away(
    keyed: tuple[ClockServer, Path, zmq.Context[Any]],
) -> None:
    clock, keys, ctx = keyed
    sup, r1 = dealer(ctx, clock, keys, "supervisor"), dealer(ctx, clock, keys, "R1")
    sup.send(encode(Join(name="supervisor", role="supervisor", pid=1)))
    r1.send(encode(Join(name="R1", role="robot", pid=2)))
    assert clock.wait_for(["supervisor", "R1"], 2.0) == set()
    clock.drop("R1")  # gone, say; the supervisor does not know yet
    clock.guard_s = 2.0
    sup.send(encode(Done(tick=0, name="supervisor", sent=(Count("R1", 2),), act=None)))
    assert set(clock.tick(0, 0, {})) == {"supervisor"}
    clock.guard_s = 0.3
    sup.send(encode(Done(tick=1, name="supervisor", sent=(Count("R9", 2),), act=None)))
    assert clock.tick(1, 1, {}) == {}
    assert clock.refused == 1  # a peer that never joined: not believed


def test_a_quota_counts_per_sender_and_starts_again_each_window() -> None:
    q = Quota(window_s=60.0, max_senders=2)
    assert [q.take("a") for _ in range(3)] == [1, 2, 3]
    assert q.take("b") == 1
    q.reset()
    assert q.take("a") == 1
    q.take("b")
    assert q.take("c") == 1  # a third sender: the bound starts the count again


def test_a_quota_holds_its_window_while_a_burst_is_still_queued() -> None:
    """A loaded reader that drains a burst over many polls still counts it as one burst."""
    q = Quota(window_s=-1.0)  # every take is past the wall-time window
    assert [q.take("a") for _ in range(3)] == [1, 1, 1]
    q.backlog = True  # the window of the last take goes on
    assert [q.take("a") for _ in range(3)] == [2, 3, 4]
    q.reset()  # a tick still starts a new window
    assert q.take("a") == 1
    q.backlog = False
    assert q.take("a") == 1
