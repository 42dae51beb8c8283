"""What a restart costs on the wall clock, and what a cut-off run loses once resumed (issue #11).

**Stall per restart.** A ``--processes`` run of the assembly cell; from
outside the launcher's control loop (a timer on another thread, as a kill
driver would) an agent is killed with SIGKILL at 40 s of sim time and the
supervisor at 80 s. The stall of a restart is the longest wall-clock gap
between two control ticks in the 10 s of sim time after the kill: the time
the whole cell stood still. Measured twice side by side: as the launcher
runs now (a dead child is dropped from the barrier as soon as it is seen
dead), and as it ran before (``gone`` off: only the clock's 10 s guard drops
it). The clock's own wait for each restarted process to join
(``sim.restart_wait_s``) is shown beside it.

**Resume.** ``lightsout run`` one process for ``duration`` sim seconds, killed
with its whole process group at half time and carried on with ``lightsout
resume``, against the same run left alone: units shipped by each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from cells import children
from cells.launch import RunOptions, run_cell
from cells.resume import journal_time

KILLS = ((40.0, "R2"), (80.0, "supervisor"))
"""(sim seconds, process) killed from outside in the stall runs."""
STALL_DURATION_S = 120.0
ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True, slots=True)
class Stall:
    """One killed process: the cell's longest wall-clock standstill after it, and the clock's
    wait for the restarted process's Join."""

    target: str
    stall_s: float
    join_wait_s: float


def _child(name: str) -> int | None:
    """The pid of this process's child running participant ``name``."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if stat[1] == me and "cells.node" in words and name in words:
                return int(entry.name)
    return None


def stalls(cell: CellSpec, *, watch_dead: bool) -> list[Stall]:
    """Kill ``KILLS`` from outside a ``--processes`` run; the stall after each."""
    ticks: list[tuple[float, float]] = []
    pending = list(KILLS)

    def progress(t_ns: int, _total: int) -> None:
        now = time.monotonic()
        ticks.append((t_ns / 1e9, now))
        if pending and t_ns / 1e9 >= pending[0][0]:
            _, name = pending.pop(0)
            pid = _child(name)
            if pid is not None:
                # from another thread, a moment later: the launcher does not know it happened
                threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()

    gone = children.Children.gone
    if not watch_dead:
        children.Children.gone = lambda self: []  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="lo-restarts-") as tmp:
            opts = RunOptions(seed=1, duration_s=STALL_DURATION_S, processes=True)
            kpis = run_cell(cell, Path(tmp) / "run", opts, progress=progress)
    finally:
        children.Children.gone = gone  # type: ignore[method-assign]
    waits: dict[str, list[float]] = kpis["sim"]["restart_wait_s"]
    out = []
    for at, name in KILLS:
        window = [w for s, w in ticks if at <= s <= at + 10.0]
        gaps = [b - a for a, b in itertools.pairwise(window)]
        out.append(Stall(name, max(gaps, default=0.0), sum(waits.get(name, [0.0]))))
    return out


def resumed(cell_file: str, duration_s: float) -> tuple[int, int, float]:
    """Units shipped by a run left alone and by one killed at half time and resumed, and the
    sim time it was cut at."""
    with tempfile.TemporaryDirectory(prefix="lo-resume-") as tmp:
        shipped = []
        cut_s = 0.0
        for name, cut in (("alone", False), ("cut", True)):
            cmd = [sys.executable, "-m", "clients.cli", "run", cell_file, "-q"]
            cmd += ["--duration", str(duration_s), "--runs-dir", tmp, "--name", name]
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True
            )
            run = Path(tmp) / name
            if cut:
                while (cut_s := journal_time(run)) < duration_s / 2:
                    time.sleep(0.1)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                resume = [sys.executable, "-m", "clients.cli", "resume", str(run)]
                subprocess.run(resume, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
            else:
                proc.wait()
            kpis: dict[str, Any] = json.loads((run / "kpis.json").read_text(encoding="utf-8"))
            shipped.append(int(kpis["units_completed"]))
    return shipped[0], shipped[1], cut_s
