"""The memory soak: does any process of a long ``--processes`` run keep growing?

``lightsout run CELL --processes --duration D`` is started as it would be by
hand, on a private ``ipc://`` endpoint. From outside, this module asks the
cell its sim time (``ControlClient.status``, about once a wall second) and,
every ``EVERY_S`` of sim time, reads the resident size (``VmRSS``) of the
launcher (the sim host) and of each of its children (the supervisor and every
agent) by pid from ``/proc`` (``bench.procmem``). Nothing in the run is
changed to be measured.

A process **grows** when the least-squares slope of its samples, leaving out
the first ``WARM_S`` of sim time (imports done, belts and trays filled, the
first units in the fixtures, the journal's first pages), is above both
``SLOPE_MB_H`` MB and ``SLOPE_SHARE`` of its median size per hour of sim
time. A slow leak of a small object per tick (24 a second, 86 400 an hour) of
a few dozen bytes would pass 2 MB an hour; the allocator's own ups and downs
over an hour stay well below it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import procmem
from bench.cellrun import has_sync_option
from bus.cellspec import CellSpec
from bus.errors import LightsoutError
from clients.control import ControlClient, ControlError

ROOT = Path(__file__).resolve().parents[1]
EVERY_S = 300.0
"""Sim seconds between two samples."""
WARM_S = 300.0
"""Sim seconds left out of the slope test at the start (the first sample only)."""
SLOPE_MB_H = 2.0
"""A process grows if its slope is above this many MB per hour of sim time ..."""
SLOPE_SHARE = 0.02
"""... and above this share of its median size per hour."""
POLL_S = 1.0
"""Wall seconds between two questions to the cell about its sim time."""


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """One process's samples and its verdict."""

    name: str
    kb: dict[float, int]
    """Sim seconds -> VmRSS in kB (missing where the process was not there)."""

    def slope_mb_h(self) -> float | None:
        """Least-squares slope in MB per hour of sim time, after the warm-up; None if too few."""
        pts = [(t, kb / 1024) for t, kb in sorted(self.kb.items()) if t >= WARM_S]
        if len(pts) < 3:
            return None
        mt = statistics.fmean(t for t, _ in pts)
        mm = statistics.fmean(m for _, m in pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        return sum((t - mt) * (m - mm) for t, m in pts) / den * 3600.0

    def median_mb(self) -> float:
        return statistics.median(self.kb.values()) / 1024 if self.kb else 0.0

    def grows(self) -> bool | None:
        """Whether the slope passes both thresholds; None if there are too few samples."""
        slope = self.slope_mb_h()
        if slope is None:
            return None
        return slope > SLOPE_MB_H and slope > SLOPE_SHARE * self.median_mb()


@dataclasses.dataclass(frozen=True, slots=True)
class Soak:
    """A whole soak: every process's series and how long it took."""

    cell: str
    duration_s: float
    series: list[Series]
    wall_s: float
    units: int
    exit_code: int


def soak(
    cell: CellSpec,
    duration_s: float,
    seed: int,
    *,
    every_s: float = EVERY_S,
    sync: str = "",
    on_sample: Callable[[float, dict[str, int]], None] | None = None,
) -> Soak:
    """Run ``cell`` with ``--processes`` for ``duration_s`` and sample every process's RSS.

    ``sync``: the barrier, passed on as ``--sync`` ("" leaves the launcher's default).
    """
    if not procmem.available():
        raise LightsoutError("the memory soak reads /proc: it needs Linux")
    with tempfile.TemporaryDirectory(prefix="lightsout-soak-") as tmp:
        endpoint = f"ipc://{tmp}/cell"
        cmd = [sys.executable, "-m", "clients.cli", "run", cell.source, "--processes", "-q"]
        cmd += ["--duration", f"{duration_s:g}", "--seed", str(seed), "--endpoint", endpoint]
        cmd += ["--runs-dir", tmp, "--name", "soak"]
        cmd += ["--sync", sync] if sync and has_sync_option() else []  # else: tick, the only one
        samples: dict[float, dict[str, int]] = {}
        t0 = time.perf_counter()
        with open(os.path.join(tmp, "launcher.log"), "wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            try:
                _follow(proc, endpoint, duration_s, every_s, samples, on_sample)
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        wall = time.perf_counter() - t0
        units = _units(Path(tmp) / "soak" / "kpis.json")
        if code != 0:
            tail = (Path(tmp) / "launcher.log").read_text(errors="replace").strip().splitlines()
            raise LightsoutError(f"the soak run exited {code}: {(tail or ['?'])[-1]}")
    names = sorted({n for s in samples.values() for n in s}, key=_order)
    series = [Series(n, {t: s[n] for t, s in samples.items() if n in s}) for n in names]
    return Soak(cell.name, duration_s, series, wall, units, code)


def _follow(
    proc: subprocess.Popen[bytes],
    endpoint: str,
    duration_s: float,
    every_s: float,
    samples: dict[float, dict[str, int]],
    on_sample: Callable[[float, dict[str, int]], None] | None,
) -> None:
    """Ask the sim time until the run ends; sample at every ``every_s`` boundary it passes.

    The first sample is taken at the first answer (just after start-up); then
    one per boundary, labelled with the boundary (the cell may be a little
    past it: a second of wall time is a few seconds of sim time); the last
    one may come a little before the end, labelled with its own time.
    """
    due = 0.0
    with ControlClient(endpoint, timeout_s=2.0, retries=0) as client:
        while proc.poll() is None:
            try:
                t_s = client.status().t_ns / 1e9
            except (ControlError, LightsoutError):
                time.sleep(POLL_S)  # not bound yet, or already shutting down
                continue
            # the run ends at the last boundary, perhaps between two questions: that sample
            # is taken in the last tenth of an interval, at the sim time it was taken
            closing = due >= duration_s and t_s >= duration_s - every_s / 10
            if due <= duration_s and (t_s >= due or closing):
                at = due if t_s >= due else float(round(t_s))
                rss = procmem.sample(proc.pid, "VmRSS")
                samples[at] = rss
                if on_sample is not None:
                    on_sample(at, rss)
                due += every_s
            time.sleep(POLL_S)


def _units(kpis: Path) -> int:
    try:
        return int(json.loads(kpis.read_text(encoding="utf-8"))["units_completed"])
    except (OSError, ValueError, KeyError):
        return -1


def _order(name: str) -> tuple[int, str]:
    """The host first, then the supervisor, then the robots by name."""
    rank = {procmem.HOST: 0, "supervisor": 1}
    return rank.get(name, 2), name


def print_soak(console: Console, result: Soak) -> None:
    """The series (MB per process at each sample), each process's slope and the verdict."""
    times = sorted({t for s in result.series for t in s.kb})
    table = Table(
        title=f"resident memory (VmRSS, MB) of every process: {result.cell}, --processes",
        caption=f"slope: least squares from {WARM_S:g} s on, MB per hour of sim time; grows: "
        f"slope > {SLOPE_MB_H:g} MB/h and > {SLOPE_SHARE:.0%} of the median per hour",
    )
    table.add_column("process")
    for t in times:
        table.add_column(f"{t:.0f} s", justify="right")
    table.add_column("slope MB/h", justify="right")
    table.add_column("grows", justify="right")
    for s in result.series:
        slope = s.slope_mb_h()
        grows = s.grows()
        table.add_row(
            s.name,
            *(f"{s.kb[t] / 1024:.1f}" if t in s.kb else "-" for t in times),
            "-" if slope is None else f"{slope:+.2f}",
            "?" if grows is None else ("[red]yes[/red]" if grows else "no"),
        )
    console.print(table)
    growing = [s.name for s in result.series if s.grows()]
    judged = [s for s in result.series if s.grows() is not None]
    verdict = (
        "too short to judge (fewer than 3 samples after the warm-up)"
        if not judged
        else f"[red]grows: {', '.join(growing)}[/red]"
        if growing
        else f"no process grows ({len(judged)} judged)"
    )
    console.print(
        f"{result.duration_s:.0f} s of sim time in {result.wall_s:.0f} s wall "
        f"({result.duration_s / result.wall_s:.1f} x real time), {result.units} units; {verdict}"
    )
