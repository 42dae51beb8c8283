"""Maintenance on and off: the same drifting joint, maintained before its drive trips or not.

For each seed the assembly cell runs twice (one process each, same seed and length) with
R4's joint 3 drifting from 40 s (``joint_drift``, mean time to the trip ``MEAN_S``): once
acting on the diagnosis (``[cell] maintain = true``, the cell file's ``maintenance_s``),
once diagnosis only. The figures: when it was diagnosed, when the drive tripped (or that it
did not), R4's time out of Execute, units shipped, and the lead time from the robot being
in Maintenance to the trip the unmaintained run shows.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from bus.simtime import NS
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell

ROBOT = "R4"
START_S = 40.0
MEAN_S = 120.0
DURATION_S = 400.0
SEEDS = 4


@dataclasses.dataclass(frozen=True, slots=True)
class Side:
    """One run: what became of the drifting robot."""

    diagnosed_s: float | None
    in_maintenance_s: float | None
    back_s: float | None
    tripped_s: float | None
    down_s: float
    """Sim seconds the robot was out of Execute after its first Execute."""
    units: int


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One seed, maintained and not."""

    seed: int
    on: Side
    off: Side

    @property
    def lead_s(self) -> float | None:
        """From the robot in Maintenance to the trip without maintenance (None: no trip)."""
        if self.on.in_maintenance_s is None or self.off.tripped_s is None:
            return None
        return self.off.tripped_s - self.on.in_maintenance_s


def _at(events: list[dict[str, Any]], kind: str, **match: Any) -> float | None:
    for e in events:
        if e["kind"] == kind and match.items() <= e.items():
            return float(e["t_ns"]) / NS
    return None


def _down_s(events: list[dict[str, Any]], end_ns: int) -> float:
    down, since, up = 0, -1, False
    for e in events:
        if e["kind"] != "robot_state" or e.get("robot") != ROBOT:
            continue
        if e["dst"] == "Execute":
            up = True
            if since >= 0:
                down, since = down + e["t_ns"] - since, -1
        elif up and since < 0:
            since = e["t_ns"]
    if since >= 0:
        down += end_ns - since
    return down / NS


def side(cell: CellSpec, seed: int, duration_s: float, *, maintain: bool) -> Side:
    """One run of ``cell`` with the drift, acting on the diagnosis or not."""
    fault = ScheduledFault(START_S, ROBOT, FaultKind.JOINT_DRIFT, MEAN_S, joint=3)
    with tempfile.TemporaryDirectory() as tmp:
        kpis = run_cell(
            dataclasses.replace(cell, maintain=maintain),
            Path(tmp),
            RunOptions(seed=seed, duration_s=duration_s, faults=(fault,)),
        )
        lines = (Path(tmp) / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return Side(
        _at(events, "diagnosis", target=ROBOT),
        _at(events, "maintenance_begun", robot=ROBOT),
        _at(events, "maintenance_done", robot=ROBOT),
        _at(events, "fault_injected", target=ROBOT, permanent=True),
        _down_s(events, round(duration_s * NS)),
        int(kpis["units_completed"]),
    )


def run(cell: CellSpec, duration_s: float, seed: int, seeds: int = SEEDS) -> list[Row]:
    """Seeds ``seed`` to ``seed + seeds - 1``, maintained and not."""
    return [
        Row(s, side(cell, s, duration_s, maintain=True), side(cell, s, duration_s, maintain=False))
        for s in range(seed, seed + seeds)
    ]
