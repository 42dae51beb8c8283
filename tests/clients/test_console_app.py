"""The console's loop without a terminal: keys become commands, telemetry becomes the view."""

from __future__ import annotations

import io
import json
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
from rich.console import Console

from bus.endpoints import Endpoints
from bus.enums import ExecStep, PackMLState
from bus.messages import ArmState, ControlRequest, JointsFrame, KpiFrame, Pose3
from clients.console import ConsoleApp, parse_keys
from tests.clients.fakehost import FakeHost, FakeTelemetry

ORIGIN = Pose3(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def test_terminal_bytes_become_key_names() -> None:
    assert parse_keys(b"hj\x1b[A\x1b[Bk\x1bOBq") == ["h", "j", "up", "down", "k", "down", "q"]
    assert parse_keys(b"\x1b") == ["escape"]
    assert parse_keys(b"\x00\x7f") == []


@pytest.fixture
def host(ctx: zmq.Context[Any], endpoints: Endpoints) -> Iterator[FakeHost]:
    h = FakeHost(ctx, endpoints)
    h.start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def app(ctx: zmq.Context[Any], base: str, host: FakeHost) -> Iterator[ConsoleApp]:
    a = ConsoleApp(base, curve=None, fault_duration_s=7.0, fps=12.0, timeout_s=1.0, ctx=ctx)
    a.runner.start()
    try:
        yield a
    finally:
        a.close()


def wait_for(host: FakeHost, pred: Callable[[ControlRequest], bool]) -> ControlRequest:
    return host.wait_request(pred)


def test_h_holds_and_r_resumes_the_cell(app: ConsoleApp, host: FakeHost) -> None:
    app.key("h")
    wait_for(host, lambda r: (r.command.value, r.action) == ("cell", "Hold"))
    app.key("r")
    wait_for(host, lambda r: (r.command.value, r.action) == ("cell", "Unhold"))


def test_f_faults_the_selected_robot(app: ConsoleApp, host: FakeHost) -> None:
    app.model.feed(
        JointsFrame(
            0,
            0,
            tuple(
                ArmState(n, (), (), ORIGIN, ORIGIN, PackMLState.EXECUTE, ExecStep.WAITING, "", "")
                for n in ("R1", "R2", "R3")
            ),
        )
    )
    for k in ("j", "down", "up", "j"):
        app.key(k)
    app.key("f")
    req = wait_for(host, lambda r: r.command.value == "fault")
    assert (req.target, req.action, req.value) == ("R3", "robot_fault", 7.0)


def test_p_pauses_a_running_clock_and_runs_a_paused_one(app: ConsoleApp, host: FakeHost) -> None:
    app.model.pace = "fast"
    app.key("p")
    wait_for(host, lambda r: (r.command.value, r.action) == ("pace", "pause"))
    app.model.pace = "paused"
    app.key("p")
    wait_for(host, lambda r: (r.command.value, r.action) == ("pace", "run"))


def test_answers_reach_the_status_line(app: ConsoleApp, host: FakeHost) -> None:
    app.key("h")
    assert app.model.message == "hold the cell..."
    app.runner.outcomes.put(app.runner.outcomes.get(timeout=5))  # wait for the answer
    app.take_outcomes()
    assert app.model.message == "hold the cell: cell done"


def test_the_loop_redraws_ten_times_a_second_and_quits_on_q(
    ctx: zmq.Context[Any], endpoints: Endpoints, host: FakeHost
) -> None:
    pub = FakeTelemetry(ctx, endpoints)
    app = ConsoleApp(endpoints.base, curve=None, fault_duration_s=1, fps=12, timeout_s=1, ctx=ctx)
    try:
        pub.wait_subscribed(("joints", "kpis"))
        arms = tuple(
            ArmState(f"R{i}", (), (), ORIGIN, ORIGIN, PackMLState.HELD, ExecStep.WAITING, "", "")
            for i in range(1, 13)
        )
        for seq in range(100):
            pub.publish("joints", JointsFrame(seq, seq, arms))
        pub.publish("kpis", KpiFrame(0, 0, json.dumps({"units_completed": 5})))
        keys: queue.Queue[str] = queue.Queue()
        out = io.StringIO()
        con = Console(file=out, width=120, height=50, force_terminal=True)
        start = time.monotonic()
        app.run(con, keys, max_s=1.5)
        took = time.monotonic() - start
        assert app.draws / took >= 10, f"{app.draws} draws in {took:.2f} s"
        assert len(app.model.robots) == 12
        assert app.model.kpis == {"units_completed": 5}
        assert app.sub.received == 101 and app.sub.gap_count == 0
        assert any(r.command.value == "snapshot" for r in host.requests)
        assert any(r.command.value == "status" for r in host.requests)
        keys.put("q")
        start = time.monotonic()
        app.run(con, keys, max_s=10)
        assert time.monotonic() - start < 2
    finally:
        app.close()
        pub.close()
