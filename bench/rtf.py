"""Real-time factor of the assembly cells beside the same scenes stepped bare.

For each cell (the 4-robot ``assembly.toml`` and its 8- and 12-robot
``assembly_2x`` and ``assembly_3x``), same machine, seed and sim duration:

* ``bare``: the world built from the cell file, its feeders having filled the
  belt and trays, stepped with nothing but ``p.stepSimulation`` (no arms
  driven, no belts held, no clock);
* ``world``: the same world's ``advance()`` (arms driven kinematically, belts
  held, feeders, settling and sensors), still with no clock or participants;
* the whole cell in one process (``inproc://``, the supervisor and agents stepped
  on the clock's thread: ``ClockServer.attach``) and with ``--processes`` (the supervisor and each agent an
  OS process, ``ipc://``), once per barrier: ``--sync tick`` (the fixed-rate
  one) and ``--sync event`` (the event clock) where the launcher has it, "n/a"
  until then.

Each cell run happens in a fresh ``python -m bench.cellrun`` process, which
also counts the barrier's traffic (round trips, cell-bus messages, acts) and
every process's peak RSS. Real-time factor is sim seconds per wall second;
ratios are against ``bare`` of the same cell.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pybullet as p
from rich.console import Console
from rich.table import Table

from bench.cellrun import sync_modes
from bus.cellspec import CellSpec
from bus.errors import LightsoutError
from sim import World

ROOT = Path(__file__).resolve().parents[1]
CELLS = tuple(ROOT / "cells" / n for n in ("assembly.toml", "assembly_2x.toml", "assembly_3x.toml"))
"""The cells measured by default: one, two and three islands of four robots."""
SYNCS = ("tick", "event")
"""Every barrier the table has a row for (those the launcher lacks print "n/a")."""
TARGETS = {False: 0.90, True: 0.85}
"""Issue #13's goal for cell / bare: in one process, and with ``--processes``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One cell run's figures (``bench.cellrun``'s JSON line)."""

    rtf: float
    units: int
    balanced: bool
    opened: int
    trips: int
    bus: int
    acts: int
    peak_kb: dict[str, int]
    wall_s: float
    cpu_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class CellFigures:
    """Everything measured for one cell."""

    cell: CellSpec
    duration_s: float
    bare: float
    world: float
    bare_cpu: float
    """Sim seconds per CPU second of the bare steps (and below, of ``world.advance``)."""
    world_cpu: float
    runs: dict[tuple[str, bool], Run | None]
    """(sync, processes) -> the run, or None where the launcher has no such barrier."""

    def run_ratio(self, sync: str, processes: bool) -> float | None:
        """Cell / bare for one barrier and mode, None if not measured."""
        r = self.runs.get((sync, processes))
        return None if r is None else r.rtf / self.bare


def _world_rtf(cell: CellSpec, duration_s: float, seed: int) -> tuple[float, float, float, float]:
    """Bare and ``world.advance`` real-time factors, by the wall and by CPU time."""
    world = World(cell, seed=seed)
    world.setup()
    try:
        ticks = int(duration_s * cell.control_hz)
        for _ in range(ticks):  # let the feeders fill the belt and trays first
            world.advance()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(ticks):
            world.advance()
        world_wall, world_cpu = time.perf_counter() - t0, time.process_time() - c0
        steps = ticks * cell.steps_per_tick
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            p.stepSimulation(physicsClientId=world.client)
        bare_wall, bare_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        world.shutdown()
    d = duration_s
    return d / bare_wall, d / world_wall, d / bare_cpu, d / world_cpu


def cell_run(cell: CellSpec, duration_s: float, seed: int, *, processes: bool, sync: str) -> Run:
    """The cell run once in a fresh process (``bench.cellrun``)."""
    cmd = [sys.executable, "-m", "bench.cellrun", cell.source]
    cmd += ["--duration", f"{duration_s:g}", "--seed", str(seed), "--sync", sync]
    cmd += ["--processes"] if processes else []
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise LightsoutError(f"bench run of {cell.name} failed ({done.returncode}): {tail}")
    data: dict[str, Any] = json.loads(lines[-1])
    return Run(**{f.name: data[f.name] for f in dataclasses.fields(Run)})


def run(
    cells: list[CellSpec], duration_s: float, seed: int, *, on_run: Any = None
) -> list[CellFigures]:
    """Measure every cell: bare, world, then each barrier in one process and in processes.

    ``on_run(label)`` is called before each measurement (progress for the caller).
    """
    have = sync_modes()
    out = []
    for cell in cells:
        if on_run is not None:
            on_run(f"{cell.name}: bare and world.advance")
        bare, world, bare_cpu, world_cpu = _world_rtf(cell, duration_s, seed)
        runs: dict[tuple[str, bool], Run | None] = {}
        for processes in (False, True):
            for sync in SYNCS:
                if sync not in have:
                    runs[sync, processes] = None
                    continue
                if on_run is not None:
                    mode = "--processes" if processes else "one process"
                    on_run(f"{cell.name}: {mode}, --sync {sync}")
                runs[sync, processes] = cell_run(
                    cell, duration_s, seed, processes=processes, sync=sync
                )
        out.append(CellFigures(cell, duration_s, bare, world, bare_cpu, world_cpu, runs))
    return out


def processes_of(fig: CellFigures) -> list[str]:
    """The processes of a cell's runs, in table order: the host, the supervisor, the robots."""
    robots = [r.name for r in fig.cell.robots]
    seen = {n for r in fig.runs.values() if r is not None for n in r.peak_kb}
    extra = sorted(seen - {"host", "supervisor", *robots})
    return [n for n in ("host", "supervisor", *robots, *extra) if n in seen]


def print_tables(console: Console, figs: list[CellFigures], seed: int) -> None:
    """The speed table (every cell side by side), the targets, then peak RSS per process."""
    duration = figs[0].duration_s if figs else 0.0
    table = Table(
        title=f"real-time factor (sim s / wall s), {duration:g} s of sim time each, seed {seed}",
        caption="/ bare: to bare pybullet of the same cell; CPU RTF: sim s per CPU s of every "
        "process of the run (a loaded machine disturbs it less); per sim s: ticks the barrier "
        "opened; trips, its Tick/Done round trips (all participants); bus, cell-bus messages "
        "(the barrier's counts); acts, "
        "the acts carried in the answers (joint targets, the supervisor's world commands)",
    )
    cols = (
        "what",
        "sync",
        "RTF",
        "/ bare",
        "CPU RTF",
        "/ bare",
        "ticks/s",
        "trips/s",
        "bus/s",
        "acts/s",
        "units",
    )
    for col in cols:
        table.add_column(col, justify="left" if col in ("what", "sync") else "right")
    for fig in figs:
        table.add_row(f"[bold]{fig.cell.name}[/bold] ({len(fig.cell.robots)} robots)")
        table.add_row(
            "bare pybullet", "-", f"{fig.bare:.2f}", "1.000", f"{fig.bare_cpu:.2f}", "1.000"
        )
        table.add_row(
            "world.advance",
            "-",
            f"{fig.world:.2f}",
            f"{fig.world / fig.bare:.3f}",
            f"{fig.world_cpu:.2f}",
            f"{fig.world_cpu / fig.bare_cpu:.3f}",
        )
        for (sync, processes), r in fig.runs.items():
            what = "--processes" if processes else "one process"
            if r is None:
                table.add_row(what, sync, *["n/a"] * 8, "")
                continue
            d = fig.duration_s
            table.add_row(
                what,
                sync,
                f"{r.rtf:.2f}",
                f"{r.rtf / fig.bare:.3f}",
                f"{d / r.cpu_s:.2f}",
                f"{d / r.cpu_s / fig.bare_cpu:.3f}",
                f"{r.opened / d:.1f}",
                f"{r.trips / d:.1f}",
                f"{r.bus / d:.1f}",
                f"{r.acts / d:.1f}",
                f"{r.units}" + ("" if r.balanced else " [red]NOT balanced[/red]"),
            )
        table.add_section()
    console.print(table)
    for sync in SYNCS:
        for processes, goal in TARGETS.items():
            got = [(f.run_ratio(sync, processes), f.cell.name) for f in figs]
            measured = [(v, n) for v, n in got if v is not None]
            mode = "--processes" if processes else "one process"
            if not measured:
                console.print(f"--sync {sync}, {mode}: n/a (goal cell / bare >= {goal:.2f})")
                continue
            worst, name = min(measured)
            verdict = "met" if worst >= goal else "[red]NOT met[/red]"
            console.print(
                f"--sync {sync}, {mode}: worst cell / bare {worst:.3f} ({name}); "
                f"goal >= {goal:.2f} at every size: {verdict}"
            )
    for fig in figs:
        names = processes_of(fig)
        keys = [k for k, r in fig.runs.items() if r is not None]
        mem = Table(title=f"peak RSS per process, MB: {fig.cell.name}")
        mem.add_column("process")
        for sync, processes in keys:
            mem.add_column(
                f"{'processes' if processes else 'one process'}, {sync}", justify="right"
            )
        for name in names:
            row = []
            for k in keys:
                r = fig.runs[k]
                kb = r.peak_kb.get(name) if r is not None else None
                row.append(f"{kb / 1024:.0f}" if kb else "-")
            mem.add_row(name, *row)
        total = []
        for k in keys:
            r = fig.runs[k]
            assert r is not None
            total.append(f"{sum(r.peak_kb.values()) / 1024:.0f}")
        mem.add_section()
        mem.add_row("sum of peaks", *total)
        console.print(mem)
