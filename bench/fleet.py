"""Robots that build robots that build phones: does the line's output grow with its fleet?

Two runs of ``cells/assembly_with_builders.toml`` (same seed and length, one
process each): as it is, where the arms built south of the island are mounted
at its free stations and join the phone line; and the same cell with no mount
points, so no arm is ever started and the phone line keeps the three arms it
began with (the reference: whatever else changes over the run changes there
too). From each run's ``events.jsonl`` it counts the phones shipped in the
first and in the last ``WINDOW_S`` of sim time, and the fleet at the end; the
ratio last / first says how much the added robots raised the line's output.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bus.cellspec import CellSpec
from cells.launch import RunOptions, run_cell

DURATION_S = 1800.0
"""Sim seconds per run: the first and the last 10 minutes, and 10 between for the fleet
to grow."""
WINDOW_S = 600.0
"""The windows compared (10 minutes of sim time)."""

OnProgress = Callable[[str, float], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One run: phones shipped in the first and the last window, and the robots it ended with."""

    label: str
    first: int
    last: int
    robots_first: float
    """Robots in the fleet, averaged over the first window."""
    robots_last: float
    built: int
    balanced: bool
    wall_s: float

    @property
    def ratio(self) -> float:
        """Last window's phones over the first's."""
        return self.last / self.first if self.first else float("inf")


def count(events: list[dict[str, object]], start_s: float, end_s: float) -> int:
    """Phones shipped in [start_s, end_s) of sim time."""
    return sum(
        1
        for e in events
        if e.get("kind") == "unit_shipped" and start_s * 1e9 <= int(str(e["t_ns"])) < end_s * 1e9
    )


def fleet_average(
    events: list[dict[str, object]], start: int, start_s: float, end_s: float
) -> float:
    """The mean fleet size over [start_s, end_s), from ``robot_added`` events."""
    size, t, total = start, start_s, 0.0
    for e in events:
        if e.get("kind") != "robot_added":
            continue
        at = int(str(e["t_ns"])) / 1e9
        if at >= end_s:
            break
        if at > start_s:
            total += size * (at - t)
            t = at
        size += 1
    total += size * (end_s - t)
    return total / (end_s - start_s)


def run(
    cell: CellSpec,
    *,
    duration_s: float = DURATION_S,
    seed: int = 1,
    on_progress: OnProgress | None = None,
) -> list[Result]:
    """Both runs, the cell as it is first."""
    out = []
    for label, variant in (
        ("robots added", cell),
        ("no mount points", dataclasses.replace(cell, mounts=())),
    ):
        with tempfile.TemporaryDirectory(prefix="lo-fleet-") as tmp:
            started = time.monotonic()

            def progress(t_ns: int, _total: int, label: str = label) -> None:
                if on_progress is not None and t_ns % 1_000_000_000 < cell.tick_ns:
                    on_progress(label, t_ns / 1e9)

            kpis = run_cell(
                variant, Path(tmp), RunOptions(seed=seed, duration_s=duration_s), progress=progress
            )
            wall = time.monotonic() - started
            text = (Path(tmp) / "events.jsonl").read_text(encoding="utf-8")
            events = [json.loads(line) for line in text.splitlines()]
        start = len(cell.robots)
        last0 = duration_s - WINDOW_S
        out.append(
            Result(
                label=label,
                first=count(events, 0.0, WINDOW_S),
                last=count(events, last0, duration_s),
                robots_first=fleet_average(events, start, 0.0, WINDOW_S),
                robots_last=fleet_average(events, start, last0, duration_s),
                built=len(kpis.get("built_robots", [])),
                balanced=bool(kpis.get("ledger_balanced")),
                wall_s=wall,
            )
        )
    return out
