"""Random well-typed messages with hostile values at every socket, and every CLI number.

Well-typed (they decode), hostile in value: NaN, infinities, 1e300, negatives, huge
strings, unknown names. Each must be refused with a clear reason (or, where it is
harmless, taken), and nothing may raise. The sockets are the real ones (the clock,
the cell bus hub, the cell host's control and telemetry) bound in this process over
``inproc://``; ``max_examples`` is kept modest, the sockets are made once.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.clock import ClockServer
from bus.codec import decode, encode, non_finite
from bus.endpoints import Endpoints
from bus.enums import ControlCommand, OpStatus
from bus.errors import ConfigError
from bus.mailbox import Mailbox
from bus.messages import (
    Bid,
    ControlReply,
    ControlRequest,
    Count,
    Degrade,
    Done,
    Envelope,
    ErrorReply,
    Join,
    Message,
    OpReport,
    Tick,
)
from bus.sockets import make_socket
from sim.host import CellHost
from sim.world import World
from tests.sim.simkit import make_cell

HOSTILE_FLOATS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, -1.0, 0.0, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
HOSTILE_INTS = st.one_of(
    st.sampled_from([-1, 0, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1)
)
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", "../x", "../../etc", "R1", "supervisor", "x" * 200_000, "\x00", "R9"]),
    st.text(max_size=40),
)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Rig:
    """The four kinds of socket, bound once, and one hostile peer for each."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.ep = Endpoints.from_base("inproc://hostile")
        self.world = World(make_cell(), seed=0)
        self.world.setup()
        self.clock = ClockServer(self.ctx, self.ep.clock, guard_s=0.2)
        self.clock.setup()
        self.hub = Mailbox(self.ctx, self.ep.cell, "supervisor", hub=True, guard_s=0.2)
        self.hub.setup()
        self.host = CellHost(self.ctx, self.ep, self.world)
        self.host.setup()
        self.peers = {}
        for name, where, kind in (
            ("clock", self.ep.clock, zmq.DEALER),
            ("cell", self.ep.cell, zmq.DEALER),
            ("control", self.ep.control, zmq.DEALER),
            ("telemetry", self.ep.telemetry, zmq.XSUB),
        ):
            s = make_socket(self.ctx, kind, identity=None if kind == zmq.XSUB else "hostile-peer")
            s.connect(where)
            self.peers[name] = s
        self.k = 0

    def close(self) -> None:
        for s in self.peers.values():
            s.close(0)
        self.host.close()
        self.hub.close()
        self.clock.close()
        self.world.shutdown()
        self.ctx.term()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    r = Rig()
    try:
        yield r
    finally:
        r.close()


pytestmark = pytest.mark.timeout(240)


def _reply(sock: zmq.Socket[Any]) -> Any:
    assert sock.poll(500), "no answer"
    return decode(sock.recv())


@SETTINGS
@given(
    name=HOSTILE_TEXT,
    role=HOSTILE_TEXT,
    pid=HOSTILE_INTS,
    tick=HOSTILE_INTS,
    peer=HOSTILE_TEXT,
    n=HOSTILE_INTS,
    join=st.booleans(),
)
def test_the_clock_refuses_hostile_joins_and_dones_with_a_reason(
    rig: Rig, name: str, role: str, pid: int, tick: int, peer: str, n: int, join: bool
) -> None:
    if name == "hostile-peer":
        name += "!"  # the peer's own name would be a fair join
    msg = (
        Join(name=name, role=role, pid=pid)
        if join
        else Done(tick=tick, name=name, sent=(Count(peer, n),), act=None)
    )
    rig.peers["clock"].send(encode(msg))
    rig.clock.tick(rig.k, 0, {})  # a tick with nobody in it: the per-peer cap starts again
    rig.k += 1
    rig.clock.wait_for(["nobody"], 0.05)  # reads what waits
    reply = _reply(rig.peers["clock"])
    assert isinstance(reply, ErrorReply) and reply.code in ("bad_join", "bad_done")
    assert reply.reason
    assert not rig.clock.members


@SETTINGS
@given(
    cmd_id=HOSTILE_TEXT,
    command=st.sampled_from(list(ControlCommand)),
    target=HOSTILE_TEXT,
    action=HOSTILE_TEXT,
    value=HOSTILE_FLOATS,
    factor=HOSTILE_FLOATS,
    permanent=st.booleans(),
)
def test_the_control_socket_answers_hostile_requests_with_a_code_and_reason(
    rig: Rig,
    cmd_id: str,
    command: ControlCommand,
    target: str,
    action: str,
    value: float,
    factor: float,
    permanent: bool,
) -> None:
    if command is ControlCommand.SHUTDOWN:
        command = ControlCommand.STATUS
    rig.k += 1
    if 0 < len(cmd_id) <= 200:
        cmd_id += f"#{rig.k}"  # a fresh id: an id seen before gets its first answer again
    req = ControlRequest(cmd_id, command, target, action, value, factor, permanent)
    payload = encode(req)
    if len(payload) > 2 << 20:
        return  # past the socket's limit: the connection would be dropped (the live test)
    sock = rig.peers["control"]
    sock.send(payload)
    rig.host.poll(0.5)
    rig.host.held()
    rig.host.paused = False  # a pause is answered once held; run again for the next one
    if cmd_id in rig.host._pending:
        # forwarded to the supervisor (none here): only values it can take get there
        assert abs(value) <= 1e6 and abs(factor) <= 1e6 and len(target) <= 256
    elif sock.poll(1000):
        reply = decode(sock.recv())
        assert isinstance(reply, ControlReply)
        assert reply.ok or (reply.code and reply.reason)
        if reply.ok and command is ControlCommand.PACE and action == "realtime":
            assert 1e-3 <= value <= 1e3
        if reply.ok and command is ControlCommand.FAULT:
            assert math.isfinite(value) and abs(value) <= 1e6
    else:
        raise AssertionError("a request neither answered nor forwarded")
    rig.host.take_requests()
    rig.host.after_advance()  # a tick passes: the per-client cap starts again


@SETTINGS
@given(
    src=HOSTILE_TEXT,
    dst=st.one_of(st.just("supervisor"), HOSTILE_TEXT),
    tick=HOSTILE_INTS,
    seq=HOSTILE_INTS,
    finish=HOSTILE_INTS,
    factor=HOSTILE_FLOATS,
    kind=st.sampled_from(["report", "bid", "degrade"]),
)
def test_the_cell_bus_counts_every_hostile_envelope_it_does_not_deliver(
    rig: Rig, src: str, dst: str, tick: int, seq: int, finish: int, factor: float, kind: str
) -> None:
    body: Message = {
        "report": OpReport(src, src, OpStatus.DONE, src, finish, None),
        "bid": Bid(op_id=src, robot=src, finish_ns=finish),
        "degrade": Degrade(robot=src, factor=factor, until_ns=finish),
    }[kind]
    env = Envelope(src=src, dst=dst, tick=tick, seq=seq, body=body)
    payload = encode(env)
    if len(payload) > 2 << 20:
        return
    hub = rig.hub
    before = hub.malformed + hub.late + hub.ahead + hub.flooded + hub.refused
    pending = len(hub._pending)
    rig.peers["cell"].send(payload)
    rig.k += 1
    got: list[Envelope] = []
    for _ in range(3):  # inproc delivers at once; a few ticks take whatever is due
        got += hub.collect(Tick(tick=rig.k, t_ns=rig.k, expect=(), sense=None))
    after = hub.malformed + hub.late + hub.ahead + hub.flooded + hub.refused
    held = len(hub._pending) - pending
    # delivered (a fair envelope), held for its near tick, or refused and counted
    assert len(got) + held + (after - before) >= 1
    assert len(hub._pending) <= 20_000
    for e in got:
        assert e.src == "hostile-peer" and e.dst == "supervisor"
        assert not non_finite(e)  # a NaN or an infinity never reaches the logic
    while rig.peers["cell"].poll(0):
        assert isinstance(decode(rig.peers["cell"].recv()), ErrorReply)


@SETTINGS
@given(frame=st.binary(max_size=300))
def test_the_telemetry_socket_takes_any_subscription_bytes(rig: Rig, frame: bytes) -> None:
    rig.peers["telemetry"].send(frame)
    rig.host.poll(0.05)
    rig.host.after_advance()  # publishing still works, whatever was subscribed


# ---------------------------------------------------------------- the CLI's numbers

NUMBER_TEXT = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e300", "-1", "0", "1e-300", "1e400", "9" * 400]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=12),
)
OPTIONS = [
    (["run", "c.toml", "--duration"], "duration"),
    (["run", "c.toml", "--seed"], "seed"),
    (["run", "c.toml", "--realtime"], "realtime"),
    (["run", "c.toml", "--chaos"], "chaos"),
    (["audit", "r", "--window"], "window"),
    (["sweep", "c.toml", "--seeds", "1", "--duration"], "duration"),
    (["sweep", "c.toml", "--seeds", "1", "--chaos"], "chaos"),
    (["calibrate", "c.toml", "--drop-rate"], "drop_rate"),
    (["calibrate", "c.toml", "--seeds"], "seeds"),
    (["sim", "c.toml", "--endpoint", "ipc://x", "--duration"], "duration"),
    (["sim", "c.toml", "--endpoint", "ipc://x", "--join-timeout"], "join_timeout"),
    (["fault", "inject", "R1", "robot_fault", "--endpoint", "ipc://x", "--duration"], "duration"),
    (["fault", "inject", "R1", "slow_robot", "--endpoint", "ipc://x", "--factor"], "factor"),
    (["pace", "realtime", "--endpoint", "ipc://x", "--factor"], "factor"),
    (["factory", "run", "f.toml", "--duration"], "duration"),
]


@settings(max_examples=40, deadline=None)
@given(option=st.sampled_from(OPTIONS), text=NUMBER_TEXT)
def test_every_cli_number_is_finite_and_bounded_or_one_clear_error(
    option: tuple[list[str], str], text: str
) -> None:
    from clients.cli import build_parser

    argv, dest = option
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = build_parser().parse_args([*argv[:-1], f"{argv[-1]}={text}"])
    except SystemExit as exc:
        assert exc.code == 2
        err = stderr.getvalue().strip().splitlines()
        assert err and "error: argument" in err[-1]  # one line naming the flag
        return
    value = getattr(args, dest)
    assert math.isfinite(value) and 0 <= value <= 2**32


CELL_NUMBERS = [
    ("cell", "physics_hz"),
    ("cell", "control_hz"),
    ("cell", "heartbeat_s"),
    ("robots", "speed"),
    ("feeders", "interval"),
    ("feeders", "limit"),
    ("parts", "mass"),
]


@settings(max_examples=40, deadline=None)
@given(
    where=st.sampled_from(CELL_NUMBERS),
    value=st.one_of(HOSTILE_FLOATS, HOSTILE_INTS),
)
def test_every_cell_file_number_is_bounded_or_one_error_naming_the_key(
    where: tuple[str, str], value: float
) -> None:
    import tomllib
    from pathlib import Path

    from cells.schema import parse_cell

    data = tomllib.loads((Path(__file__).parents[2] / "cells" / "assembly.toml").read_text())
    table, key = where
    if table == "robots":
        data["robots"][0][key] = value
    elif table == "cell":
        data["cell"][key] = value
    else:
        first = next(iter(data[table]))
        data[table][first][key] = value
    try:
        parse_cell(data, source="hostile.toml")
    except ConfigError as exc:
        assert str(exc).startswith("hostile.toml: ") and key in str(exc)
