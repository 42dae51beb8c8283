"""The event clock in a real run: it jumps, and a live Hold still takes effect at once.

One assembly run in a thread over ipc, under the default ``sync = "event"``. While it
runs, a Hold is sent to a robot that is executing, through the real control client; the
event log then says when the supervisor took the request and when the robot went to
Holding, both in sim time. The clock must have been jumping meanwhile (far fewer
Tick/Done round trips than ticks times members), and the Hold must have reached the
robot within ``max_step_s`` of sim time.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bus.endpoints import private_ipc_base
from bus.enums import PackMLState
from bus.simtime import NS
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.control import ControlClient

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 60.0
ROBOT = "R2"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run, a Hold of ``ROBOT`` sent while it executes, then its Unhold."""
    out = tmp_path_factory.mktemp("event-clock")
    cell = load_cell(ROOT / "cells" / "assembly.toml")
    assert cell.sync == "event", "the event clock is the default"
    base = private_ipc_base()
    kpis: dict[str, Any] = {}
    opts = RunOptions(seed=2, duration_s=DURATION_S, endpoint=base)
    thread = threading.Thread(target=lambda: kpis.update(run_cell(cell, out, opts)))
    thread.start()
    sent: dict[str, Any] = {}
    try:
        with ControlClient(base, timeout_s=30) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                st = client.status()
                r = next(x for x in st.robots if x.robot == ROBOT)
                if st.t_ns > 10 * NS and r.state is PackMLState.EXECUTE and r.op_id:
                    break
                time.sleep(0.005)
            else:
                pytest.fail(f"{ROBOT} never ran an operation")
            sent["op"] = r.op_id
            assert client.robot(ROBOT, "hold").ok
            deadline = time.monotonic() + 60  # Holding takes a moment of sim time to be Held
            while time.monotonic() < deadline:
                st = client.status()
                if next(x for x in st.robots if x.robot == ROBOT).state is PackMLState.HELD:
                    break
                time.sleep(0.005)
            assert client.robot(ROBOT, "unhold").ok
    finally:
        thread.join(300)
    lines = (out / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return {"kpis": kpis, "events": [json.loads(x) for x in lines], "sent": sent, "cell": cell}


def test_the_clock_jumps(run: dict[str, Any]) -> None:
    sim = run["kpis"]["sim"]
    members = len(run["cell"].robots) + 1
    assert sim["sync"] == "event"
    # a fixed-rate barrier does ticks x members round trips; this one far fewer
    assert sim["round_trips"] < sim["ticks"] * members / 3, sim
    assert sim["opened_ticks"] < sim["ticks"], sim


def test_a_live_hold_reaches_the_robot_within_max_step(run: dict[str, Any]) -> None:
    events = run["events"]
    asked = [
        e
        for e in events
        if e["kind"] == "control" and e["target"] == ROBOT and e["action"] == "Hold"
    ]
    assert len(asked) == 1, asked
    t_asked = asked[0]["t_ns"]
    held = [
        e
        for e in events
        if e["kind"] == "robot_state"
        and e["robot"] == ROBOT
        and e["dst"] == PackMLState.HOLDING.value
        and e["t_ns"] >= t_asked
    ]
    assert held, "the robot never went to Holding"
    lag_s = (held[0]["t_ns"] - t_asked) / NS
    assert lag_s <= run["cell"].max_step_s, f"Holding {lag_s:.3f} s after the request"
    assert held[0]["src"] == PackMLState.EXECUTE.value


def test_the_held_operation_still_finishes_and_the_run_balances(run: dict[str, Any]) -> None:
    done = [e for e in run["events"] if e["kind"] == "op_done" and e["op"] == run["sent"]["op"]]
    assert done, f"{run['sent']['op']} never finished after the Unhold"
    assert run["kpis"]["ledger_balanced"]
    assert run["kpis"]["units_completed"] >= 1
