"""A replayed bag shows the same robot states at the same sim times as the live run did."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from bus.endpoints import private_ipc_base
from bus.enums import FaultKind
from bus.messages import JointsFrame
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.bag_record import record
from clients.console_model import ConsoleModel
from clients.control import Subscriber
from clients.replay import replay_frames

ROOT = Path(__file__).resolve().parents[2]

States = dict[int, dict[str, tuple[str, str, str]]]


def states(frame: JointsFrame) -> dict[str, tuple[str, str, str]]:
    return {a.robot: (a.state.value, a.step.value, a.op_id) for a in frame.arms}


@pytest.mark.timeout(300)
def test_replay_matches_the_live_run(tmp_path: Path) -> None:
    cell = load_cell(ROOT / "cells" / "assembly.toml")
    base = private_ipc_base()
    live: States = {}
    live_model = ConsoleModel()
    bag_ready, live_ready, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def watch_live() -> None:
        try:
            with Subscriber(base) as sub:
                live_ready.set()
                while not done.is_set():
                    for msg in sub.poll(0.2):
                        live_model.feed(msg)
                        if isinstance(msg, JointsFrame):
                            live[msg.t_ns] = states(msg)
        except BaseException as exc:
            errors.append(exc)
            live_ready.set()

    def record_bag() -> None:
        try:
            record(base, tmp_path / "bag", cell=cell, ready=bag_ready)
        except BaseException as exc:
            errors.append(exc)
            bag_ready.set()

    threads = [threading.Thread(target=watch_live), threading.Thread(target=record_bag)]
    for t in threads:
        t.start()
    try:
        assert live_ready.wait(10) and bag_ready.wait(10)
        # a robot fault makes the states worth comparing: Aborting, Aborted, Clearing, ...
        fault = ScheduledFault(6.0, "R4", FaultKind.ROBOT_FAULT, 3.0)
        opts = RunOptions(seed=2, duration_s=15, endpoint=base, subscribers=2, faults=(fault,))
        run_cell(cell, tmp_path / "run", opts)
    finally:
        threads[1].join(60)
        done.set()
        threads[0].join(10)
    assert not errors, errors

    replayed: States = {}
    replay_model = ConsoleModel()
    for msg in replay_frames(tmp_path / "bag"):
        replay_model.feed(msg)
        if isinstance(msg, JointsFrame):
            replayed[msg.t_ns] = states(msg)

    assert len(live) == 15 * 24
    assert replayed == live
    seen = {s for tick in live.values() for (s, _, _) in tick.values()}
    assert {"Execute", "Aborted"} <= seen

    def rows(model: ConsoleModel) -> dict[str, Any]:
        return {n: (r.state, r.step, r.op, r.holding) for n, r in model.robots.items()}

    assert rows(replay_model) == rows(live_model)
    assert replay_model.t_ns == live_model.t_ns
