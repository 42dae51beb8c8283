"""docs/protocol.md, rule by rule, against a real cell, with only pyzmq and msgpack.

The client side imports nothing of lightsout (``rawkit`` neither): what these
tests do, a program in any language can do from the protocol page. Where the
page lists words (the codes), the test reads them from the page itself, so a
code the page names and the cell cannot give, or the other way round, fails
here. Kept in step with the page: each test names the section it checks.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.clients.rawkit import (
    ROOT,
    Cell,
    eventually,
    free_tcp_base,
    pack,
    request_map,
    unpack,
)

pytestmark = pytest.mark.slow

DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
ROBOTS = ["R1", "R2", "R3", "R4"]
TOPICS = [b"joints", b"parts", b"events", b"kpis"]


def doc_table(heading: str) -> list[str]:
    """The first column of the table under ``### heading`` in the protocol page."""
    section = DOC.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cell]:
    c = Cell(tmp_path_factory.mktemp("conformance"))
    try:
        c.wait_ready()
        yield c
        # Control, `shutdown`: ok, the run ends and writes its results; Sockets: files removed
        reply = c.request("shutdown")
        assert (reply["ok"], reply["code"]) == (True, "ok")
        assert c.proc.wait(timeout=60) == 0
        assert c.socket_files() == []
        # Errors: the counts outlive the run in kpis.json
        (kpis,) = c.runs.glob("*/kpis.json")
        counts = json.loads(kpis.read_text())["sim"]["control"]
        assert counts["malformed"] > 0 and counts["refused"] > 0, counts
    finally:
        c.close()


class Stream:
    """A telemetry subscriber that notes every ``seq`` it sees, per topic."""

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock
        self.frames: list[tuple[str, dict[str, Any]]] = []
        self.last: dict[str, int] = {}
        self.gaps: list[tuple[str, int, int]] = []

    def take(self, timeout_s: float = 0.0, limit: int = 100_000) -> int:
        """Read what is there (waiting up to ``timeout_s`` for the first); how many."""
        n = 0
        while n < limit and self.sock.poll(int(timeout_s * 1000)):
            frames = self.sock.recv_multipart()
            assert len(frames) == 2, "telemetry is two frames: topic, payload"
            topic, msg = frames[0].decode(), unpack(frames[1])
            if topic in self.last and msg["seq"] != self.last[topic] + 1:
                self.gaps.append((topic, self.last[topic] + 1, msg["seq"]))
            self.last[topic] = msg["seq"]
            self.frames.append((topic, msg))
            n += 1
            timeout_s = 0
        return n

    def until(self, probe: Any, what: str, timeout_s: float = 60.0) -> None:
        eventually(lambda: self.take(0.2) >= 0 and probe(), what, timeout_s)

    def close(self) -> None:
        self.sock.close(0)


# ---------------------------------------------------------------- Sockets and envelopes


def test_a_dealer_gets_one_frame_back(cell: Cell) -> None:
    cell.send(pack(request_map("status")))
    assert cell.receive()["type"] == "control_reply"


def test_a_req_socket_gets_its_answer(cell: Cell) -> None:
    req = cell.ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(cell.control)
    try:
        for _ in range(2):  # REQ's lock-step: send, receive, send again
            fields = request_map("status")
            req.send(pack(fields))
            assert req.poll(10_000), "a REQ client got no answer"
            reply = unpack(req.recv())
            assert (reply["cmd_id"], reply["ok"]) == (fields["cmd_id"], True)
        req.send_multipart([pack(request_map("status")), b"more"])  # a REQ's wrong shape
        assert req.poll(10_000), "a REQ client got no answer to a malformed request"
        assert unpack(req.recv())["code"] == "malformed"
    finally:
        req.close(0)


# ---------------------------------------------------------------- Codes


REACHED: dict[str, str] = {}
"""Code -> the test that got it from the cell."""


def expect(reply: dict[str, Any], code: str, why: str) -> dict[str, Any]:
    assert reply["code"] == code, (why, reply)
    assert reply["ok"] is (code == "ok") and isinstance(reply["reason"], str)
    REACHED.setdefault(code, why)
    return reply


def test_malformed_input_of_every_kind(cell: Cell) -> None:
    cell.send(b"\xc1 not msgpack")
    assert expect(cell.receive(), "malformed", "bad bytes")["cmd_id"] == ""
    cell.send(pack(request_map("status")), b"second frame")
    expect(cell.receive(), "malformed", "two frames")
    fields = request_map("status", colour="red")
    assert expect(cell.ask(fields), "malformed", "unknown field")["cmd_id"] == fields["cmd_id"]
    fields = request_map("status", value="fast")
    expect(cell.ask(fields), "malformed", "wrong type")
    cell.send(pack(request_map("status", target="x" * (1 << 20))))
    assert expect(cell.receive(), "malformed", "over 1 MiB")["cmd_id"] == ""  # never read
    cell.send(pack({"type": "status", "v": 1}))
    expect(cell.receive(), "malformed", "unknown type")


def test_an_unknown_command_is_unknown_command_with_its_id(cell: Cell) -> None:
    fields = request_map("dance")
    reply = expect(cell.ask(fields), "unknown_command", "unknown command")
    assert "dance" in reply["reason"]
    # not remembered: the id may be used again for a request that is understood
    fields["command"] = "status"
    assert cell.ask(fields)["ok"] is True


def test_bad_arguments(cell: Cell) -> None:
    reply = cell.request("status", cmd_id="")
    expect(reply, "bad_argument", "empty cmd_id")
    expect(cell.request("robot", "R1", "Dance"), "bad_argument", "not a PackML command")
    expect(cell.request("pace", "", "slow"), "bad_argument", "not a pace")
    expect(cell.request("order", "", "phone", 1.5), "bad_argument", "not a whole count")
    expect(cell.request("order", "", "car", 1), "bad_argument", "not the product")


def test_unknown_robot(cell: Cell) -> None:
    expect(cell.request("robot", "R9", "Hold"), "unknown_robot", "no such robot")
    expect(cell.request("fault", "R9", "robot_fault", 1.0), "unknown_robot", "fault on no robot")


def test_refused(cell: Cell) -> None:
    reply = expect(cell.request("robot", "R1", "Unhold"), "refused", "Unhold in Execute")
    assert "Execute" in reply["reason"]


def test_paused_while_the_clock_is_paused(cell: Cell) -> None:
    assert cell.request("pace", "", "pause")["ok"]
    try:
        assert cell.status()["pace"] == "paused"
        expect(cell.request("robot", "R1", "Hold"), "paused", "robot while paused")
        expect(cell.request("order", "", "phone", 1), "paused", "order while paused")
        assert cell.request("status")["ok"]  # the host still answers what it knows
    finally:
        assert cell.request("pace", "", "run")["ok"]


def test_unavailable_for_a_robot_that_is_not_answering(cell: Cell) -> None:
    events = Stream(cell.subscriber(b"events"))
    try:
        events.until(lambda: "events" in events.last, "the events topic")
        # a link that loses nearly every message: the supervisor takes R4 for lost
        reply = cell.request("fault", "R4", "message_loss", 30.0, factor=0.999)
        expect(reply, "ok", "message_loss")

        def seen(kind: str) -> bool:
            return any(
                m["kind"] == kind and json.loads(m["data"])["robot"] == "R4"
                for _, m in events.frames
            )

        events.until(lambda: seen("robot_lost"), "R4 taken for lost")
        expect(cell.request("robot", "R4", "Hold"), "unavailable", "a lost robot")
        events.until(lambda: seen("robot_joined"), "R4 heard again", 90)
    finally:
        events.close()


# ---------------------------------------------------------------- Control: commands


def test_status_has_every_documented_field(cell: Cell) -> None:
    status = cell.status()
    assert status["type"] == "cell_status"
    assert set(status) >= {"t_ns", "pace", "rtf", "robots", "refused", "malformed", "dropped"}
    assert [r["robot"] for r in status["robots"]] == ROBOTS
    assert all(isinstance(status[k], int) for k in ("refused", "malformed", "dropped"))


def test_refused_and_malformed_requests_are_counted(cell: Cell) -> None:
    before = cell.status()
    cell.send(b"\xc1")
    cell.receive()
    cell.request("robot", "R9", "Hold")
    cell.request("pace", "", "slow")
    after = cell.status()
    assert after["malformed"] == before["malformed"] + 1
    assert after["refused"] == before["refused"] + 2
    snap = json.loads(cell.request("snapshot")["data"])
    assert (snap["malformed"], snap["refused"]) == (after["malformed"], after["refused"])


def test_a_retry_gets_the_first_answer_even_for_another_command(cell: Cell) -> None:
    cmd_id = uuid.uuid4().hex
    first = cell.request("order", "", "phone", 1, cmd_id=cmd_id)
    assert first["ok"] and json.loads(first["data"])["order"] >= 1
    assert cell.request("order", "", "phone", 1, cmd_id=cmd_id) == first
    assert cell.request("status", cmd_id=cmd_id) == first  # the id is the key


def test_robot_and_cell_commands(cell: Cell) -> None:
    assert cell.request("robot", "R1", "Hold")["ok"]
    eventually(lambda: cell.robots()["R1"] == "Held", "R1 Held")
    assert cell.request("robot", "R1", "Unhold")["ok"]
    eventually(lambda: cell.robots()["R1"] == "Execute", "R1 Execute")
    assert cell.request("cell", "", "Hold")["ok"]
    eventually(lambda: set(cell.robots().values()) == {"Held"}, "every robot Held")
    assert cell.request("cell", "", "Unhold")["ok"]
    eventually(lambda: set(cell.robots().values()) == {"Execute"}, "every robot Execute")


def test_a_refused_start_leaves_a_stopped_robot_stopped(cell: Cell) -> None:
    assert cell.request("robot", "R2", "Stop")["ok"]
    eventually(lambda: cell.robots()["R2"] == "Stopped", "R2 Stopped")
    expect(cell.request("robot", "R2", "Start"), "refused", "Start in Stopped")
    cell.sim_seconds(3)
    assert cell.robots()["R2"] == "Stopped", "a refused Start was carried out anyway"
    assert cell.request("robot", "R2", "Reset")["ok"]  # hands it back: the supervisor starts it
    eventually(lambda: cell.robots()["R2"] == "Execute", "R2 back in Execute")


def test_faults_of_every_live_kind_and_their_arguments(cell: Cell) -> None:
    snap = json.loads(cell.request("snapshot")["data"])
    assert snap["conveyors"] == ["infeed", "outfeed"] and "infeed.end" in snap["sensors"]
    ok = [
        ("R3", "gripper_drop", 0.0, {}),
        ("infeed", "conveyor_jam", 1.0, {}),
        ("infeed.end", "sensor_blackout", 1.0, {}),
        ("R3", "slow_robot", 1.0, {"factor": 1.5}),
        ("R3", "message_loss", 1.0, {"factor": 0.1}),
        ("R3", "robot_fault", 1.0, {}),
    ]
    for target, kind, value, more in ok:
        expect(cell.request("fault", target, kind, value, **more), "ok", kind)
    bad = [
        ("belt", "conveyor_jam", 1.0, {}),
        ("infeed.start", "sensor_blackout", 1.0, {}),
        ("R3", "slow_robot", 1.0, {"factor": 1.0}),
        ("R3", "message_loss", 1.0, {"factor": 1.5}),
        ("R3", "agent_crash", 0.0, {}),
        ("R3", "meteor", 1.0, {}),
        ("R3", "conveyor_jam", 1.0, {"permanent": True}),
        ("infeed", "conveyor_jam", math.inf, {}),
        ("infeed.end", "sensor_blackout", math.nan, {}),
        ("R3", "slow_robot", 1.0, {"factor": math.inf}),
    ]
    for target, kind, value, more in bad:
        expect(cell.request("fault", target, kind, value, **more), "bad_argument", kind)
    eventually(lambda: set(cell.robots().values()) == {"Execute"}, "R3 cleared", 90)


def test_an_operator_clears_a_robot_failed_for_good_with_one_clear(cell: Cell) -> None:
    sub = Stream(cell.subscriber(b"events"))
    try:
        reply = cell.request("fault", "R4", "robot_fault", 0.0, permanent=True)
        assert reply["ok"], reply
        eventually(lambda: cell.robots()["R4"] == "Aborted", "R4 Aborted")
        cell.sim_seconds(2)
        assert cell.robots()["R4"] == "Aborted", "failed for good, but cleared"
        sub.take()
        start = len(sub.frames)
        assert cell.request("robot", "R4", "Clear")["ok"]
        eventually(lambda: cell.robots()["R4"] == "Execute", "R4 back in Execute", 90)
        sub.take(0.5)
        refused = [
            json.loads(m["data"]) for _, m in sub.frames[start:] if m["kind"] == "command_refused"
        ]
        assert [e for e in refused if e.get("robot") == "R4"] == []
    finally:
        sub.close()


def test_pace_values_and_factors(cell: Cell) -> None:
    for factor in (math.inf, -math.inf, math.nan, -1.0, 0.0, 1e300, 1e-300):
        reply = cell.request("pace", "", "realtime", factor)
        expect(reply, "bad_argument", f"realtime {factor}")
    try:
        assert cell.request("pace", "", "realtime", 2.0)["ok"]
        status = cell.status()
        assert (status["pace"], status["rtf"]) == ("realtime x2", 2.0)
        assert cell.request("pace", "", "pause")["ok"]
        status = cell.status()
        assert (status["pace"], status["rtf"]) == ("paused", 2.0)
        t0 = status["t_ns"]
        assert cell.status()["t_ns"] == t0  # paused: sim time stands still
        assert cell.request("pace", "", "run")["ok"]
        assert cell.status()["pace"] == "realtime x2"  # run: the pace before the pause
    finally:
        assert cell.request("pace", "", "fast")["ok"]
    status = cell.status()
    assert (status["pace"], status["rtf"]) == ("fast", 0.0)


# ---------------------------------------------------------------- Telemetry


def test_every_topic_counts_its_seq_with_nobody_subscribed(cell: Cell) -> None:
    first = json.loads(cell.request("snapshot")["data"])["seq"]
    cell.sim_seconds(3)
    then = json.loads(cell.request("snapshot")["data"])["seq"]
    assert set(then) == {t.decode() for t in TOPICS}
    assert first["joints"] >= 0 and first["kpis"] >= 0  # the last made: -1 only before any
    for topic in ("joints", "parts"):  # one a tick: 24 per sim second
        assert then[topic] - first[topic] >= 3 * 24, topic
    assert then["kpis"] >= first["kpis"] + 2  # once per sim second
    # events come as they happen (a quiet cell may log none for a few seconds)
    eventually(
        lambda: json.loads(cell.request("snapshot")["data"])["seq"]["events"] > first["events"],
        "an event counted with nobody subscribed",
    )


def test_a_gap_is_recovered_by_snapshot_with_nothing_lost_or_doubled(cell: Cell) -> None:
    sub = Stream(cell.subscriber(*TOPICS))
    try:
        sub.until(lambda: len(sub.last) == 4, "a message of every topic")
        assert sub.gaps == [], "a subscriber that keeps up loses nothing"
        # miss some: no joints or events for 2 sim seconds
        for topic in (b"joints", b"events"):
            sub.sock.setsockopt(zmq.UNSUBSCRIBE, topic)
        cell.sim_seconds(2)
        for topic in (b"joints", b"events"):
            sub.sock.setsockopt(zmq.SUBSCRIBE, topic)
        sub.until(lambda: {g[0] for g in sub.gaps} >= {"joints", "events"}, "the gaps")
        # recover, as the page says: buffer, snapshot, drop seq <= snapshot.seq, apply the rest
        start = len(sub.frames)
        snap = json.loads(cell.request("snapshot")["data"])
        sub.until(
            lambda: all(
                any(t == topic and m["seq"] > snap["seq"][topic] for t, m in sub.frames[start:])
                for topic in ("joints", "parts", "events", "kpis")
            ),
            "a message after the snapshot on every topic",
            30,
        )
        for topic in ("joints", "parts", "events", "kpis"):
            seqs = [m["seq"] for t, m in sub.frames[start:] if t == topic]
            kept = [s for s in seqs if s > snap["seq"][topic]]
            assert kept[0] == snap["seq"][topic] + 1, (topic, snap["seq"][topic], seqs[:5])
            assert kept == list(range(kept[0], kept[0] + len(kept))), topic
        # the snapshot's state is that of the joints and parts frames numbered snapshot.seq
        for topic in ("joints", "parts"):
            at = [m["t_ns"] for t, m in sub.frames if t == topic and m["seq"] == snap["seq"][topic]]
            assert at in ([], [snap["t_ns"]]), topic
    finally:
        sub.close()


RCVHWM = 50
"""The sleeping subscriber's own receive queue: small, so that a slow (loaded) machine's cell
still overflows the queues in 30 s."""
RCVBUF = 16 * 1024
"""Its socket's receive buffer (bytes), small for the same reason."""
CELL_QUEUE = 250
"""The cell's queue per subscriber, as the page says ("Slow subscribers")."""
OS_SLACK = 300
"""Messages the operating system may buffer between the two (ipc: socket buffers)."""


@pytest.mark.timeout(180)
def test_a_subscriber_that_stops_reading_for_30_s_is_bounded(cell: Cell) -> None:
    """The cell's memory stays flat; the sleeper sees a gap, the one that reads sees none."""
    sleeper = Stream(cell.subscriber(*TOPICS, rcvhwm=RCVHWM, rcvbuf=RCVBUF))
    reader = Stream(cell.subscriber(*TOPICS))
    try:
        for s in (sleeper, reader):
            s.until(lambda s=s: len(s.last) == 4, "a message of every topic")
        dropped0, rss0, t0 = cell.status()["dropped"], cell.rss_kib(), cell.status()["t_ns"]
        rss_max, t_end = rss0, time.monotonic() + 30
        while time.monotonic() < t_end:  # the sleeper reads nothing for 30 s of wall time
            reader.take(0.1, limit=2000)
            rss_max = max(rss_max, cell.rss_kib())
        status = cell.status()
        made = (status["t_ns"] - t0) / 1e9 * 24 * 2  # joints and parts frames alone
        assert made > 2 * (RCVHWM + CELL_QUEUE + OS_SLACK), "too slow a cell to fill a queue"
        assert status["dropped"] > dropped0, "the sleeper's queue never overflowed"
        reader.take(0.5)
        assert reader.gaps == [], "a slow subscriber made another one lose messages"
        grown_mib = (rss_max - rss0) / 1024
        assert grown_mib < 12, f"the cell grew {grown_mib:.1f} MiB for one sleeping subscriber"
        # what the sleeper has waiting is bounded: its own queue, the cell's and the OS's
        assert cell.request("pace", "", "pause")["ok"]
        try:
            queued = sleeper.take(1.0)
            assert queued <= RCVHWM + CELL_QUEUE + OS_SLACK, queued
        finally:
            assert cell.request("pace", "", "run")["ok"]
        sleeper.until(lambda: any(g[0] == "joints" for g in sleeper.gaps), "the sleeper's gap")
        missed = sum(b - a for t, a, b in sleeper.gaps if t == "joints")
        assert missed > 0, "the gap is the messages the sleeper missed"
        snap = json.loads(cell.request("snapshot")["data"])
        assert snap["dropped"] >= status["dropped"]
    finally:
        sleeper.close()
        reader.close()


# ---------------------------------------------------------------- Sockets: cleanup


def test_sigterm_removes_the_socket_files(tmp_path: Path) -> None:
    c = Cell(tmp_path)
    try:
        c.wait_ready()
        assert c.socket_files() == ["clock", "cell", "control", "telemetry"]
        assert c.terminate() == 128 + 15
        assert c.socket_files() == []
    finally:
        c.close()


# ---------------------------------------------------------------- Security: CURVE keys and roles


def test_curve_roles_forbid_and_unknown_keys_hear_nothing(tmp_path: Path) -> None:
    """Keys read from their files as the page describes them (no binding's loader)."""
    keys = tmp_path / "keys"
    for name, role in (("view", "viewer"), ("op", "operator"), ("boss", "admin")):
        argv = [sys.executable, "-m", "clients.cli", "keys", "create", name, "--role", role]
        subprocess.run([*argv, "--dir", str(keys)], cwd=ROOT, check=True, capture_output=True)
    server = keys / "server.key"
    c = Cell(tmp_path, tcp=free_tcp_base(), extra=("--keys", str(keys), "--realtime", "4"))
    try:
        c.use_keys(keys / "view.key_secret", server)
        c.wait_ready()
        assert c.request("status")["ok"] and c.request("snapshot")["ok"]
        expect(c.request("robot", "R1", "Hold"), "forbidden", "a viewer steering")
        sub = Stream(c.subscriber(b"kpis"))
        try:
            sub.until(lambda: "kpis" in sub.last, "a viewer's telemetry")
        finally:
            sub.close()
        c.use_keys(keys / "op.key_secret", server)
        expect(c.request("shutdown"), "forbidden", "an operator ending the run")
        # a key not in roles.toml, and no CURVE at all: never an answer
        public, secret = zmq.curve_keypair()
        stranger = c.ctx.socket(zmq.DEALER)
        plain = c.ctx.socket(zmq.DEALER)
        try:
            stranger.setsockopt(zmq.CURVE_PUBLICKEY, public)
            stranger.setsockopt(zmq.CURVE_SECRETKEY, secret)
            stranger.setsockopt(zmq.CURVE_SERVERKEY, c.curve[zmq.CURVE_SERVERKEY])
            for sock in (stranger, plain):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDTIMEO, 1000)  # the page's advice: a send may wait
                sock.connect(c.control)
                sock.send(pack(request_map("status")))
            assert not stranger.poll(1500) and not plain.poll(100)
        finally:
            stranger.close(0)
            plain.close(0)
        c.use_keys(keys / "boss.key_secret", server)  # an admin may end it (close() does)
    finally:
        assert c.close() == 0


def test_busy_for_a_client_that_sends_too_much_at_once(cell: Cell) -> None:
    """A burst past the per-client cap is answered ``busy``, and past four times the cap not at
    all; then it is served again (the cap counts per tick and per 0.1 s of wall time)."""
    burst = [request_map("status") for _ in range(400)]
    assert cell.request("pace", "", "pause")["ok"]  # no tick restarts the count
    try:
        time.sleep(0.2)  # the burst opens a window of its own
        for fields in burst:
            cell.send(pack(fields))
        replies = []
        while cell.sock.poll(1000):
            replies.append(unpack(cell.sock.recv()))
        busy = [r for r in replies if r["code"] == "busy"]
        assert busy and len(replies) < len(burst)
        expect(busy[0], "busy", "a burst of 200 status requests")
        time.sleep(0.2)
        assert cell.request("status")["ok"]
    finally:
        assert cell.request("pace", "", "run")["ok"]


# ---------------------------------------------------------------- Codes, again


CODE_TESTS = {
    "test_malformed_input_of_every_kind",
    "test_an_unknown_command_is_unknown_command_with_its_id",
    "test_bad_arguments",
    "test_unknown_robot",
    "test_refused",
    "test_paused_while_the_clock_is_paused",
    "test_unavailable_for_a_robot_that_is_not_answering",
    "test_faults_of_every_live_kind_and_their_arguments",
    "test_curve_roles_forbid_and_unknown_keys_hear_nothing",
    "test_busy_for_a_client_that_sends_too_much_at_once",
}
"""The tests that reach the codes (``expect``)."""


def test_every_code_on_the_page_was_reached(request: pytest.FixtureRequest) -> None:
    """Last: each code the page lists came back from the cell in one of the tests above."""
    if not {item.name for item in request.session.items} >= CODE_TESTS:
        pytest.skip("only with every test that reaches a code")
    assert set(doc_table("Codes")) == set(REACHED)
