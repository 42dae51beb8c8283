"""Allocation policies side by side: units per hour under contract net and under FCFS.

Each cell runs twice with the same seed and length (one process each), once
per policy (``supervisor.allocation``): the assembly cell as it is, where
frames arrive every 10 s and the robots often wait for them, and
``bench/robot_bound.toml``, the same cell with frames every 2 s and two slow
arms, where the robots are the bottleneck and which robot gets which step
decides the output. The figure is units shipped per hour of sim time; the
ratio is FCFS's over contract net's.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from bus.cellspec import CellSpec
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[1]
CELLS = (ROOT / "cells" / "assembly.toml", ROOT / "bench" / "robot_bound.toml")
POLICIES = ("contract_net", "fcfs")
DURATION_S = 600.0
"""Sim seconds per run: enough units for a rate (the assembly cell ships about one in 15 s)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One cell under both policies."""

    cell: str
    per_hour: dict[str, float]
    """Policy -> units shipped per hour of sim time."""
    units: dict[str, int]
    utilisation: dict[str, float]
    """Policy -> the robots' mean utilisation."""
    wall_s: float

    @property
    def ratio(self) -> float:
        """FCFS's units per hour over contract net's."""
        base = self.per_hour["contract_net"]
        return self.per_hour["fcfs"] / base if base else float("nan")


def measure(cell: CellSpec, duration_s: float, seed: int) -> Row:
    """Run ``cell`` under each policy, same seed and length."""
    per_hour, units, util = {}, {}, {}
    t0 = time.perf_counter()
    for policy in POLICIES:
        with tempfile.TemporaryDirectory() as tmp:
            kpis = run_cell(
                dataclasses.replace(cell, policy=policy),
                Path(tmp),
                RunOptions(seed=seed, duration_s=duration_s),
            )
        per_hour[policy] = float(kpis["throughput_per_hour"])
        units[policy] = int(kpis["units_completed"])
        robots = kpis["robots"].values()
        util[policy] = sum(r["utilisation"] for r in robots) / len(robots)
    return Row(cell.name, per_hour, units, util, time.perf_counter() - t0)


def run(duration_s: float, seed: int) -> list[Row]:
    """Both cells, both policies."""
    return [measure(load_cell(path), duration_s, seed) for path in CELLS]
