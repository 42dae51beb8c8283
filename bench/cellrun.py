"""One measured cell run, in a process of its own: ``python -m bench.cellrun CELL ...``.

``bench.rtf`` starts one of these per run so that each run's peak memory is
its own (a process that ran the cell before would carry that run's peak into
the next). It runs the cell with ``cells.launch.run_cell``, as ``lightsout run``
does, and prints one JSON line:

* ``rtf``: sim seconds per wall second of ``run_cell``; ``cpu_s``: the CPU
  seconds it cost, this process's and its children's (every participant
  process has exited by then), which a loaded machine disturbs far less than
  the wall;
* ``opened``, ``trips``, ``bus``, ``acts``: the ticks the barrier opened,
  its Tick/Done round trips (one per participant ticked), the cell-bus
  messages the answers said were sent (the causal barrier's counts) and the
  acts (joint targets, the supervisor's world commands) they carried. The
  first three from ``kpis.json``'s ``sim`` block where the clock keeps them,
  else (and the acts always) counted by wrapping the clock's ``tick`` in this
  process: the participants are not touched;
* ``peak_kb``: every process's peak RSS (``bench.procmem.PeakWatch``). Not
  ``getrusage(RUSAGE_CHILDREN)``: a child forked to ``exec`` a node briefly
  shares this process's pages, so the kernel's figure is this process's size
  at the fork, not the node's.

``--sync`` sets the cell's barrier (``[cell] sync``) as ``lightsout run --sync``
does, where cells have one; asked for a barrier this code does not have, the
worker says so and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.procmem import PeakWatch
from bus.cellspec import CellSpec
from bus.clock import ClockServer
from bus.errors import LightsoutError
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

SYNC_FIELD = "sync"
"""The launcher's option naming the barrier (``tick`` or ``event``), where it has one."""
DEFAULT_SYNC = "tick"
"""The fixed-rate barrier: what every launcher runs, with or without the option."""


def has_sync_option() -> bool:
    """Whether the cell has a barrier to choose (``[cell] sync``, ``lightsout run --sync``)."""
    return SYNC_FIELD in {f.name for f in dataclasses.fields(CellSpec)}


def sync_modes() -> tuple[str, ...]:
    """The barriers this launcher can run: ``tick``, and ``event`` once ``--sync`` exists."""
    return (DEFAULT_SYNC, "event") if has_sync_option() else (DEFAULT_SYNC,)


@dataclasses.dataclass(slots=True)
class Traffic:
    """What passed through the barrier during a run."""

    ticks: int = 0
    answers: int = 0
    bus: int = 0
    acts: int = 0

    def add(self, dones: object) -> None:
        """Count one tick's answers (a name -> ``Done`` mapping)."""
        self.ticks += 1
        if not isinstance(dones, dict):
            return
        for done in dones.values():
            self.answers += 1
            self.bus += sum(int(getattr(c, "n", 0)) for c in getattr(done, "sent", ()))
            self.acts += getattr(done, "act", None) is not None


@contextmanager
def tapped(traffic: Traffic) -> Iterator[None]:
    """Count every tick the clock runs in this process into ``traffic``."""
    original: Callable[..., Any] = ClockServer.tick

    @functools.wraps(original)
    def tick(self: ClockServer, *args: Any, **kwargs: Any) -> Any:
        dones = original(self, *args, **kwargs)
        traffic.add(dones)
        return dones

    ClockServer.tick = tick  # type: ignore[method-assign]
    try:
        yield
    finally:
        ClockServer.tick = original  # type: ignore[method-assign]


def cpu_s() -> float:
    """CPU seconds (user and system) of this process and of its children that have exited."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(
    cell_path: str, duration_s: float, seed: int, *, processes: bool, sync: str
) -> dict[str, Any]:
    """Run the cell once; return the figures the module docstring lists."""
    cell = load_cell(cell_path)
    if has_sync_option():  # as ``lightsout run --sync`` does: only the clock's host reads it
        given: dict[str, Any] = {SYNC_FIELD: sync}
        cell = dataclasses.replace(cell, **given)
    opts = RunOptions(seed=seed, duration_s=duration_s, processes=processes)
    traffic = Traffic()
    with tempfile.TemporaryDirectory() as tmp, PeakWatch() as peaks, tapped(traffic):
        cpu0 = cpu_s()
        t0 = time.perf_counter()
        kpis = run_cell(cell, Path(tmp), opts)
        wall = time.perf_counter() - t0
        cpu = cpu_s() - cpu0
    sim = kpis.get("sim", {})  # the clock's own counts, where it keeps them
    return {
        "opened": int(sim.get("opened_ticks", traffic.ticks)),
        "trips": int(sim.get("round_trips", traffic.answers)),
        "bus": int(sim.get("bus_messages", traffic.bus)),
        "acts": traffic.acts,
        "rtf": duration_s / wall,
        "wall_s": wall,
        "cpu_s": cpu,
        "units": int(kpis["units_completed"]),
        "balanced": bool(kpis["ledger_balanced"]),
        "peak_kb": peaks.peaks,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cellrun")
    ap.add_argument("cell")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", action="store_true")
    ap.add_argument("--sync", default=DEFAULT_SYNC, choices=("tick", "event"))
    args = ap.parse_args(argv)
    if args.sync not in sync_modes():
        print(f"error: this launcher has no --sync {args.sync}", file=sys.stderr)
        return 2
    try:
        out = measure(args.cell, args.duration, args.seed, processes=args.processes, sync=args.sync)
    except LightsoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
