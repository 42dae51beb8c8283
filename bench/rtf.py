"""Real-time factor of the assembly cell beside the same scene stepped bare.

Four figures from one run, on the same machine, same cell file and seed:

* ``bare``: the world built from the cell file, its feeders having filled the
  belt and trays, stepped with nothing but ``p.stepSimulation`` (no arms
  driven, no belts held, no clock);
* ``world``: the same world's ``advance()`` (arms driven kinematically, belts
  held, feeders, settling and sensors), still with no clock or participants;
* ``one process``: the whole cell (clock, supervisor, four agents) over
  ``inproc://`` threads;
* ``processes``: the whole cell with the supervisor and each agent a separate
  process over ``ipc://``.

Real-time factor is sim seconds per wall second; ratios are against ``bare``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pybullet as p

from bus.cellspec import CellSpec
from cells.launch import RunOptions, run_cell
from sim import World


def _world_rtf(cell: CellSpec, duration_s: float, seed: int) -> tuple[float, float]:
    world = World(cell, seed=seed)
    world.setup()
    try:
        ticks = int(duration_s * cell.control_hz)
        for _ in range(ticks):  # let the feeders fill the belt and trays first
            world.advance()
        t0 = time.perf_counter()
        for _ in range(ticks):
            world.advance()
        world_wall = time.perf_counter() - t0
        steps = ticks * cell.steps_per_tick
        t0 = time.perf_counter()
        for _ in range(steps):
            p.stepSimulation(physicsClientId=world.client)
        bare_wall = time.perf_counter() - t0
    finally:
        world.shutdown()
    return duration_s / bare_wall, duration_s / world_wall


def _cell_rtf(
    cell: CellSpec, duration_s: float, seed: int, *, processes: bool
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        kpis = run_cell(
            cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s, processes=processes)
        )
        wall = time.perf_counter() - t0
    return duration_s / wall, int(kpis["units_completed"])


def run(cell: CellSpec, duration_s: float, seed: int) -> list[tuple[str, float, str]]:
    """Measure the four figures; return (name, real-time factor, note) rows."""
    bare, world = _world_rtf(cell, duration_s, seed)
    one, units_one = _cell_rtf(cell, duration_s, seed, processes=False)
    many, units_many = _cell_rtf(cell, duration_s, seed, processes=True)
    return [
        ("bare pybullet steps", bare, ""),
        ("world.advance (no clock)", world, ""),
        ("cell, one process", one, f"{units_one} units"),
        ("cell, --processes", many, f"{units_many} units"),
    ]
