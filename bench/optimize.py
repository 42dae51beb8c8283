"""Self-optimization: the learned policy against contract net and FCFS, and a slowed robot's
work moving (issue #15, "what it must show").

Both parts run at events fidelity (``sim.events``, timed from the assembly cell's
calibration, which ``bench/robot_bound*.toml`` borrow: same steps, the arms'
speeds scaled), two runs at a time (one process each), with maintenance off so
that no false alarm takes a robot out of one run and not another.

**Policies side by side** (``bench/robot_bound_worn.toml``). On the robot-bound
cell of ``bench/robot_bound.toml`` the robots' bids are their own plans, and
plans know each arm's speed: contract net then gives work to whoever really
finishes first, and learned times add nothing (both ship about 364 phones an
hour there). Learned times matter where what a robot really takes differs
from what it bids, so the cell used here has four arms alike on paper (all
planned at 1.5 rad/s) and two of them, R1 and R2, with worn drives from the
start: a hidden ``slow_robot`` (``hidden = true``, ``docs/faults.md``) of
factor ``WORN_FACTOR`` for the whole run, under which a robot runs that many
times slower than it plans and bids. Contract net believes the bids and gives
the worn arms as much work as the sound ones; FCFS gives each operation to
the first idle arm in the cell file's order, R1 and R2 first; the learned
policy learns within a few operations what each arm takes and awards by it.
Each policy runs the same seeds for ``DURATION_S``; the figure is units
shipped per hour, the ratios are per seed (learned over each other) with the
mean's 95% t interval over the seeds.

**A robot slows mid-run** (``bench/robot_bound.toml``). At ``SLOW_AT_S`` R3,
the busiest arm (a fast one), slows ``SLOW_FACTOR`` times for the rest of the
run; once with the cell's bids seeing it (``slow_robot``), once hidden from
them (``hidden = true``: a drive that starts lagging). Each runs with
optimization on (``learned``) and off (``--no-optimize``: contract net on the
robots' bids). The throughput is shipped units over a trailing window of
``WINDOW_S``; the new bound is the fleet bound (``supervisor.bottleneck``) of
the run's end, from the learned paces with R3 slow. Recovered is reaching 0.9
of that bound scaled by the share of its bound the same cell ships with no
fault (``reference``): the bound leaves out travel, waits and the fixtures
being taken one step at a time, so no run comes near the bound itself (the
raw ratio is printed too).
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from bus.simtime import NS
from cells.calibrate import with_fidelity
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.stats import Summary, summarize

ROOT = Path(__file__).resolve().parents[1]
WORN_CELL = ROOT / "bench" / "robot_bound_worn.toml"
CELL = ROOT / "bench" / "robot_bound.toml"
CALIBRATION = ROOT / "cells" / "assembly.calib.json"
POLICIES = ("learned", "contract_net", "fcfs")
SEEDS = 5
DURATION_S = 900.0
WORN = ("R1", "R2")
WORN_FACTOR = 4.0
SLOW_ROBOT = "R3"
SLOW_FACTOR = 3.0
SLOW_AT_S = 300.0
RECOVERY_S = 900.0
"""How long the slowed run goes on after the slowdown."""
WINDOW_S = 300.0
GOAL_S = 600.0
"""Recovered within this much sim time of the slowdown, or not."""
SHARE = 0.9
WORKERS = 2


def prepared(path: Path, policy: str, *, optimize: bool = True) -> CellSpec:
    """The cell at events fidelity under ``policy``, maintenance off, optimization on or off."""
    cell = with_fidelity(load_cell(path), path, "events", borrowed=CALIBRATION)
    opt = dataclasses.replace(cell.optimize, enabled=optimize)
    return dataclasses.replace(cell, policy=policy, maintain=False, optimize=opt)


def run_one(args: tuple[CellSpec, int, float, tuple[ScheduledFault, ...], str]) -> dict[str, Any]:
    """One run: its KPIs and the sim times units shipped at."""
    cell, seed, duration, faults, out = args
    kpis = run_cell(cell, Path(out), RunOptions(seed=seed, duration_s=duration, faults=faults))
    shipped = []
    with (Path(out) / "events.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if '"unit_shipped"' in line:
                shipped.append(int(json.loads(line)["t_ns"]))
    return {"kpis": kpis, "shipped": shipped}


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """Units per hour per policy and seed, and learned's ratios over the others."""

    seeds: tuple[int, ...]
    per_hour: dict[str, list[float]]
    ratios: dict[str, Summary]
    """Other policy -> learned's units per hour over its, per seed, summarized."""
    wall_s: float


def worn_faults(duration_s: float) -> tuple[ScheduledFault, ...]:
    """R1's and R2's drives worn from the start to the end (hidden from their bids)."""
    kind = FaultKind.SLOW_ROBOT
    return tuple(ScheduledFault(0.5, r, kind, duration_s, WORN_FACTOR, hidden=True) for r in WORN)


def compare(seeds: tuple[int, ...], duration_s: float, tmp: Path) -> Comparison:
    """Every policy over ``seeds`` on the worn cell."""
    import time

    t0 = time.perf_counter()
    jobs = [
        (prepared(WORN_CELL, p), s, duration_s, worn_faults(duration_s), str(tmp / f"{p}-{s}"))
        for p in POLICIES
        for s in seeds
    ]
    with ProcessPoolExecutor(WORKERS) as pool:
        results = list(pool.map(run_one, jobs))
    per_hour: dict[str, list[float]] = {p: [] for p in POLICIES}
    for (cell, *_), got in zip(jobs, results, strict=True):
        per_hour[cell.policy].append(float(got["kpis"]["throughput_per_hour"]))
    ratios = {
        other: summarize(
            [
                a / b if b else float("nan")
                for a, b in zip(per_hour["learned"], per_hour[other], strict=True)
            ]
        )
        for other in POLICIES[1:]
    }
    return Comparison(seeds, per_hour, ratios, time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    """One slowed run: optimization on or off, the slowdown seen by the bids or not."""

    seed: int
    hidden: bool
    optimize: bool
    bound: float
    """The fleet bound at the end (units per hour, R3 slow)."""
    target: float
    """What counts as recovered: ``SHARE`` x bound x the fault-free share."""
    before: float
    """Units per hour over the window before the slowdown."""
    after: float
    """Units per hour over the last window."""
    recovered_s: float
    """Sim seconds from the slowdown to the window first reaching ``target`` (nan: never)."""
    changes: int


def _bound(kpis: dict[str, Any]) -> float:
    per = kpis["bottleneck"]["resources_per_hour"]
    return float(per.get("fleet") or kpis["bottleneck"]["bound_per_hour"] or 0.0)


def _rate(shipped: list[int], end_ns: int) -> float:
    start = end_ns - round(WINDOW_S * NS)
    return sum(1 for t in shipped if start < t <= end_ns) * 3600.0 / WINDOW_S


def recoveries(seeds: tuple[int, ...], tmp: Path) -> tuple[float, list[Recovery]]:
    """The slowed runs, and the fault-free share of its bound the cell ships (``reference``)."""
    total = SLOW_AT_S + RECOVERY_S
    jobs, keys = [], []
    for s in seeds:
        jobs.append((prepared(CELL, "learned"), s, total, (), str(tmp / f"free-{s}")))
        keys.append((s, False, True, True))
        for hidden in (False, True):
            fault = ScheduledFault(
                SLOW_AT_S, SLOW_ROBOT, FaultKind.SLOW_ROBOT, total, SLOW_FACTOR, hidden=hidden
            )
            for on in (True, False):
                cell = prepared(CELL, "learned", optimize=on)
                jobs.append((cell, s, total, (fault,), str(tmp / f"slow-{s}-{hidden}-{on}")))
                keys.append((s, hidden, on, False))
    with ProcessPoolExecutor(WORKERS) as pool:
        results = list(pool.map(run_one, jobs))
    shares = [
        float(got["kpis"]["throughput_per_hour"]) / _bound(got["kpis"])
        for key, got in zip(keys, results, strict=True)
        if key[3] and _bound(got["kpis"])
    ]
    reference = sum(shares) / len(shares) if shares else float("nan")
    out = []
    at_ns, end_ns = round(SLOW_AT_S * NS), round(total * NS)
    step_ns = round(10 * NS)
    for (s, hidden, on, free), got in zip(keys, results, strict=True):
        if free:
            continue
        bound = _bound(got["kpis"])
        target = SHARE * bound * reference
        recovered = float("nan")
        for t in range(at_ns + step_ns, end_ns + 1, step_ns):
            # a window wholly after the slowdown, or it still counts the fast minutes before
            if t - round(WINDOW_S * NS) >= at_ns and _rate(got["shipped"], t) >= target:
                recovered = (t - at_ns) / NS
                break
        out.append(
            Recovery(
                s,
                hidden,
                on,
                bound,
                target,
                _rate(got["shipped"], at_ns),
                _rate(got["shipped"], end_ns),
                recovered,
                int(got["kpis"]["optimize"]["changes"]),
            )
        )
    return reference, out


def print_optimize(console: Any, seeds: tuple[int, ...], duration_s: float) -> None:
    """Run both parts and print them (``python -m bench --only optimize``)."""
    import tempfile

    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        console.print(
            f"{WORN_CELL.name}: R1 and R2 worn {WORN_FACTOR:g}x (hidden from their bids), "
            f"{duration_s:.0f} s per run, seeds {seeds[0]}-{seeds[-1]}, events fidelity"
        )
        got = compare(seeds, duration_s, Path(tmp) / "compare")
        table = Table(title="units per hour by allocation policy (robot-bound, worn drives)")
        table.add_column("seed", justify="right")
        for p in POLICIES:
            table.add_column(p, justify="right")
        for i, s in enumerate(got.seeds):
            table.add_row(str(s), *(f"{got.per_hour[p][i]:.0f}" for p in POLICIES))
        console.print(table)
        for other, r in got.ratios.items():
            goal = 1.15 if other == "fcfs" else 1.05
            console.print(
                f"learned / {other}: {r.mean:.3f} (95% CI {r.lo:.3f} to {r.hi:.3f}, "
                f"min {r.minimum:.3f}; goal >= {goal:.2f}: "
                f"{'met' if r.minimum >= goal else 'NOT met'} on every seed)"
            )
        console.print(f"wall {got.wall_s:.0f} s")
        rec_seeds = seeds[:3]
        console.print(
            f"{CELL.name}: {SLOW_ROBOT} {SLOW_FACTOR:g}x slower from {SLOW_AT_S:g} s, "
            f"{RECOVERY_S:g} s after; window {WINDOW_S:g} s; seeds {rec_seeds}"
        )
        reference, rows = recoveries(rec_seeds, Path(tmp) / "slow")
    console.print(f"fault-free share of the fleet bound (reference): {reference:.3f}")
    table = Table(
        title="throughput after a robot slows (units per hour)",
        caption=f"recovered: the window reaches {SHARE:g} x new bound x reference",
    )
    for col in (
        "seed",
        "bids see it",
        "optimize",
        "before",
        "last window",
        "new bound",
        "last / bound",
        "target",
        "recovered after s",
        "changes",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r.seed),
            "no" if r.hidden else "yes",
            "on" if r.optimize else "off",
            f"{r.before:.0f}",
            f"{r.after:.0f}",
            f"{r.bound:.0f}",
            f"{r.after / r.bound:.2f}" if r.bound else "-",
            f"{r.target:.0f}",
            "never" if r.recovered_s != r.recovered_s else f"{r.recovered_s:.0f}",
            str(r.changes),
        )
    console.print(table)
    for hidden in (False, True):
        for on in (True, False):
            mine = [r for r in rows if r.hidden == hidden and r.optimize == on]
            ok = sum(1 for r in mine if r.recovered_s == r.recovered_s and r.recovered_s <= GOAL_S)
            console.print(
                f"slowdown {'hidden from' if hidden else 'seen by'} the bids, optimization "
                f"{'on' if on else 'off'}: recovered within {GOAL_S / 60:g} min in {ok} of "
                f"{len(mine)} seeds"
            )
