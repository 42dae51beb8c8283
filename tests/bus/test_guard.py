"""The clock's wall-clock guard: answers already queued count, a dead member is not waited for."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bus.clock import ClockServer
from bus.codec import decode, encode
from bus.messages import Done, Join, Tick
from bus.sockets import make_socket

_n = itertools.count()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.term()


def joined(ctx: zmq.Context[Any], guard_s: float) -> tuple[ClockServer, zmq.Socket[Any]]:
    """A clock with one member ``a`` in its barrier (a bare DEALER, driven by the test)."""
    endpoint = f"inproc://test-guard-{next(_n)}"
    clock = ClockServer(ctx, endpoint, guard_s=guard_s)
    clock.setup()
    sock = make_socket(ctx, zmq.DEALER, identity="a")
    sock.connect(endpoint)
    sock.send(encode(Join(name="a", role="test", pid=1)))
    assert clock.wait_for(["a"], 5) == set()
    return clock, sock


def test_an_answer_queued_when_the_guard_runs_out_is_read_not_dropped(
    ctx: zmq.Context[Any],
) -> None:
    """The clock was kept from reading (here: a slow ``gone`` call) past its guard while
    the member's Done sat in the queue: the member answered in time and stays."""
    clock, sock = joined(ctx, guard_s=0.2)

    def slow() -> list[str]:
        if sock.poll(5000):
            tick = decode(sock.recv())
            assert isinstance(tick, Tick)
            sock.send(encode(Done(tick=tick.tick, name="a", sent=(), act=None)))
            time.sleep(0.5)  # past the guard, before the clock looks at its socket again
        return []

    try:
        dones = clock.tick(0, 0, {}, gone=slow)
        assert set(dones) == {"a"}
        assert clock.dropped == [] and clock.silent == []
        assert "a" in clock.members
    finally:
        sock.close(0)
        clock.close()


def test_a_member_known_dead_is_dropped_without_waiting_out_the_guard(
    ctx: zmq.Context[Any],
) -> None:
    """With a 10-minute guard the tick still ends: ``gone`` says the member is dead."""
    clock, sock = joined(ctx, guard_s=600)
    try:
        assert clock.tick(0, 0, {}, gone=lambda: ["a"]) == {}
        assert clock.dropped == ["a"]
        assert clock.silent == []  # not a silent one for the launcher to replace: a dead one
        assert clock.members == {}
    finally:
        sock.close(0)
        clock.close()


def test_a_silent_member_is_dropped_by_the_guard_and_named_for_replacing(
    ctx: zmq.Context[Any],
) -> None:
    clock, sock = joined(ctx, guard_s=0.2)
    try:
        assert clock.tick(0, 0, {}) == {}
        assert clock.dropped == ["a"] and clock.silent == ["a"]
    finally:
        sock.close(0)
        clock.close()
