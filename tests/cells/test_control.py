"""The control endpoint of a running cell: commands work, garbage is refused, nothing is lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.codec import MAX_PAYLOAD, decode, encode
from bus.endpoints import Endpoints, private_ipc_base
from bus.enums import ControlCommand
from bus.messages import ControlReply, ControlRequest
from bus.simtime import NS
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]


class Cell:
    """A cell running in a thread over ipc, with a DEALER on its control socket."""

    def __init__(self, out: Path) -> None:
        self.base = private_ipc_base()
        self.ends = Endpoints.from_base(self.base)
        self.kpis: dict[str, Any] = {}
        cell = load_cell(ROOT / "cells" / "assembly.toml")
        opts = RunOptions(seed=4, duration_s=3600, endpoint=self.base)
        self.thread = threading.Thread(target=lambda: self.kpis.update(run_cell(cell, out, opts)))
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)

    def __enter__(self) -> Cell:
        self.thread.start()
        self.sock.connect(self.ends.control)
        return self

    def __exit__(self, *exc: object) -> None:
        self.request(ControlCommand.SHUTDOWN)
        self.thread.join(120)
        self.sock.close()
        self.ctx.term()

    def raw(self, frames: list[bytes], timeout_s: float = 30.0) -> ControlReply:
        self.sock.send_multipart(frames)
        assert self.sock.poll(int(timeout_s * 1000)), "no reply"
        got = self.sock.recv_multipart()
        # frames that look like a REQ's (an empty delimiter first) are answered in kind
        assert got[:-1] == ([b""] if len(frames) >= 2 and frames[0] == b"" else [])
        reply = decode(got[-1])
        assert isinstance(reply, ControlReply)
        return reply

    def request(
        self, command: ControlCommand, target: str = "", action: str = "", value: float = 0.0
    ) -> ControlReply:
        req = ControlRequest(uuid.uuid4().hex, command, target, action, value)
        for pause in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
            reply = self.raw([encode(req)])
            if reply.code != "busy":  # asked too often in one tick: back off, ask again
                return reply
            time.sleep(pause)
        return reply


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cell]:
    with Cell(tmp_path_factory.mktemp("control")) as c:
        yield c


def test_status_lists_every_robot(cell: Cell) -> None:
    reply = cell.request(ControlCommand.STATUS)
    assert reply.ok and reply.status is not None
    assert [r.robot for r in reply.status.robots] == ["R1", "R2", "R3", "R4"]


def test_a_retried_command_is_answered_once_and_done_once(cell: Cell) -> None:
    req = ControlRequest(uuid.uuid4().hex, ControlCommand.ORDER, "", "phone", 2)
    first = cell.raw([encode(req)])
    again = cell.raw([encode(req)])
    assert first == again and first.ok
    snap = cell.request(ControlCommand.SNAPSHOT)
    assert snap.ok


BAD_FIELDS = st.fixed_dictionaries(
    {"type": st.just("control_request"), "v": st.just(1)},
    optional={
        "cmd_id": st.one_of(st.integers(-(2**63), 2**63 - 1), st.none(), st.text(max_size=5)),
        "command": st.one_of(
            st.text(max_size=12),
            st.integers(-(2**31), 2**31),
            st.sampled_from(["status", "explode"]),
        ),
        "target": st.one_of(st.text(max_size=5), st.floats()),
        "action": st.one_of(
            st.text(max_size=8), st.lists(st.integers(-(2**31), 2**31), max_size=2)
        ),
        "value": st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans()),
        "extra": st.integers(-(2**63), 2**63 - 1),
    },
).map(lambda d: [msgpack.packb(d)])

GARBAGE = st.one_of(
    st.binary(max_size=64).map(lambda b: [b]),
    st.lists(st.binary(max_size=8), min_size=2, max_size=4),
    BAD_FIELDS,
    st.sampled_from(["robot", "cell", "pace", "fault", "order"]).flatmap(
        lambda c: st.tuples(st.text(max_size=6), st.text(max_size=10), st.floats(-5, 5)).map(
            lambda t: [
                encode(ControlRequest(uuid.uuid4().hex, ControlCommand(c), t[0], t[1], t[2]))
            ]
        )
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=GARBAGE)
def test_malformed_requests_get_an_error_reply(cell: Cell, frames: list[bytes]) -> None:
    reply = cell.raw(frames)
    if not reply.ok:
        assert reply.code in {
            "malformed",
            "bad_argument",
            "unknown_robot",
            "unknown_command",
            "refused",
            "unavailable",
            "paused",
        }
        assert reply.reason


def test_oversize_payload_is_refused(cell: Cell) -> None:
    reply = cell.raw([b"\x00" * (MAX_PAYLOAD + 1)])
    assert (reply.ok, reply.code) == (False, "malformed")


def test_after_all_that_the_cell_still_produces_and_the_ledger_balances(cell: Cell) -> None:
    # whatever the fuzzing did, run the clock and bring every robot back, then watch it work
    assert cell.request(ControlCommand.PACE, action="fast").ok
    cell.request(ControlCommand.CELL, action="Clear")
    cell.request(ControlCommand.CELL, action="Unhold")
    cell.request(ControlCommand.CELL, action="Reset")
    cell.request(ControlCommand.CELL, action="Start")
    start = cell.request(ControlCommand.STATUS).status
    assert start is not None
    # two more units within 120 s of sim time (a unit takes about 25 s): not forever
    give_up_ns = start.t_ns + 120 * NS
    st_ = start
    while st_.units_completed < start.units_completed + 2:
        assert st_.t_ns < give_up_ns, (
            f"{st_.units_completed - start.units_completed} units in 120 s"
        )
        polled = cell.request(ControlCommand.STATUS).status
        assert polled is not None
        st_ = polled
    assert st_.ledger_balanced
