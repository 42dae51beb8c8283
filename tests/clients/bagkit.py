"""A real run recorded to a bag the way ``lightsout run --record`` does, for the bag tests:
the recorder subscribes over ipc, the run waits for it, and the world's link poses are kept
at every tick to compare the bag with."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import zmq

from bus.cellspec import CellSpec
from cells.launch import RunOptions, run_cell
from clients.bag_record import RecordResult, record
from sim import World

Pose = tuple[float, float, float, float, float, float, float]
Links = dict[int, dict[str, list[Pose]]]
"""Sim time -> robot -> the world's pose of each of its links."""


def recorded_run(cell: CellSpec, run_dir: Path, **opts: Any) -> tuple[RecordResult, Links]:
    """Run ``cell`` into ``run_dir`` with a recorder writing ``run_dir/bag``; ``opts`` are
    ``RunOptions``'s (the endpoint and the subscriber count are set here)."""
    ipc = tempfile.mkdtemp(prefix="lo-")
    os.chmod(ipc, 0o700)
    base = f"ipc://{ipc}"
    links: Links = {}

    def watch(world: World) -> None:
        links[world.t_ns] = {
            name: [(*xyz, *q) for xyz, q in arm.link_poses()] for name, arm in world.arms.items()
        }

    ctx: zmq.Context[Any] = zmq.Context()
    ready, out, errors = threading.Event(), {}, []

    def body() -> None:
        try:
            run_dir.mkdir()
            out["res"] = record(base, run_dir / "bag", cell=cell, ready=ready, ctx=ctx)
        except BaseException as exc:  # the test thread must see it
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=body)
    thread.start()
    try:
        assert ready.wait(10)
        run_cell(cell, run_dir, RunOptions(endpoint=base, subscribers=1, **opts), watch=watch)
        thread.join(timeout=120)
        assert not thread.is_alive()
    finally:
        thread.join(timeout=10)
        ctx.term()
        for name in os.listdir(ipc):
            os.unlink(os.path.join(ipc, name))
        os.rmdir(ipc)
    assert not errors, errors
    res = out["res"]
    assert isinstance(res, RecordResult)
    return res, links
