"""``recall LOT`` over a genealogy of 100,000 shipped units: how long the answer takes.

The store is filled through ``factory.genealogy.Genealogy.add_line``, the path a
factory run takes, with synthetic rows (no cell is run: 100,000 units would be
days of sim time): ``LINES`` lines, each unit a phone of ``PART_KINDS`` with
the seven steps of the assembly recipe done by one of four robots, parts drawn
first in, first out from lots of ``LOT_SIZE`` per kind. Then ``recall`` is
timed for ``SAMPLES`` lots spread over the run, each answer checked for its
size (a lot of ``LOT_SIZE`` parts is in exactly ``LOT_SIZE`` units), and
``trace`` for as many serials. The figures are the wall time of the call on a
fresh read-only connection (as ``lightsout recall`` opens it), median and
worst; the goal is under 1 s. ``cli_s`` is the whole command, ``lightsout
recall LOT --quiet`` as its own process (interpreter start and imports
included), median of ``CLI_SAMPLES``.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factory.genealogy import DB_NAME, Genealogy, LineRecord, OpRecord, PartRecord, UnitRecord

UNITS = 100_000
LINES = 11
PART_KINDS = ("frame", "battery", "board", "screen")
STEPS = ("load_frame", "place_battery", "place_board", "place_screen", "fasten", "inspect")
LOT_SIZE = 500
SAMPLES = 25
CLI_SAMPLES = 3
GOAL_S = 1.0
S = 1_000_000_000
CYCLE_NS = 3 * S
"""A phone shipped every 3 s across the plant, as the plant we measure ourselves against."""


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """What ``measure`` found."""

    units: int
    lots: int
    fill_s: float
    db_mb: float
    recall_median_s: float
    recall_max_s: float
    trace_median_s: float
    trace_max_s: float
    cli_s: float


def fill(path: Path) -> int:
    """A genealogy of ``UNITS`` shipped units at ``path``; returns the number of lots."""
    drawn = dict.fromkeys(PART_KINDS, 0)
    with Genealogy.create(path) as g:
        for li in range(LINES):
            line = f"L{li + 1:02d}"
            parts: list[PartRecord] = []
            units: list[UnitRecord] = []
            lot_of: dict[str, str] = {}
            for k in range(li, UNITS, LINES):
                t = k * CYCLE_NS
                unit = f"frame-{k:06d}"
                rec = UnitRecord(unit, "phone", f"F{k % 2 + 1}", t, "shipped", t + 25 * S)
                for kind in PART_KINDS:
                    part = unit if kind == "frame" else f"{kind}-{k:06d}"
                    parts.append(PartRecord(part, kind, t))
                    lot_of[part] = f"{kind}-{drawn[kind] // LOT_SIZE:05d}"
                    drawn[kind] += 1
                    rec.parts.append(part)
                rec.ops.extend(
                    OpRecord(step, f"R{(k + i) % 4 + 1}", t + i * 3 * S, t + (i * 3 + 2) * S)
                    for i, step in enumerate(STEPS)
                )
                units.append(rec)
            g.add_line(line, LineRecord(tuple(parts), tuple(units)), lot_of)
        lots = [
            (f"{kind}-{n:05d}", "acme", kind, LOT_SIZE, 0)
            for kind in PART_KINDS
            for n in range(-(-drawn[kind] // LOT_SIZE))
        ]
        g.add_lots(lots)
    return len(lots)


def _timed(path: Path, call: str, arg: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with Genealogy.open(path) as g:
        if call == "recall":
            n = len(g.recall(arg))
        else:
            found = g.trace(arg)
            n = len(found.parts) if found else 0
    return time.perf_counter() - t0, n


def measure() -> Figures:
    """Fill a store, time ``recall`` and ``trace``; raises if an answer has the wrong size."""
    with tempfile.TemporaryDirectory(prefix="lo-recall-") as tmp:
        path = Path(tmp) / DB_NAME
        t0 = time.perf_counter()
        lots = fill(path)
        fill_s = time.perf_counter() - t0
        per_kind = lots // len(PART_KINDS)
        recalls = []
        for i in range(SAMPLES):
            kind = PART_KINDS[i % len(PART_KINDS)]
            took, n = _timed(path, "recall", f"{kind}-{i * (per_kind - 1) // SAMPLES:05d}")
            if n != LOT_SIZE:
                raise AssertionError(f"recall of a {kind} lot found {n} units, not {LOT_SIZE}")
            recalls.append(took)
        traces = []
        for i in range(SAMPLES):
            k = i * (UNITS - 1) // SAMPLES
            took, n = _timed(path, "trace", f"L{k % LINES + 1:02d}:frame-{k:06d}")
            if n != len(PART_KINDS):
                raise AssertionError(f"trace of unit {k} found {n} parts")
            traces.append(took)
        size = path.stat().st_size / 1e6
        cli = []
        for i in range(CLI_SAMPLES):
            cmd = [sys.executable, "-m", "clients.cli", "recall", f"screen-{i:05d}", "-q"]
            t0 = time.perf_counter()
            done = subprocess.run([*cmd, "--run", tmp], capture_output=True, text=True, check=True)
            cli.append(time.perf_counter() - t0)
            if len(done.stdout.split()) != LOT_SIZE:
                raise AssertionError(f"lightsout recall listed {len(done.stdout.split())} units")
    return Figures(
        UNITS,
        lots,
        fill_s,
        size,
        statistics.median(recalls),
        max(recalls),
        statistics.median(traces),
        max(traces),
        statistics.median(cli),
    )
