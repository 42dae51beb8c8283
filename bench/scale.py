"""How many agents one supervisor holds: generated cells of 25 to 64 islands at events fidelity.

Each size is a cell of ``cells.islands`` (4 agents an island, from 100 to 256), run for the
same sim seconds at events fidelity through the real launcher in a fresh process of its
own (so its wall time and peak RSS are its own), timed from the assembly cell's
calibration. A size *holds* when the evidence of the run's own files says so, not the
supervisor's liveness view: the clock dropped no member for silence (``kpis.json``
``sim.dropped``), no robot was taken for lost and every robot reached Execute (the event
log), every island did work, and the ledger balanced. Its real-time factor is its sim
seconds over its wall seconds, start-up included.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES = (25, 36, 49, 64)
"""Islands per cell: 100, 144, 196 and 256 agents (64 is ``cells.islands.MAX_ISLANDS``)."""
DURATION_S = 60.0

_CHILD = """
import json, resource, sys, time
from pathlib import Path
import tomli_w
from cells.calibrate import with_fidelity
from cells.islands import islands
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
n, out, duration, seed = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
path = out.parent / f"islands_{n}.toml"
path.write_text(tomli_w.dumps(islands(n)), encoding="utf-8")
cell = with_fidelity(load_cell(path), path, "events", borrowed=sys.argv[5])
t0 = time.perf_counter()
k = run_cell(cell, out, RunOptions(seed=seed, duration_s=duration))
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "robots": len(cell.robots), "dropped": k["sim"]["dropped"],
                  "balanced": k["ledger_balanced"], "units": k.get("units_completed") or 0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Size:
    """One cell size's run and what its files say."""

    islands: int
    robots: int
    duration_s: float
    wall_s: float
    dropped: int
    """Members the clock dropped for silence."""
    lost: int
    """``robot_lost`` events."""
    in_execute: int
    """Robots that reached Execute."""
    islands_working: int
    """Islands where some robot finished an operation."""
    balanced: bool
    units: int
    rss_mb: float

    @property
    def holds(self) -> bool:
        """Every deadline kept and every robot and island at work, by the run's own files."""
        return (
            self.dropped == 0
            and self.lost == 0
            and self.in_execute == self.robots
            and self.islands_working == self.islands
            and self.balanced
        )

    @property
    def rtf(self) -> float:
        """Sim seconds per wall second, start-up included."""
        return self.duration_s / self.wall_s


def measure(n: int, duration_s: float, seed: int) -> Size:
    """Run the cell of ``n`` islands for ``duration_s`` in a fresh process; read its files."""
    borrowed = ROOT / "cells" / "assembly.calib.json"
    with tempfile.TemporaryDirectory(prefix="lo-scale-") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-c", _CHILD, str(n), str(out), str(duration_s), str(seed)]
        done = subprocess.run(
            [*cmd, str(borrowed)], capture_output=True, text=True, check=True, cwd=ROOT
        )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    lost = sum(1 for e in events if e["kind"] == "robot_lost")
    execute = {e["robot"] for e in events if e["kind"] == "robot_state" and e["dst"] == "Execute"}
    worked = {(int(e["robot"][1:]) - 1) // 4 for e in events if e["kind"] == "op_done"}
    return Size(
        islands=n,
        robots=int(got["robots"]),
        duration_s=duration_s,
        wall_s=float(got["wall_s"]),
        dropped=len(got["dropped"]),
        lost=lost,
        in_execute=len(execute),
        islands_working=len(worked),
        balanced=bool(got["balanced"]),
        units=int(got["units"]),
        rss_mb=float(got["rss_mb"]),
    )


def print_scale(console: Any, duration_s: float, seed: int, sizes: tuple[int, ...] = SIZES) -> None:
    """Measure every size, smallest first, printing each row as it is done; then say which
    is the largest that holds."""
    from rich.table import Table

    console.print(
        f"one supervisor, many agents: generated island cells at events fidelity, "
        f"{duration_s:g} s of sim time each (seed {seed}), one process each"
    )
    rows: list[Size] = []
    for n in sizes:
        console.print(f"  {n} islands ({4 * n} agents) ...", highlight=False)
        rows.append(measure(n, duration_s, seed))
        r = rows[-1]
        console.print(
            f"    wall {r.wall_s:.1f} s, RTF {r.rtf:.2f}, holds: {r.holds}", highlight=False
        )
    table = Table(title="the largest cell one supervisor holds")
    for col in (
        "islands",
        "agents",
        "wall s",
        "RTF",
        "dropped",
        "lost",
        "in Execute",
        "islands working",
        "units",
        "ledger",
        "peak RSS MB",
        "holds",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r.islands),
            str(r.robots),
            f"{r.wall_s:.1f}",
            f"{r.rtf:.2f}",
            str(r.dropped),
            str(r.lost),
            f"{r.in_execute}/{r.robots}",
            f"{r.islands_working}/{r.islands}",
            str(r.units),
            "balanced" if r.balanced else "[red]NOT balanced[/red]",
            f"{r.rss_mb:.0f}",
            "yes" if r.holds else "[red]no[/red]",
        )
    console.print(table)
    held = [r for r in rows if r.holds]
    if held:
        big = max(held, key=lambda r: r.robots)
        console.print(f"largest that holds: {big.robots} agents, RTF {big.rtf:.2f}")
    else:
        console.print("[red]no size held[/red]")
