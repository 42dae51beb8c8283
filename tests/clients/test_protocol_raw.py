"""A client written from docs/protocol.md alone: raw pyzmq and msgpack, no lightsout imports.

If this test passes, a program in any language that follows the protocol
page can steer a cell and follow its telemetry. It starts a real cell with
``lightsout run --endpoint ipc://DIR`` and then knows only what the page
says: the socket names under DIR, the message maps and the codes. The rule
by rule check of the page is ``test_protocol_conformance.py``; both share
``rawkit``, which imports nothing of lightsout either.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from tests.clients.rawkit import Cell, eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cell]:
    c = Cell(tmp_path_factory.mktemp("raw"))
    try:
        eventually(lambda: os.path.exists(c.control[len("ipc://") :]), "the control socket")
        eventually(lambda: set(c.robots().values()) == {"Execute"}, "every robot in Execute", 90)
        yield c
    finally:
        assert c.close() == 0


def test_status_is_a_cell_status_with_every_robot(cell: Cell) -> None:
    cmd_id = uuid.uuid4().hex
    reply = cell.request("status", cmd_id=cmd_id)
    assert reply["type"] == "control_reply" and reply["v"] == 1
    assert reply["cmd_id"] == cmd_id and reply["ok"] is True and reply["code"] == "ok"
    status = reply["status"]
    assert status["type"] == "cell_status"
    assert isinstance(status["t_ns"], int) and status["t_ns"] > 0
    assert status["pace"] == "fast"
    assert [r["robot"] for r in status["robots"]] == ["R1", "R2", "R3", "R4"]
    for r in status["robots"]:
        assert r["type"] == "robot_status"
        assert set(r) >= {"state", "step", "op_id", "holding", "alive", "fault"}


def test_hold_and_unhold_a_robot(cell: Cell) -> None:
    reply = cell.request("robot", "R1", "Hold")
    assert reply["ok"] is True, reply
    eventually(lambda: cell.robots()["R1"] == "Held", "R1 Held")
    reply = cell.request("robot", "R1", "Unhold")
    assert reply["ok"] is True, reply
    eventually(lambda: cell.robots()["R1"] == "Execute", "R1 back in Execute")


def test_a_retry_with_the_same_id_gets_the_first_answer(cell: Cell) -> None:
    cmd_id = uuid.uuid4().hex
    first = cell.request("order", "", "phone", 1, cmd_id=cmd_id)
    again = cell.request("order", "", "phone", 1, cmd_id=cmd_id)
    assert first["ok"] is True and again == first


def test_errors_carry_a_stable_code(cell: Cell) -> None:
    assert cell.request("robot", "R9", "Hold")["code"] == "unknown_robot"
    assert cell.request("robot", "R1", "Dance")["code"] == "bad_argument"
    assert cell.request("pace", "", "slow")["code"] == "bad_argument"
    cell.send(b"\xc1 not msgpack")
    reply = cell.receive()
    assert (reply["ok"], reply["code"], reply["cmd_id"]) == (False, "malformed", "")
    cell.send(msgpack.packb({"type": "control_request", "v": 1}), b"second frame")
    assert cell.receive()["code"] == "malformed"
    assert cell.request("status")["ok"] is True  # and the cell goes on


def test_telemetry_topics_and_gap_detection(cell: Cell) -> None:
    """Per-topic seq counts from 0 and a jump means lost messages; snapshot gives the state."""
    sub = cell.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    last: dict[str, int] = {}
    gaps: list[tuple[str, int, int]] = []
    seen: dict[str, dict[str, Any]] = {}

    def take(timeout_s: float) -> int:
        n = 0
        while sub.poll(int(timeout_s * 1000)):
            frames = sub.recv_multipart()
            assert len(frames) == 2, "telemetry is two frames: topic, payload"
            topic = frames[0].decode()
            msg = msgpack.unpackb(frames[1], raw=False)
            expected = last.get(topic, msg["seq"] - 1) + 1
            if msg["seq"] != expected:
                gaps.append((topic, expected, msg["seq"]))
            last[topic] = msg["seq"]
            seen[topic] = msg
            n += 1
            timeout_s = 0
        return n

    try:
        sub.connect(cell.telemetry)
        for topic in (b"joints", b"parts", b"events", b"kpis"):
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        eventually(lambda: take(0.5) >= 0 and len(seen) == 4, "a message of every topic")
        assert seen["joints"]["type"] == "joints_frame"
        assert [a["robot"] for a in seen["joints"]["arms"]] == ["R1", "R2", "R3", "R4"]
        assert seen["parts"]["type"] == "parts_frame"
        assert len(seen["parts"]["parts"]) == len(seen["parts"]["locations"])
        assert seen["events"]["type"] == "event_frame" and seen["events"]["kind"]
        assert seen["kpis"]["type"] == "kpi_frame" and '"ledger_balanced"' in seen["kpis"]["data"]
        assert gaps == [], "a subscriber that keeps up loses nothing"

        # stop listening to events for a few sim seconds: the host keeps counting them
        before = last["events"]
        sub.setsockopt(zmq.UNSUBSCRIBE, b"events")
        t0 = cell.request("status")["status"]["t_ns"]
        eventually(
            lambda: cell.request("status")["status"]["t_ns"] > t0 + 5_000_000_000,
            "5 s of sim time",
        )
        sub.setsockopt(zmq.SUBSCRIBE, b"events")
        eventually(lambda: take(0.5) >= 0 and last["events"] > before, "events again")
        events_gaps = [g for g in gaps if g[0] == "events"]
        assert len(events_gaps) == 1 and events_gaps[0][1] == before + 1
        assert events_gaps[0][2] > before + 1

        # recover: the snapshot has the state now and the last seq of every topic
        snap = cell.request("snapshot")
        data = json.loads(snap["data"])
        assert set(data) >= {"t_ns", "pace", "robots", "parts", "kpis", "seq"}
        assert data["seq"]["events"] >= last["events"]
        assert set(data["robots"]) == {"R1", "R2", "R3", "R4"}
    finally:
        sub.close(0)
