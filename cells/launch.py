"""The launcher: wires a cell's world, supervisor and robot agents, and runs it.

Two modes, same code (DESIGN principle 2):

* one process: the sim server on the calling thread, the supervisor and each
  agent on a thread of their own, over ``inproc://``;
* ``processes=True``: the sim server here, the supervisor and each agent as a
  separate OS process (``python -m cells.node ...``) over ``ipc://`` (or any
  ``endpoint`` given), each its own pybullet client and zmq context.

Either way the run ends with ``kpis.json`` and ``events.jsonl`` in ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.cellspec import CellSpec
from bus.endpoints import Endpoints, private_ipc_base
from bus.errors import LightsoutError
from bus.participant import run_participant
from robots import RobotAgent
from sim import SimServer
from supervisor import Supervisor

log = logging.getLogger(__name__)

_RUNS = itertools.count(1)

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a cell."""

    seed: int = 1
    duration_s: float = 600.0
    processes: bool = False
    endpoint: str | None = None
    guard_s: float = 10.0
    join_timeout_s: float = 60.0


def run_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ``-3``... so an earlier run is never overwritten."""
    path = root / name
    n = 2
    while path.exists():
        path = root / f"{name}-{n}"
        n += 1
    return path


def run_cell(
    cell: CellSpec,
    out_dir: Path,
    opts: RunOptions,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run ``cell`` for ``opts.duration_s`` of sim time; return the KPIs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if opts.processes:
        return _run_processes(cell, out_dir, opts, progress)
    return _run_threads(cell, out_dir, opts, progress)


def _run_threads(
    cell: CellSpec, out_dir: Path, opts: RunOptions, progress: Progress | None
) -> dict[str, Any]:
    base = opts.endpoint or f"inproc://lightsout-{os.getpid()}-{next(_RUNS)}"
    endpoints = Endpoints.from_base(base)
    ctx: zmq.Context[Any] = zmq.Context()
    server = SimServer(
        cell,
        endpoints,
        seed=opts.seed,
        duration_s=opts.duration_s,
        ctx=ctx,
        guard_s=opts.guard_s,
        join_timeout_s=opts.join_timeout_s,
        on_tick=progress,
    )
    supervisor = Supervisor(cell, seed=opts.seed, out_dir=out_dir)
    agents = [RobotAgent(cell, r.name) for r in cell.robots]
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn: Callable[[], object]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # a thread's crash must reach the caller
                log.exception("participant thread failed")
                errors.append(exc)

        return body

    threads = []
    try:
        server.setup()
        threads.append(
            threading.Thread(
                target=guarded(
                    lambda: run_participant(
                        supervisor, ctx, endpoints, hub=True, guard_s=opts.guard_s, stop=stop
                    )
                ),
                name="supervisor",
                daemon=True,
            )
        )
        for agent in agents:
            agent.setup()
            threads.append(
                threading.Thread(
                    target=guarded(
                        lambda a=agent: run_participant(
                            a, ctx, endpoints, hub=False, guard_s=opts.guard_s, stop=stop
                        )
                    ),
                    name=agent.name,
                    daemon=True,
                )
            )
        for t in threads:
            t.start()
        server.run()
    finally:
        for t in threads:
            t.join(timeout=30)
        stop.set()
        server.shutdown()
        for agent in agents:
            agent.shutdown()
        ctx.term()
    if errors:
        raise errors[0]
    return supervisor.result


def node_command(role: str, cell: CellSpec, endpoint: str, **extra: str) -> list[str]:
    """The command line that starts one participant process."""
    cmd = [sys.executable, "-m", "cells.node", role, cell.source, "--endpoint", endpoint]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", v]
    return cmd


def _run_processes(
    cell: CellSpec, out_dir: Path, opts: RunOptions, progress: Progress | None
) -> dict[str, Any]:
    base = opts.endpoint or private_ipc_base()
    endpoints = Endpoints.from_base(base)
    ctx: zmq.Context[Any] = zmq.Context()
    server = SimServer(
        cell,
        endpoints,
        seed=opts.seed,
        duration_s=opts.duration_s,
        ctx=ctx,
        guard_s=opts.guard_s,
        join_timeout_s=opts.join_timeout_s,
        on_tick=progress,
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        server.setup()
        spawn = {
            "supervisor": node_command(
                "supervisor", cell, base, seed=str(opts.seed), out=str(out_dir)
            )
        }
        for r in cell.robots:
            spawn[r.name] = node_command("agent", cell, base, robot=r.name)
        for name, cmd in spawn.items():
            with (logs / f"{name}.log").open("wb") as fh:
                procs[name] = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        server.run()
        for name, proc in procs.items():
            code = proc.wait(timeout=60)
            if code != 0:
                raise LightsoutError(f"{name} exited with {code}; see {logs / (name + '.log')}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.shutdown()
        ctx.term()
    kpis = out_dir / "kpis.json"
    if not kpis.exists():
        raise LightsoutError(f"the supervisor wrote no {kpis}")
    result: dict[str, Any] = json.loads(kpis.read_text(encoding="utf-8"))
    return result
