"""Recording a real run: the bag's joint positions are the world's at the same sim time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import zmq
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.bag_record import RecordResult, record
from clients.cli import main
from sim import World

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 8.0


@pytest.mark.timeout(300)
def test_a_recorded_run_has_the_worlds_joint_positions(
    tmp_path: Path, base: str, ctx: zmq.Context[Any]
) -> None:
    cell = load_cell(ROOT / "cells" / "assembly.toml")
    world_q: dict[int, dict[str, tuple[float, ...]]] = {}

    def watch(world: World) -> None:
        world_q[world.t_ns] = {name: tuple(arm.q) for name, arm in world.arms.items()}

    stop = threading.Event()
    out: dict[str, RecordResult] = {}
    errors: list[BaseException] = []

    def recorder(name: str, ready: threading.Event, **kw: Any) -> threading.Thread:
        def body() -> None:
            try:
                out[name] = record(
                    base, tmp_path / name, cell=cell, stop=stop, ready=ready, ctx=ctx, **kw
                )
            except BaseException as exc:  # the test thread must see it
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=body, name=name)
        thread.start()
        return thread

    ready_a, ready_b = threading.Event(), threading.Event()
    # one stops at the last tick's frame, the other when the cell no longer answers
    threads = [
        recorder("bag", ready_a, until_ns=round(DURATION_S * 1e9)),
        recorder("bag2", ready_b, probe_s=0.5),
    ]
    try:
        assert ready_a.wait(10) and ready_b.wait(10)
        # both recorders have subscribed: the run waits for them before its first tick
        opts = RunOptions(seed=1, duration_s=DURATION_S, endpoint=base, subscribers=2)
        run_cell(cell, tmp_path / "run", opts, watch=watch)
        for t in threads:
            t.join(timeout=60)  # both stop by themselves
            assert not t.is_alive(), t.name
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors
    res = out["bag"]
    # it stops on the last tick's frame or on the run_end after it, whichever it reads first
    assert res.reason in ("reached the end time", "run_end")
    assert res.lost == 0 and res.malformed == 0
    assert out["bag2"].reason == "run_end"  # the cell says when it ends
    assert out["bag2"].counts["/R1/joint_states"] == res.counts["/R1/joint_states"]

    store = get_typestore(Stores.ROS2_JAZZY)
    got: dict[str, dict[int, list[float]]] = {}
    with Reader(tmp_path / "bag") as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            if conn.topic.endswith("/joint_states"):
                msg = store.deserialize_cdr(raw, conn.msgtype)
                got.setdefault(conn.topic.split("/")[1], {})[t] = list(msg.position)
    robots = sorted(r.name for r in cell.robots)
    assert sorted(got) == robots
    assert {"/tf", "/diagnostics", "/cell/events", "/cell/kpis"} <= set(topics)
    ticks = len(world_q)
    for robot in robots:
        frames = got[robot]
        # the run waited for both recorders to subscribe: not one tick is missing
        assert len(frames) == ticks, (robot, len(frames), ticks)
        for t, q in frames.items():
            assert q == list(world_q[t][robot]), (robot, t)
    assert max(got["R1"]) == round(DURATION_S * 1e9)


def test_record_refuses_an_existing_bag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bag").mkdir()
    assert main(["record", "--endpoint", "ipc:///nonexistent", str(tmp_path / "bag")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "exists already" in err and err.count("\n") == 1


def test_record_refuses_a_bad_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--endpoint", "carrier-pigeon", str(tmp_path / "bag")]) == 2
    assert "expected inproc://NAME" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()
