"""The control subcommands of ``lightsout`` against a scripted host: output, errors, exit codes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from bus.messages import ControlReply, ControlRequest, EventFrame, KpiFrame
from clients.cli import main
from tests.clients.fakehost import FakeHost, FakeTelemetry, ok


def answer(req: ControlRequest) -> ControlReply:
    """Like the real host: unknown robots and foreign products are refused."""
    if req.command is ControlCommand.ROBOT and req.target not in ("R1", "R2", "R3", "R4"):
        return ControlReply(req.cmd_id, False, "unknown_robot", f"no robot {req.target!r}")
    if req.command is ControlCommand.ORDER and req.action != "phone":
        return ControlReply(
            req.cmd_id, False, "bad_argument", f"this cell makes 'phone', not {req.action!r}"
        )
    if req.command is ControlCommand.SNAPSHOT:
        data = {
            "t_ns": 2_000_000_000,
            "pace": "fast",
            "robots": {"R1": {"state": "Held"}},
            "parts": {"frame-0001": {"kind": "frame", "location": "fixture:F1"}},
            "kpis": {},
            "seq": {"joints": 4},
            "refused": 7,
            "malformed": 3,
            "dropped": 0,
        }
        return ControlReply(req.cmd_id, True, "ok", "", data=json.dumps(data))
    if req.command in (ControlCommand.ROBOT, ControlCommand.CELL):
        return ControlReply(req.cmd_id, True, "ok", f"{req.action} accepted")
    return ok(req)


@pytest.fixture
def host(ctx: zmq.Context[Any], endpoints: Endpoints) -> Iterator[FakeHost]:
    h = FakeHost(ctx, endpoints, answer)
    h.start()
    try:
        yield h
    finally:
        h.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_prints_every_robot(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "status", "--endpoint", base)
    assert code == 0 and err == ""
    assert "sim 12.5 s, pace fast: 3 units completed, 2 in progress, ledger balanced" in out
    assert "requests refused 2, malformed 1; telemetry queue overflows (dropped) 5" in out
    for r in ("R1", "R2", "R3", "R4"):
        assert f"{r} " in out


def test_status_json_is_the_cell_status_map(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "--endpoint", base, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["type"] == "cell_status"
    assert [r["robot"] for r in doc["robots"]] == ["R1", "R2", "R3", "R4"]


@pytest.mark.parametrize(
    ("argv", "sent", "printed"),
    [
        (("robot", "R1", "hold"), ("robot", "R1", "Hold", 0.0), "R1: Hold accepted"),
        (("robot", "R2", "UNHOLD"), ("robot", "R2", "Unhold", 0.0), "R2: Unhold accepted"),
        (("cell", "stop"), ("cell", "", "Stop", 0.0), "cell: Stop accepted"),
        (
            ("fault", "inject", "R3", "robot_fault", "--duration", "4"),
            ("fault", "R3", "robot_fault", 4.0),
            "R3: fault done",
        ),
        (
            ("pace", "realtime", "--factor", "2.5"),
            ("pace", "", "realtime", 2.5),
            "clock: pace done",
        ),
        (("pace", "pause"), ("pace", "", "pause", 1.0), "clock: pace done"),
        (("order", "add", "phone", "12"), ("order", "", "phone", 12.0), "orders: order done"),
    ],
)
def test_commands_send_what_they_say(
    host: FakeHost,
    base: str,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    sent: tuple[str, str, str, float],
    printed: str,
) -> None:
    code, out, err = run(capsys, *argv, "--endpoint", base)
    assert (code, err) == (0, "")
    assert out.strip() == printed
    (req,) = host.requests
    assert (req.command.value, req.target, req.action, req.value) == sent
    assert req.permanent is False


def test_a_permanent_robot_fault_is_sent_without_a_duration(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "fault", "inject", "R2", "robot_fault", "--permanent", "--endpoint", base
    )
    assert (code, err, out.strip()) == (0, "", "R2: fault done")
    (req,) = host.requests
    assert (req.target, req.action, req.value, req.permanent) == ("R2", "robot_fault", 0.0, True)


def test_permanent_and_a_duration_together_are_refused(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fault", "inject", "R2", "robot_fault", "--permanent", "--duration", "5"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert host.requests == []


def test_a_command_json_is_the_reply(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "robot", "R1", "hold", "--endpoint", base, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["reason"] == "Hold accepted"


def test_a_refusal_is_one_error_line_and_exit_2(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "robot", "R9", "hold", "--endpoint", base)
    assert code == 2 and out == ""
    assert err == "error: robot R9 Hold: no robot 'R9' (unknown_robot)\n"


def test_a_refusal_with_json_also_prints_the_code(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "order", "add", "widget", "3", "--endpoint", base, "--json")
    assert code == 2
    assert json.loads(out) == {
        "ok": False,
        "code": "bad_argument",
        "reason": "this cell makes 'phone', not 'widget'",
    }
    assert err.count("\n") == 1 and err.startswith("error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("robot", "R1", "jump"), "error: command: jump: not a PackML command; use one of reset,"),
        (("cell", "holdd"), "error: command: holdd: not a PackML command"),
        (("pace", "slow"), "error: pace: slow: not a pace; use one of pause, run, realtime, fast"),
        (
            ("order", "add", "phone", "0"),
            "error: order add: 0: COUNT must be a whole number from 1",
        ),
        (("order", "add", "phone", "2.5"), "error: order add: 2.5: COUNT must be a whole number"),
        (("order", "add", "phone", "many"), "error: order add: many: COUNT must be a whole number"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    host: FakeHost,
    base: str,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = run(capsys, *argv, "--endpoint", base)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert host.requests == []


def test_a_missing_ipc_cell_is_a_clear_error_at_once(
    base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "status", "--endpoint", base + "/nothing-here")
    assert code == 2
    assert err.startswith(f"error: no cell at {base}/nothing-here: ") and "does not exist" in err


def test_a_silent_endpoint_times_out_with_one_line(
    ctx: zmq.Context[Any], endpoints: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    h = FakeHost(ctx, endpoints, lambda req: None)
    h.start()
    try:
        code, _, err = run(
            capsys, "status", "--endpoint", endpoints.base, "--timeout", "0.1", "--retries", "1"
        )
    finally:
        h.stop()
    assert code == 2
    assert (
        err == f"error: status: no answer from {endpoints.control} in 2 tries of 0.1 s (timeout)\n"
    )
    assert len(h.requests) == 2


def test_a_bad_endpoint_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--endpoint", "udp://x:1")
    assert code == 2
    assert (
        err.startswith("error: --endpoint: udp://x:1: unknown transport") and err.count("\n") == 1
    )


def test_snapshot_prints_a_summary_or_the_json(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "snapshot", "--endpoint", base)
    assert code == 0 and "1 live parts (fixture 1)" in out and "Held" in out
    assert "requests refused 7, malformed 3; telemetry queue overflows (dropped) 0" in out
    code, out, _ = run(capsys, "snapshot", "--endpoint", base, "--json")
    assert code == 0 and json.loads(out)["seq"] == {"joints": 4}


def test_watch_prints_lines_and_counts_gaps(
    ctx: zmq.Context[Any], endpoints: Endpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = FakeTelemetry(ctx, endpoints)
    try:

        def feed() -> None:
            pub.wait_subscribed(("events", "kpis"))
            for seq in (0, 1, 4):
                pub.publish(
                    "events",
                    EventFrame(seq, seq * 10**9, "op_done", json.dumps({"op": f"u/{seq}"})),
                )
            pub.publish(
                "kpis", KpiFrame(0, 0, json.dumps({"units_completed": 2, "ledger_balanced": True}))
            )

        t = threading.Thread(target=feed)
        t.start()
        code, out, err = run(
            capsys,
            "watch",
            "--endpoint",
            endpoints.base,
            "--topics",
            "events",
            "kpis",
            "--count",
            "4",
        )
        t.join()
    finally:
        pub.close()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert "events" in lines[0] and "op_done op=u/0" in lines[0]
    assert "kpis" in lines[3] and "units 2 completed" in lines[3]
    assert "gap: events expected #2, got #4" in err
    assert "4 messages, 1 gaps (2 lost), 0 malformed" in err


def test_watch_refuses_an_unknown_topic(
    base: str, capsys: pytest.CaptureFixture[str], endpoints: Endpoints, ctx: zmq.Context[Any]
) -> None:
    pub = FakeTelemetry(ctx, endpoints)
    try:
        code, _, err = run(capsys, "watch", "--endpoint", base, "--topics", "jonts")
    finally:
        pub.close()
    assert code == 2 and err.startswith("error: --topics: jonts: unknown topic 'jonts'")


def test_the_console_wants_a_terminal(base: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "console", "--endpoint", base)
    assert code == 2
    assert err == "error: console needs a terminal; `lightsout watch` prints telemetry as lines\n"


def test_a_count_may_have_leading_zeros(
    host: FakeHost, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "order", "add", "phone", "007", "--endpoint", base)
    assert code == 0 and host.requests[0].value == 7.0
