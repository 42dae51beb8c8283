"""``python -m bench --only fidelity``: run ``bench.fidelity`` and print its tables."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import fidelity
from bench.fidelity import Figures, Speed


def _load() -> str:
    """The load averages (1, 5, 15 min): the machine is shared, the wall figures depend on it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s sim"),
        TimeElapsedColumn(),
        console=console,
    )


def print_fidelity(console: Console, args: argparse.Namespace) -> None:
    """The parts ``--parts`` names: accuracy tables, then the speed table and its time split."""
    parts = {p.strip() for p in args.parts.split(",")}
    if "accuracy" in parts:
        _accuracy(console, args)
    if "speed" in parts:
        _speed(console, args)


def _accuracy(console: Console, args: argparse.Namespace) -> None:
    duration = float(args.duration) if args.duration is not None else fidelity.DURATION_S
    seeds = list(range(args.seed, args.seed + args.seeds))
    faults = fidelity.scenario(duration)
    kinds = sorted({f.kind.value for f in faults})
    console.print(
        f"accuracy: {fidelity.CELL.name}, {duration:.0f} s of sim time per run, one process, "
        f"physics then events fidelity, seeds {seeds[0]}-{seeds[-1]}; {len(faults)} faults "
        f"({', '.join(kinds)}); {_load()}"
    )
    with _bar(console) as bar:
        total_ns = int(duration * 1e9)

        def progress(label: str) -> fidelity.Progress:
            task: TaskID = bar.add_task(label, total=duration)

            def on_tick(t_ns: int, _total: int) -> None:
                if t_ns % 1_000_000_000 < 50_000_000 or t_ns >= total_ns:
                    bar.update(task, completed=t_ns / 1e9)

            return on_tick

        def on_result(fid: str, seed: int, got: Figures) -> None:
            console.log(
                f"{fid} seed {seed}: {got.units} units, {got.throughput:.1f}/h, cycle "
                f"{got.cycle_s:.2f} s, OEE {got.oee:.3f}, ledger "
                f"{'balanced' if got.balanced else 'NOT balanced'}, {got.wall_s:.0f} s wall"
            )

        runs = fidelity.accuracy(duration, seeds, progress=progress, on_result=on_result)
    first = {f: runs[f][0].rows() for f in fidelity.FIDELITIES}
    _compare(console, f"seed {seeds[0]}: physics and events fidelity", first)
    means = {f: fidelity.mean_figures(runs[f]) for f in fidelity.FIDELITIES}
    _compare(console, f"mean over seeds {seeds[0]}-{seeds[-1]}", means)
    table = Table(title="per seed: throughput (units/h), physics / events")
    for col in ("seed", "physics", "events", "difference %", "wall s physics / events"):
        table.add_column(col, justify="right")
    for seed, p, e in zip(seeds, runs["physics"], runs["events"], strict=True):
        table.add_row(
            str(seed),
            f"{p.throughput:.1f}",
            f"{e.throughput:.1f}",
            f"{fidelity.difference(p.throughput, e.throughput):+.1f}",
            f"{p.wall_s:.0f} / {e.wall_s:.0f}",
        )
    console.print(table)
    console.print(f"after the runs: {_load()}")


def _compare(console: Console, title: str, figs: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    for col in ("figure", "physics", "events", "difference %"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for name, p in figs["physics"].items():
        e = figs["events"][name]
        fmt = ".1f" if name.startswith("throughput") else (".2f" if "cycle" in name else ".3f")
        table.add_row(name, f"{p:{fmt}}", f"{e:{fmt}}", f"{fidelity.difference(p, e):+.1f}")
    console.print(table)


def _speed(console: Console, args: argparse.Namespace) -> None:
    hours = float(args.hours)
    console.print(
        f"speed: {fidelity.CELL.name}, {hours:g} h of sim time with chaos {args.chaos:g}/s "
        f"(seed {args.seed}), events fidelity, in one process and with --processes; then the "
        f"SimPy model (bench/simpy_line.py) over the same hours; {_load()}"
    )
    runs = []
    for processes in (False, True):
        with _bar(console) as bar:
            label = "events + chaos, " + ("processes" if processes else "one process")
            task = bar.add_task(label, total=hours * 3600.0)

            def on_tick(t_ns: int, _total: int, task: TaskID = task, bar: Progress = bar) -> None:
                if t_ns % 60_000_000_000 < 50_000_000:
                    bar.update(task, completed=t_ns / 1e9)

            runs.append(
                fidelity.speed(hours, args.chaos, args.seed, processes=processes, progress=on_tick)
            )
            bar.update(task, completed=hours * 3600.0)
    one, got = runs
    _print_speed(console, got, one)
    duration = min(hours * 3600.0, fidelity.DURATION_S)
    console.print(
        f"split: one events run in one process, {duration:.0f} s of sim time with the accuracy "
        f"scenario (seed {args.seed}), its parts timed"
    )
    _print_split(console, fidelity.split(duration, args.seed))
    console.print(f"after the runs: {_load()}")


def _print_split(console: Console, got: fidelity.Split) -> None:
    sec, calls = got.seconds, got.calls
    participants = sec["agents"] + sec["supervisor"]
    rows = [
        ("events world (EventWorld.advance)", sec["world"], calls["world"]),
        ("agents' steps (thread CPU)", sec["agents"], calls["agents"]),
        ("supervisor's steps (thread CPU)", sec["supervisor"], calls["supervisor"]),
        ("clock round trips less the steps", max(0.0, sec["clock"] - participants), calls["clock"]),
        ("loop, faults, start-up, the rest", max(0.0, got.wall_s - sec["world"] - sec["clock"]), 0),
    ]
    table = Table(
        title=f"where {got.duration_s:.0f} s of events fidelity take {got.wall_s:.1f} s of wall "
        f"(real-time factor {got.duration_s / got.wall_s:.0f})"
    )
    for col in ("part", "wall s", "share", "calls", "us per call"):
        table.add_column(col, justify="left" if col == "part" else "right")
    for name, s, n in rows:
        each = f"{s / n * 1e6:.0f}" if n else ""
        table.add_row(name, f"{s:.2f}", f"{s / got.wall_s:.0%}", str(n or ""), each)
    console.print(table)


def _print_speed(console: Console, got: Speed, one: Speed) -> None:
    table = Table(title=f"{got.hours:g} h of the assembly line: sim hours per wall second")
    for col in ("model", "wall s", "sim h / wall s", "units", "ratio SimPy / events"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row(
        f"events fidelity, chaos ({one.faults} faults), one process, ledger "
        f"{'balanced' if one.balanced else 'NOT balanced'}",
        f"{one.wall_s:.1f}",
        f"{one.per_wall_s:.4f}",
        str(one.units),
        f"{one.simpy_per_wall_s / one.per_wall_s:.0f}",
    )
    ratio = got.simpy_per_wall_s / got.per_wall_s
    table.add_row(
        f"events fidelity, chaos ({got.faults} faults), --processes, ledger "
        f"{'balanced' if got.balanced else 'NOT balanced'}",
        f"{got.wall_s:.1f}",
        f"{got.per_wall_s:.4f}",
        str(got.units),
        f"{ratio:.0f}",
    )
    rest = got.wall_s - got.freeze_wall_s - got.restart_wait_s
    table.add_row(
        "  the same without freeze guards and restart waits",
        f"{rest:.1f}",
        f"{got.per_wall_s_unfrozen:.4f}",
        "",
        f"{got.simpy_per_wall_s / got.per_wall_s_unfrozen:.0f}",
    )
    table.add_row(
        "SimPy model (bare queueing, no controller)",
        f"{got.simpy_wall_s:.2f}",
        f"{got.simpy_per_wall_s:.1f}",
        str(got.simpy_units),
        "1",
    )
    console.print(table)
    console.print(
        f"one process over --processes: wall {one.wall_s / got.wall_s:.2f} "
        f"(units {one.units} and {got.units}: the same run, cells.residents)"
    )
    sim = got.sim
    trips = int(sim.get("round_trips", 0))
    opened = int(sim.get("opened_ticks", 0))
    msgs = int(sim.get("bus_messages", 0))
    ticks = int(sim.get("ticks", 0))
    sim_s = got.hours * 3600.0
    where = Table(title="where the events run's wall time goes (kpis.json sim block)")
    for col in ("what", "count", "per sim s", "wall ms each"):
        where.add_column(col, justify="left" if col == "what" else "right")
    where.add_row("control ticks of the run", str(ticks), f"{ticks / sim_s:.1f}", "")
    for name, n in (
        ("ticks opened (someone had to act)", opened),
        ("Tick/Done round trips", trips),
        ("cell-bus messages", msgs),
    ):
        each = f"{rest / n * 1e3:.2f}" if n else "-"
        where.add_row(name, str(n), f"{n / sim_s:.2f}", each)
    where.add_row(
        "CPU of this process (clock, events world)", "", "", f"{got.host_cpu_s:.0f} s in all"
    )
    where.add_row("CPU of the supervisor and agents", "", "", f"{got.children_cpu_s:.0f} s in all")
    where.add_row(
        "freeze guards (chaos freezes x clock guard)", "", "", f"{got.freeze_wall_s:.0f} s in all"
    )
    where.add_row(
        "restart waits (sim.restart_wait_s)", "", "", f"{got.restart_wait_s:.1f} s in all"
    )
    console.print(where)
    console.print(
        "wall ms each: the run's wall seconds less freeze guards and restart waits, over the "
        "count; the events world itself does no physics, so the rest is the controller: the "
        "clock's round trips, the agents' and supervisor's work per opened tick, and the bus"
    )
