"""Where a cell's wall time goes: physics, the agents, the supervisor, the messaging.

One run per clock mode (``sync = "tick"`` and ``"event"``), in one process and with
``--processes``. In one process the participants are threads, so their steps are timed
by thread CPU time; with processes they are the children's CPU time (``RUSAGE_CHILDREN``).
The sim loop's own wall time is split into ``world.advance`` (physics, the arms, the
belts, feeders, settling and sensors), the wait in the clock for the Dones of a tick
(the participants' steps and the messaging around them), and the rest (the loop itself:
who is due, senses, acts, telemetry, pacing). "messaging" is that wait less the
participants' own CPU: the Tick/Done round trips, socket sends and receives, thread or
process switches.
"""

from __future__ import annotations

import collections
import dataclasses
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.clock import ClockServer
from cells.launch import RunOptions, run_cell
from robots.agent import RobotAgent
from sim.world import World
from supervisor.supervisor import Supervisor

SPENT: collections.Counter[str] = collections.Counter()


@contextmanager
def _timed(cls: type, name: str, key: str, clock: Callable[[], float]) -> Iterator[None]:
    """Add the time ``clock`` says each call of ``cls.name`` took to ``SPENT[key]``."""
    original = getattr(cls, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return original(self, *args, **kwargs)
        finally:
            SPENT[key] += clock() - t0

    setattr(cls, name, timed)
    try:
        yield
    finally:
        setattr(cls, name, original)


def _children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def profile(cell: CellSpec, duration_s: float, seed: int, *, processes: bool) -> dict[str, float]:
    """Shares of the wall time of one run (0 to 1), and its wall time and real-time factor."""
    SPENT.clear()
    cpu0 = _children_cpu()
    with (
        _timed(World, "advance", "physics", time.perf_counter),
        _timed(ClockServer, "tick", "barrier", time.perf_counter),
        _timed(RobotAgent, "step", "agents", time.thread_time),
        _timed(Supervisor, "step", "supervisor", time.thread_time),
        tempfile.TemporaryDirectory() as tmp,
    ):
        t0 = time.perf_counter()
        run_cell(cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s, processes=processes))
        wall = time.perf_counter() - t0
    if processes:
        # the participants are processes: their CPU, all of it spent while the clock waited
        SPENT["participants"] = _children_cpu() - cpu0
    else:
        SPENT["participants"] = SPENT["agents"] + SPENT["supervisor"]
    messaging = max(0.0, SPENT["barrier"] - SPENT["participants"])
    loop = max(0.0, wall - SPENT["physics"] - SPENT["barrier"])
    out = {
        "wall_s": wall,
        "rtf": duration_s / wall,
        "physics": SPENT["physics"] / wall,
        "participants": SPENT["participants"] / wall,
        "messaging": messaging / wall,
        "loop and start-up": loop / wall,
    }
    if not processes:
        out["agents"] = SPENT["agents"] / wall
        out["supervisor"] = SPENT["supervisor"] / wall
    return out


def run(cell: CellSpec, duration_s: float, seed: int) -> list[tuple[str, dict[str, float]]]:
    """Profile both clock modes, in one process and with processes."""
    rows = []
    for sync in ("tick", "event"):
        mode = dataclasses.replace(cell, sync=sync)
        for processes in (False, True):
            where = "--processes" if processes else "one process"
            rows.append((f"{sync}, {where}", profile(mode, duration_s, seed, processes=processes)))
    return rows
