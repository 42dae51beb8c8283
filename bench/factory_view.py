"""What the factory view costs a run: the same factory with and without it, side by side.

``cells/factory_2.toml`` with both lines at events fidelity (where the lines are
cheapest, so the view's share is largest), one process, one order keeping both
busy, run three ways in turn, each ``REPEATS`` times (the best wall time of each
kept, so a neighbour's burst on the shared cores does not count): plain; with
the view built at every coordinator step (``factory.view.factory_status``, what
``status`` answers and the console shows); and with it also rendered to a
(discarded) terminal at every step, the worst the console could cost (it
redraws 4 times a second, not at every step). Printed as ratios to plain.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from clients.console_factory import render_factory
from factory.run import OrderLine, run_factory
from factory.schema import load_factory

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 2
MODES = ("plain", "view built every step", "view built and rendered every step")


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """Best wall seconds per mode, and the steps the view was built at."""

    duration_s: float
    wall_s: dict[str, float]
    steps: int

    def ratio(self, mode: str) -> float:
        return self.wall_s[mode] / self.wall_s[MODES[0]]


def _events_factory(tmp: Path) -> Path:
    text = (ROOT / "cells" / "factory_2.toml").read_text()
    text = text.replace('fidelity = "physics"', 'fidelity = "events"')
    text = text.replace('cell = "assembly.toml"', f'cell = "{ROOT / "cells" / "assembly.toml"}"')
    path = tmp / "phones2_events.toml"
    path.write_text(text)
    return path


def measure(duration_s: float, seed: int) -> Figures:
    """Run every mode ``REPEATS`` times, interleaved."""
    best = dict.fromkeys(MODES, float("inf"))
    steps = [0]
    screen = Console(file=io.StringIO(), width=160)

    def built(view: dict[str, Any]) -> None:
        steps[0] += 1

    def rendered(view: dict[str, Any]) -> None:
        steps[0] += 1
        screen.print(render_factory(view))
        screen.file = io.StringIO()

    hooks: dict[str, Callable[[dict[str, Any]], None] | None] = dict(
        zip(MODES, (None, built, rendered), strict=True)
    )
    with tempfile.TemporaryDirectory(prefix="lo-view-") as tmp:
        spec = load_factory(str(_events_factory(Path(tmp))))
        order = OrderLine("retail", "phone", 40 * len(spec.lines), 3600.0)
        for r in range(REPEATS):
            for i, mode in enumerate(MODES):
                steps[0] = 0
                t0 = time.perf_counter()
                run_factory(
                    spec,
                    Path(tmp) / f"run-{r}-{i}",
                    orders=[order],
                    duration_s=duration_s,
                    seed=seed,
                    on_step=hooks[mode],
                )
                best[mode] = min(best[mode], time.perf_counter() - t0)
    return Figures(duration_s, best, steps[0])
