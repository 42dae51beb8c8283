"""A factory run's cost: wall time, sim seconds per wall second, peak memory, by line count.

Each measurement is ``factory.run.run_factory`` in a fresh process of its own
(so its peak RSS is its own): ``cells/factory_2.toml`` and
``cells/factory_11.toml``, every line a physics assembly cell, one process,
one order big enough to keep every line busy. Figures: the wall time, the
factory's sim seconds per wall second (every line advances that fast at once)
and its line-seconds per wall second, the units every line built, the peak
RSS of the process, and whether every part kind balanced.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTORIES = ("factory_2.toml", "factory_11.toml")

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from factory.run import OrderLine, run_factory
from factory.schema import load_factory
spec = load_factory(sys.argv[1])
order = OrderLine("retail", "phone", 40 * len(spec.lines), 3600.0)
t0 = time.perf_counter()
k = run_factory(spec, Path(sys.argv[2]), orders=[order], duration_s=float(sys.argv[3]),
                seed=int(sys.argv[4]))
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "lines": len(spec.lines),
                  "units": sum(ln["units_shipped"] or 0 for ln in k["lines"].values()),
                  "balanced": k["material_balanced"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """One factory's run."""

    factory: str
    lines: int
    duration_s: float
    wall_s: float
    units: int
    rss_mb: float
    balanced: bool

    @property
    def rtf(self) -> float:
        """Sim seconds of the whole factory per wall second."""
        return self.duration_s / self.wall_s

    @property
    def line_rtf(self) -> float:
        """Sim seconds of line per wall second (summed over the lines)."""
        return self.lines * self.rtf


def run(duration_s: float, seed: int) -> list[Figures]:
    """Run each factory of ``FACTORIES`` for ``duration_s`` in a process of its own."""
    out = []
    for name in FACTORIES:
        with tempfile.TemporaryDirectory(prefix="lo-factory-") as tmp:
            cmd = [sys.executable, "-c", _CHILD, str(ROOT / "cells" / name), f"{tmp}/run"]
            done = subprocess.run(
                [*cmd, str(duration_s), str(seed)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        out.append(
            Figures(
                name,
                got["lines"],
                duration_s,
                got["wall_s"],
                got["units"],
                got["rss_mb"],
                got["balanced"],
            )
        )
    return out
