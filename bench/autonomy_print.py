"""``python -m bench --only autonomy``: run ``bench.autonomy``, print its tables, draw its
picture (each seed's fault, diagnosis and failure on one time line, ``autonomy.svg``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from matplotlib.figure import Figure
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import autonomy
from bench.autonomy import Paired, Row
from cells.schema import load_cell

PICTURE = Path("runs") / "bench" / "autonomy.svg"


def print_autonomy(console: Console, args: argparse.Namespace) -> None:
    """Every seed on and off, the per-seed table, the summary against the issue's bars."""
    duration = float(args.duration) if args.duration is not None else autonomy.DURATION_S
    seeds = list(range(args.seed, args.seed + args.seeds))
    one, five, _ = os.getloadavg()
    console.print(
        f"autonomy: {autonomy.CELL.name} at events fidelity, {duration:.0f} s a run, seeds "
        f"{seeds[0]}-{seeds[-1]}, one degrading fault each (drawn from the seed), maintained "
        f"(on) and diagnosis only (off); 2 runs at a time; load average {one:.1f} {five:.1f} "
        f"on {os.cpu_count()} cores"
    )
    with _runs_bar(console) as bar:
        task = bar.add_task("runs", total=2 * len(seeds))
        rows = autonomy.run(seeds, duration, done=lambda s, m: bar.advance(task))
    console.print(_table(rows))
    robots = len(load_cell(autonomy.CELL).robots)
    s = autonomy.summary(rows, duration, robots)
    console.print(_summary(s))
    path = draw(rows, duration)
    console.print(f"picture: {path}")


def print_false_alarms(console: Console, args: argparse.Namespace) -> None:
    """Fault-free runs at events fidelity: every diagnosis is a false alarm; per robot per
    1,000 sim hours, with its 95% upper bound."""
    duration = float(args.duration) if args.duration is not None else 3600.0
    seeds = list(range(args.seed, args.seed + args.seeds))
    robots = len(load_cell(autonomy.CELL).robots)
    one, five, _ = os.getloadavg()
    console.print(
        f"false alarms: {autonomy.CELL.name} at events fidelity, no faults, {duration:.0f} s "
        f"a run, seeds {seeds[0]}-{seeds[-1]}; 2 runs at a time; load average {one:.1f} "
        f"{five:.1f} on {os.cpu_count()} cores"
    )
    with _runs_bar(console) as bar:
        task = bar.add_task("runs", total=len(seeds))
        found = autonomy.false_alarms(seeds, duration, done=lambda s, m: bar.advance(task))
    table = Table(title="diagnoses of fault-free runs (each a false alarm)")
    for col in ("seed", "at s", "target", "cause", "series"):
        table.add_column(col)
    for seed, diagnoses in found.items():
        for d in diagnoses:
            table.add_row(
                str(seed),
                f"{int(d['t_ns']) / 1e9:.0f}",
                str(d["target"]),
                str(d["cause"]),
                str(d["quantity"]),
            )
    console.print(table)
    k = sum(len(v) for v in found.values())
    hours = len(seeds) * duration / 3600.0 * robots
    console.print(
        f"{k} false alarms in {hours:.0f} robot-hours: {k / hours * 1000:.1f} per robot per "
        f"1,000 sim hours (95% upper bound {autonomy.poisson_upper(k) / hours * 1000:.1f}; "
        f"the bar: at most 1)"
    )


def _runs_bar(console: Console) -> Progress:
    """A bar of runs done (they take minutes each on a shared machine)."""
    return Progress(
        TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _t(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _table(rows: list[Row]) -> Table:
    table = Table(title="each seed: the fault, its diagnosis (on) and its failure (off)")
    for col in (
        "seed",
        "fault",
        "target",
        "start s",
        "diagnosed s",
        "failure s",
        "lead / (failure - start)",
        "tripped on / off",
        "down s on / off",
        "units on / off",
        "other diagnoses on",
    ):
        table.add_column(col, justify="left" if col in ("fault", "target") else "right")
    for r in rows:
        share = r.lead_share
        table.add_row(
            str(r.seed),
            r.fault.kind.value,
            r.fault.target,
            f"{r.fault.at_s:.0f}",
            _t(r.on.diagnosed_s),
            _t(r.failure_s),
            "-" if share is None else f"{share:.2f}",
            f"{_t(r.on.tripped_s)} / {_t(r.off.tripped_s)}",
            f"{r.on.down_s:.0f} / {r.off.down_s:.0f}",
            f"{r.on.units} / {r.off.units}",
            str(r.on.false_alarms),
        )
    return table


def _pair(p: Paired, fmt: str = "{:.1f}") -> str:
    f = fmt.format
    return f"{f(p.on)} on, {f(p.off)} off: difference {f(p.diff)} +- {f(p.half_width)} (95%)"


def _summary(s: dict[str, object]) -> Table:
    table = Table(title="against the issue's bars")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("bar")
    caught = f"{s['caught']} of {s['judged']} ({float(s['caught_share']):.0%})"  # type: ignore[arg-type]
    table.add_row("caught before the failure", caught, ">= 95%")
    table.add_row(
        "median lead time / (failure - start)",
        f"{float(s['median_lead_share']):.2f}",
        ">= 0.5",  # type: ignore[arg-type]
    )
    for key, name, fmt in (
        ("hard_failures", "drives tripped per run", "{:.2f}"),
        ("down_s", "cell downtime per run (s)", "{:.0f}"),
        ("units", "units shipped per run", "{:.1f}"),
    ):
        bar = "higher with it on" if key == "units" else "lower with it on"
        p = s[key]
        assert isinstance(p, Paired)
        table.add_row(name, _pair(p, fmt), bar)
    table.add_row(
        "other diagnoses (maintained runs)",
        f"{s['false_alarms']} in {float(s['robot_hours']):.0f} robot-hours",  # type: ignore[arg-type]
        "(faulted runs: mostly the fault's effects elsewhere)",
    )
    return table


def draw(rows: list[Row], duration_s: float, path: Path = PICTURE) -> Path:
    """One line per seed: the fault from its start to its failure, the diagnosis on it."""
    fig = Figure(figsize=(10, 0.25 * len(rows) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    colours = {
        "joint_drift": "#1f77b4",
        "gripper_wear": "#ff7f0e",
        "belt_wear": "#2ca02c",
        "cycle_creep": "#9467bd",
    }
    for i, r in enumerate(rows):
        end = r.failure_s if r.failure_s is not None else duration_s
        colour = colours[r.fault.kind.value]
        ax.plot([r.fault.at_s / 60, end / 60], [i, i], color=colour, linewidth=4, alpha=0.6)
        if r.on.diagnosed_s is not None:
            ax.plot([r.on.diagnosed_s / 60], [i], marker="v", color="black")
        if r.failure_s is not None:
            ax.plot([r.failure_s / 60], [i], marker="x", color="#d62728")
    ax.set_yticks(range(len(rows)), [f"seed {r.seed}" for r in rows], fontsize="x-small")
    ax.set_xlabel("sim time (min)")
    ax.set_title(
        "each seed's fault from its start to its failure (x); diagnosed at the triangle",
        loc="left",
    )
    for kind, colour in colours.items():
        ax.plot([], [], color=colour, linewidth=4, alpha=0.6, label=kind)
    ax.legend(loc="lower right", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    return path
