"""Subscriber against a scripted XPUB: decoding, gaps, malformed frames, latest-only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from bus.codec import encode
from bus.endpoints import Endpoints
from bus.enums import ExecStep, PackMLState
from bus.errors import ConfigError
from bus.messages import (
    TOPICS,
    ArmState,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartPose,
    PartsFrame,
    Pose3,
)
from clients.control import Gap, Subscriber
from tests.clients.fakehost import FakeTelemetry

ORIGIN = Pose3(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def joints(seq: int) -> JointsFrame:
    arm = ArmState(
        "R1", ("j1",), (0.5,), ORIGIN, ORIGIN, PackMLState.EXECUTE, ExecStep.PICK, "op", ""
    )
    return JointsFrame(seq, seq * 41_666_667, (arm,))


def event(seq: int) -> EventFrame:
    return EventFrame(seq, seq, "op_done", '{"kind":"op_done","t_ns":0}')


@pytest.fixture
def pub(ctx: zmq.Context[Any], endpoints: Endpoints) -> Iterator[FakeTelemetry]:
    p = FakeTelemetry(ctx, endpoints)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def sub(ctx: zmq.Context[Any], base: str, pub: FakeTelemetry) -> Iterator[Subscriber]:
    with Subscriber(base, ctx=ctx) as s:
        pub.wait_subscribed(TOPICS)
        yield s


def collect(
    sub: Subscriber, n: int, *, latest: bool = False, timeout_s: float = 5.0
) -> list[Message]:
    """Poll until ``n`` frames have been received (valid or not) or time is up."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while sub.received + sub.malformed < n and time.monotonic() < deadline:
        out += sub.poll(0.05, latest=latest)
    return out


def test_frames_come_back_decoded_in_order(pub: FakeTelemetry, sub: Subscriber) -> None:
    parts = PartsFrame(0, 0, (PartPose("p1", "frame", 1, 2, 3, 0, 0, 0, 1),), ("conveyor:infeed",))
    kpis = KpiFrame(0, 0, '{"units_completed": 1}')
    for topic, msg in (
        ("joints", joints(0)),
        ("parts", parts),
        ("events", event(0)),
        ("kpis", kpis),
    ):
        pub.publish(topic, msg)
    got = collect(sub, 4)
    assert got == [joints(0), parts, event(0), kpis]
    assert sub.gap_count == 0 and sub.malformed == 0


def test_a_seq_jump_is_a_gap(pub: FakeTelemetry, sub: Subscriber) -> None:
    for seq in (0, 1, 2, 5, 6):
        pub.publish("joints", joints(seq))
    got = collect(sub, 5)
    assert [m.seq for m in got if isinstance(m, JointsFrame)] == [0, 1, 2, 5, 6]
    assert list(sub.gaps) == [Gap("joints", 3, 5)]
    assert (sub.gap_count, sub.lost) == (1, 2)
    assert sub.last_seq == {"joints": 6}


def test_a_late_start_is_not_a_gap_and_topics_count_apart(
    pub: FakeTelemetry, sub: Subscriber
) -> None:
    pub.publish("events", event(40))
    pub.publish("joints", joints(7))
    pub.publish("events", event(41))
    pub.publish("joints", joints(8))
    collect(sub, 4)
    assert sub.gap_count == 0
    assert sub.last_seq == {"events": 41, "joints": 8}


def test_a_seq_going_back_is_a_gap_too(pub: FakeTelemetry, sub: Subscriber) -> None:
    """The host restarted: counting starts again, and the viewer must resync."""
    for seq in (10, 11, 0, 1):
        pub.publish("events", event(seq))
    collect(sub, 4)
    assert list(sub.gaps) == [Gap("events", 12, 0)]
    assert sub.lost == 0


def test_malformed_frames_are_counted_never_raised(pub: FakeTelemetry, sub: Subscriber) -> None:
    pub.publish("joints", joints(0))
    pub.send_raw([b"joints"])  # one frame
    pub.send_raw([b"joints", encode(joints(1)), b"extra"])  # three frames
    pub.send_raw([b"joints", b"\xc1\xc1 not msgpack"])
    pub.send_raw([b"joints", encode(event(1))])  # another topic's type
    pub.send_raw(
        [b"kpis", msgpack.packb({"type": "kpi_frame", "v": 1, "seq": 0})]
    )  # fields missing
    pub.send_raw([b"kpis", msgpack.packb([1, 2, 3])])
    pub.send_raw([b"events", msgpack.packb({"type": "event_frame", "v": 1, "seq": True})])
    pub.publish("joints", joints(1))
    got = collect(sub, 9)
    assert got == [joints(0), joints(1)]
    assert sub.malformed == 7
    assert sub.gap_count == 0


def test_latest_keeps_the_newest_full_frame_and_every_event(
    ctx: zmq.Context[Any], base: str
) -> None:
    batch: list[list[bytes]] = []
    for seq in range(10):
        batch.append([b"joints", encode(joints(seq))])
        if seq % 3 == 0:
            batch.append([b"events", encode(event(seq // 3))])
    batch.append([b"joints", b"\xc1"])
    with Subscriber(base, ctx=ctx) as s:
        got = s.take(batch, latest=True)
    assert got == [event(0), event(1), event(2), joints(9), event(3)]  # arrival order
    assert (s.received, s.malformed, s.gap_count) == (14, 1, 0)


def test_latest_over_the_socket_still_ends_on_the_newest(
    pub: FakeTelemetry, sub: Subscriber
) -> None:
    for seq in range(50):
        pub.publish("joints", joints(seq))
    got = collect(sub, 50, latest=True)
    seqs = [m.seq for m in got if isinstance(m, JointsFrame)]
    assert seqs == sorted(seqs) and seqs[-1] == 49
    assert sub.received == 50 and sub.gap_count == 0


def test_only_the_topics_asked_for_arrive(
    ctx: zmq.Context[Any], base: str, pub: FakeTelemetry
) -> None:
    with Subscriber(base, ("events",), ctx=ctx) as s:
        pub.wait_subscribed(("events",))
        pub.publish("joints", joints(0))
        pub.publish("events", event(0))
        assert collect(s, 1) == [event(0)]
        assert s.poll(0.05) == []


def test_unknown_topics_are_a_config_error(ctx: zmq.Context[Any], base: str) -> None:
    with pytest.raises(ConfigError, match="unknown topic 'joint'"):
        Subscriber(base, ("joint",), ctx=ctx)
    with pytest.raises(ConfigError, match="no topic"):
        Subscriber(base, (), ctx=ctx)
