"""ControlClient against a scripted host: answers, errors, retries and stale replies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bus.codec import encode
from bus.endpoints import Endpoints
from bus.enums import ControlCommand, PackMLCommand
from bus.errors import ConfigError, LightsoutError
from bus.messages import ControlReply, ControlRequest, Join
from clients.control import ControlClient, ControlError, NoAnswer, parse_command
from tests.clients.fakehost import FakeHost, ok


@pytest.fixture
def host(ctx: zmq.Context[Any], endpoints: Endpoints) -> Iterator[FakeHost]:
    h = FakeHost(ctx, endpoints)
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def client(ctx: zmq.Context[Any], base: str) -> Iterator[ControlClient]:
    with ControlClient(base, timeout_s=0.3, retries=2, ctx=ctx) as c:
        yield c


def test_status_is_parsed(host: FakeHost, client: ControlClient) -> None:
    status = client.status()
    assert [r.robot for r in status.robots] == ["R1", "R2", "R3", "R4"]
    assert status.units_completed == 3
    assert host.requests[0].command is ControlCommand.STATUS


def test_each_request_has_a_fresh_hex_id(host: FakeHost, client: ControlClient) -> None:
    client.status()
    client.status()
    a, b = (r.cmd_id for r in host.requests)
    assert a != b
    assert len(a) == 32 and int(a, 16) >= 0


def test_commands_carry_their_arguments(host: FakeHost, client: ControlClient) -> None:
    client.robot("R2", "hold")
    client.cell(PackMLCommand.UNHOLD)
    client.fault("R3", "robot_fault", 4.5)
    client.pace("realtime", 2.0)
    client.order("phone", 7)
    client.shutdown()
    got = [(r.command.value, r.target, r.action, r.value) for r in host.requests]
    assert got == [
        ("robot", "R2", "Hold", 0.0),
        ("cell", "", "Unhold", 0.0),
        ("fault", "R3", "robot_fault", 4.5),
        ("pace", "", "realtime", 2.0),
        ("order", "", "phone", 7.0),
        ("shutdown", "", "", 0.0),
    ]


def test_snapshot_returns_the_json_data(ctx: zmq.Context[Any], endpoints: Endpoints) -> None:
    data = {"t_ns": 5, "robots": {"R1": {"state": "Held"}}, "seq": {"joints": 9}}

    def answer(req: ControlRequest) -> ControlReply:
        return ControlReply(req.cmd_id, True, "ok", "", data=json.dumps(data))

    h = FakeHost(ctx, endpoints, answer)
    h.start()
    try:
        with ControlClient(endpoints.base, timeout_s=1, ctx=ctx) as c:
            assert c.snapshot() == data
    finally:
        h.stop()


def test_a_silent_host_gets_the_same_id_again_and_acts_once(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    seen = 0

    def lossy(req: ControlRequest) -> ControlReply | None:
        nonlocal seen
        seen += 1
        return ok(req) if seen == 3 else None  # the first two answers are "lost"

    h = FakeHost(ctx, endpoints, lossy)
    h.start()
    try:
        with ControlClient(endpoints.base, timeout_s=0.2, retries=2, ctx=ctx) as c:
            reply = c.robot("R1", "hold")
        assert reply.ok
        assert len(h.requests) == 3
        assert len({r.cmd_id for r in h.requests}) == 1
        assert len(h.applied) == 1
    finally:
        h.stop()


def test_a_retry_of_a_done_request_gets_the_first_answer(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    """The host did it but its answer was lost: the retry is answered, not redone."""
    h = FakeHost(ctx, endpoints)
    h.start()
    try:
        with ControlClient(endpoints.base, timeout_s=0.2, retries=1, ctx=ctx) as c:
            sock = c._require()
            req = ControlRequest("feedbeef" * 4, ControlCommand.ROBOT, "R1", "Hold", 0.0)
            for _ in range(2):
                sock.send(encode(req))
                reply = c._wait(req.cmd_id, time.monotonic() + 5)
                assert reply is not None and reply.ok
        assert len(h.requests) == 2 and len(h.applied) == 1
    finally:
        h.stop()


def test_no_answer_at_all_raises_after_every_retry(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    h = FakeHost(ctx, endpoints, lambda req: None)
    h.start()
    try:
        with (
            ControlClient(endpoints.base, timeout_s=0.1, retries=2, ctx=ctx) as c,
            pytest.raises(NoAnswer) as err,
        ):
            c.status()
        assert err.value.code == "timeout"
        assert "3 tries of 0.1 s" in str(err.value)
        assert len(h.requests) == 3
    finally:
        h.stop()


def test_nobody_there_is_no_answer_not_a_hang(ctx: zmq.Context[Any], base: str) -> None:
    with ControlClient(base, timeout_s=0.05, retries=1, ctx=ctx) as c, pytest.raises(NoAnswer):
        c.status()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("unknown_robot", "no robot 'R9'"),
        ("refused", "R1: Hold is not allowed in Stopped"),
        ("forbidden", "a viewer may not send robot"),
        ("bad_argument", "count must be a whole number from 1, got 0"),
    ],
)
def test_an_error_reply_becomes_a_control_error(
    ctx: zmq.Context[Any], endpoints: Endpoints, code: str, reason: str
) -> None:
    h = FakeHost(ctx, endpoints, lambda req: ControlReply(req.cmd_id, False, code, reason))
    h.start()
    try:
        with (
            ControlClient(endpoints.base, timeout_s=1, ctx=ctx) as c,
            pytest.raises(ControlError) as err,
        ):
            c.robot("R9", "hold")
        assert (err.value.code, err.value.reason) == (code, reason)
        assert str(err.value) == f"robot R9 Hold: {reason} ({code})"
        assert isinstance(err.value, LightsoutError)
    finally:
        h.stop()


def test_an_id_less_error_answers_the_request_in_flight(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    """The host could not read the request, so it could not echo the id."""
    h = FakeHost(ctx, endpoints, lambda req: ControlReply("", False, "malformed", "bad"))
    h.start()
    try:
        with (
            ControlClient(endpoints.base, timeout_s=1, ctx=ctx) as c,
            pytest.raises(ControlError, match=r"\(malformed\)"),
        ):
            c.status()
    finally:
        h.stop()


def test_late_answers_to_abandoned_requests_are_dropped(
    host: FakeHost, client: ControlClient
) -> None:
    late = ControlReply("0" * 32, False, "refused", "an answer to an earlier request")
    host.inject([encode(late)])
    assert client.status().units_completed == 3
    assert client.stale == 1


def test_garbage_replies_are_counted_and_skipped(host: FakeHost, client: ControlClient) -> None:
    host.inject([b"\xc1not msgpack"], [b"two", b"frames"], [encode(Join("x", "y", 1))])
    assert client.status().units_completed == 3
    assert client.malformed == 3


def test_a_status_reply_without_status_is_a_protocol_error(
    ctx: zmq.Context[Any], endpoints: Endpoints
) -> None:
    h = FakeHost(ctx, endpoints, lambda req: ControlReply(req.cmd_id, True, "ok", ""))
    h.start()
    try:
        with (
            ControlClient(endpoints.base, timeout_s=1, ctx=ctx) as c,
            pytest.raises(LightsoutError, match="no cell_status"),
        ):
            c.status()
    finally:
        h.stop()


def test_command_names_are_checked_before_sending(host: FakeHost, client: ControlClient) -> None:
    assert parse_command("UnHold") is PackMLCommand.UNHOLD
    with pytest.raises(ConfigError, match="not a PackML command; use one of reset, start"):
        client.robot("R1", "jump")
    assert host.requests == []


def test_a_bad_endpoint_is_a_config_error(ctx: zmq.Context[Any]) -> None:
    with pytest.raises(ConfigError, match="unknown transport"):
        ControlClient("udp://x:1", ctx=ctx)


def test_a_closed_client_says_so(ctx: zmq.Context[Any], base: str) -> None:
    c = ControlClient(base, ctx=ctx)
    c.close()
    with pytest.raises(LightsoutError, match="closed"):
        c.status()
