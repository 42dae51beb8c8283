"""Members stepped on the clock's thread against members on threads of their own.

A one-process cell over ``inproc`` steps its supervisor and agents on the clock's thread
(``ClockServer.attach``); ``RunOptions(threads=True)`` runs each on a thread with its own
socket to the clock, a Tick/Done round trip per member and tick. This runs the assembly
cell both ways, side by side in this process, alternating (so the machine's noise falls on
both alike), at events fidelity and at physics fidelity, and prints the wall time, the
process's CPU time and the real-time factor of each, the ratio, and whether the two event
logs are the same bytes (they must be: ``tests/cells/test_local_members.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.fidelity import cell_at
from cells.launch import RunOptions, run_cell

RUNS = (("events", 600.0), ("physics", 60.0))
"""Fidelity and sim seconds of each pair of runs."""
REPEATS = 2
"""Runs of each way per fidelity; the fastest of each is compared."""


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """One run."""

    wall_s: float
    cpu_s: float
    log_sha: str


@dataclasses.dataclass(frozen=True, slots=True)
class Pair:
    """Both ways at one fidelity."""

    fidelity: str
    duration_s: float
    local: Timing
    threads: Timing

    @property
    def speedup(self) -> float:
        """Wall time on threads over wall time on the clock's thread."""
        return self.threads.wall_s / self.local.wall_s


def _once(fidelity: str, duration_s: float, seed: int, *, threads: bool) -> Timing:
    cell = cell_at(fidelity)
    with tempfile.TemporaryDirectory(prefix="lo-stepping-") as tmp:
        out = Path(tmp) / "run"
        c0, t0 = time.process_time(), time.perf_counter()
        run_cell(cell, out, RunOptions(seed=seed, duration_s=duration_s, threads=threads))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sha = hashlib.sha256((out / "events.jsonl").read_bytes()).hexdigest()
    return Timing(wall, cpu, sha)


def measure(seed: int) -> list[Pair]:
    """Every fidelity of ``RUNS``, both ways, ``REPEATS`` times, alternating."""
    out = []
    for fidelity, duration in RUNS:
        got: dict[bool, list[Timing]] = {False: [], True: []}
        for _ in range(REPEATS):
            for threads in (False, True):
                got[threads].append(_once(fidelity, duration, seed, threads=threads))
        best = {k: min(v, key=lambda t: t.wall_s) for k, v in got.items()}
        out.append(Pair(fidelity, duration, best[False], best[True]))
    return out


def print_stepping(console: Console, seed: int) -> None:
    """The table of ``measure``."""
    console.print(
        f"stepping: the assembly cell in one process, seed {seed}, members on the clock's "
        f"thread against on threads of their own; the fastest of {REPEATS} each, alternating"
    )
    pairs = measure(seed)
    table = Table(
        "fidelity",
        "sim s",
        "way",
        "wall s",
        "CPU s",
        "sim s / wall s",
        "speed-up",
        "same log",
    )
    for p in pairs:
        same = "yes" if p.local.log_sha == p.threads.log_sha else "NO"
        for way, t in (("clock's thread", p.local), ("threads", p.threads)):
            ratio = f"{p.speedup:.2f}" if way == "threads" else ""
            table.add_row(
                p.fidelity,
                f"{p.duration_s:g}",
                way,
                f"{t.wall_s:.2f}",
                f"{t.cpu_s:.2f}",
                f"{p.duration_s / t.wall_s:.1f}",
                ratio,
                same if way == "threads" else "",
            )
    console.print(table)


__all__ = ["Pair", "Timing", "measure", "print_stepping"]
