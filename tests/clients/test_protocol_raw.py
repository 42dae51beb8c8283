"""A client written from docs/protocol.md alone: raw pyzmq and msgpack, no lightsout imports.

If this test passes, a program in any language that follows the protocol
page can steer a cell and follow its telemetry. It starts a real cell with
``lightsout run --endpoint ipc://DIR`` and then knows only what the page
says: the socket names under DIR, the message maps and the codes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Cell:
    """A running cell and one DEALER on its control socket."""

    def __init__(self, runs: Path) -> None:
        self.dir = tempfile.mkdtemp(prefix="lo-raw-")
        os.chmod(self.dir, 0o700)  # the directory guards ipc sockets
        self.control = f"ipc://{self.dir}/control.sock"
        self.telemetry = f"ipc://{self.dir}/telemetry.sock"
        self.log = (runs / "cell.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "clients.cli", "run", "cells/assembly.toml"),
                *("--duration", "3600", "--endpoint", f"ipc://{self.dir}"),
                *("--runs-dir", str(runs), "-q"),
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.control)

    def send(self, payload: bytes, *more: bytes) -> None:
        self.sock.send_multipart([payload, *more])

    def receive(self, timeout_s: float = 10.0) -> dict[str, Any]:
        assert self.sock.poll(int(timeout_s * 1000)), "no reply"
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, "a reply is one frame"
        reply = msgpack.unpackb(frames[0], raw=False)
        assert isinstance(reply, dict)
        return reply

    def request(
        self,
        command: str,
        target: str = "",
        action: str = "",
        value: float = 0.0,
        *,
        cmd_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> dict[str, Any]:
        cmd_id = cmd_id or uuid.uuid4().hex
        req = {
            "type": "control_request",
            "v": 1,
            "cmd_id": cmd_id,
            "command": command,
            "target": target,
            "action": action,
            "value": value,
        }
        self.send(msgpack.packb(req))
        while True:  # skip late answers to requests given up on
            reply = self.receive(timeout_s)
            if reply["cmd_id"] == cmd_id:
                return reply

    def robots(self) -> dict[str, str]:
        """Robot name to PackML state, from ``status``."""
        reply = self.request("status")
        return {r["robot"]: r["state"] for r in reply["status"]["robots"]}

    def close(self) -> int:
        try:
            if self.proc.poll() is None:
                self.request("shutdown")
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.sock.close(0)
            self.ctx.term()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def eventually(probe: Any, what: str, timeout_s: float = 60.0) -> Any:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)  # between probes; the deadline bounds the wait
    raise AssertionError(f"timed out waiting for {what}")


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
