"""The ``lightsout`` subcommands for studies: ``sweep`` and ``calibrate``.

``sweep CELL --seeds 1-200`` runs a cell over many seeds and ``--set``
variants on Dask distributed (``clients.sweep``) and writes ``sweep.csv``,
``report.md`` and ``sweep.png``; ``calibrate CELL`` runs it with gripper drops
and writes the durations and drop outcomes a discrete-event model samples
(``cells.calibrate``). Every check (cell file, ``--set``, seeds, faults, the
cluster's address) comes before anything is written: a bad input is one line
``error: ...``, exit 2, and no directory left behind. Kept apart from
``clients.cli`` (which calls ``add_commands``) so that module stays small.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bus.errors import LightsoutError
from clients.args import MAX_CHAOS_RATE, positive, whole, within

FIDELITIES = ("physics", "events")
MAX_WORKERS = 256


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    """Run a cell over seeds and variants on a Dask cluster; write its table and report."""
    from cells.launch import run_dir
    from clients.sweep import cluster, parse_seeds, plan_sweep
    from clients.sweep_report import write_report

    seeds = parse_seeds(args.seeds)  # first: the default directory is named after them
    out = Path(args.out) if args.out else None
    if out is None:
        name = f"{Path(args.cell).name.removesuffix('.toml')}-seeds{seeds[0]}-{seeds[-1]}"
        out = run_dir(Path(args.sweeps_dir), re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80])
    plan = plan_sweep(
        args.cell,
        seeds=args.seeds,
        sets=args.set or [],
        duration_s=args.duration,
        out=out,
        scenario=args.faults,
        chaos_rate=args.chaos or 0.0,
        processes=args.processes,
        guard_s=args.guard,
        command=_command(args),
        fidelity=args.fidelity,
    )
    where = args.cluster or f"a local cluster of {args.workers} worker processes"
    console.print(
        f"[bold]sweep[/bold] {args.cell}: {len(plan.seeds)} seeds x {len(plan.variants)} "
        f"variants = {len(plan.jobs)} runs of {args.duration:g} s sim, on {where}"
    )
    with cluster(args.cluster, workers=args.workers) as client:
        start = time.perf_counter()
        rows = _gather(plan, client, console, quiet=args.quiet)
    variants = [(v.id, v.label) for v in plan.variants]
    md, png = write_report(
        rows,
        plan.out,
        variants=variants,
        title=plan.cell,
        command=plan.command,
        wall_s=time.perf_counter() - start,
    )
    _print_means(rows, variants, console)
    console.print(f"table:  {plan.out / 'sweep.csv'}")
    console.print(f"report: {md} ({png.name})")
    failed = [r for r in rows if r.get("status") != "ok"]
    for r in failed[:10]:
        console.print(f"[red]failed[/red] {r['variant']} seed {r['seed']}: {r.get('error', '')}")
    return 1 if failed else 0


def _command(args: argparse.Namespace) -> str:
    """The sweep as a command line (the report's first line): what makes it again."""
    argv = [
        "lightsout",
        "sweep",
        args.cell,
        "--seeds",
        args.seeds,
        "--duration",
        f"{args.duration:g}",
    ]
    for text in args.set or ():
        argv += ["--set", text]
    if args.faults:
        argv += ["--faults", args.faults]
    if args.chaos:
        argv += ["--chaos", f"{args.chaos:g}"]
    if args.processes:
        argv.append("--processes")
    if args.fidelity != "physics":
        argv += ["--fidelity", args.fidelity]
    return shlex.join(argv)


def _gather(plan: Any, client: Any, console: Console, *, quiet: bool) -> list[dict[str, Any]]:
    """Run the planned sweep on ``client`` with a progress bar; its rows, also in ``sweep.csv``."""
    from clients.sweep import run_sweep
    from clients.sweep_report import write_table

    plan.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs, [red]{task.fields[failed]} failed[/red]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("sweep", total=len(plan.jobs), failed=0)

        def on_row(row: dict[str, Any]) -> None:
            rows.append(row)
            failed = sum(r.get("status") != "ok" for r in rows)
            bar.update(task, completed=len(rows), failed=failed)

        try:
            run_sweep(plan, client, on_row=on_row)
        finally:
            # interrupted or not, what finished is in the table (in the plan's order)
            order = {(j.variant, j.seed): i for i, j in enumerate(plan.jobs)}
            rows.sort(key=lambda r: order.get((r["variant"], r["seed"]), 0))
            write_table(rows, plan.out / "sweep.csv")
    return rows


def _print_means(
    rows: list[dict[str, Any]], variants: list[tuple[str, str]], console: Console
) -> None:
    from clients.stats import LEVEL
    from clients.sweep import KPIS
    from clients.sweep_report import TITLES, summaries

    stats = summaries(rows, variants)
    table = Table(title=f"mean and {LEVEL:.0%} interval over the seeds")
    table.add_column("variant")
    for k in KPIS:
        table.add_column(TITLES[k], justify="right")
    for vid, label in variants:
        cells = []
        for k in KPIS:
            s = stats[vid][k]
            cells.append("-" if s.n == 0 else f"{s.mean:.3g} [{s.lo:.3g}, {s.hi:.3g}]")
        table.add_row(f"{vid} {label}", *cells)
    console.print(table)


def cmd_calibrate(args: argparse.Namespace, console: Console) -> int:
    """Run the cell with gripper drops on a local cluster and write its calibration."""
    from cells.calibrate import cell_sha256, drop_scenario, measure, write_calibration
    from cells.variants import make_variants
    from clients.sweep import Job, Plan, cluster

    (variant,) = make_variants(args.cell, [])
    cell_sha256(args.cell)
    seeds = tuple(range(1, args.seeds + 1))
    tmp = Path(tempfile.mkdtemp(prefix="lightsout-calibrate-"))
    try:
        jobs = tuple(
            Job(
                variant.id,
                variant.label,
                variant.text,
                seed,
                args.duration,
                drop_scenario(variant.cell, args.drop_rate, args.duration, seed),
                (),
                False,
                10.0,
                str(tmp / "runs" / f"seed{seed}"),
                "",
            )
            for seed in seeds
        )
        plan = Plan(args.cell, (variant,), seeds, jobs, tmp, "")
        console.print(
            f"[bold]calibrate[/bold] {args.cell}: {len(seeds)} physics runs of {args.duration:g} s "
            f"sim, {args.drop_rate:g} gripper drops per sim second"
        )
        with cluster(None, workers=args.workers) as client:
            rows = _gather(plan, client, console, quiet=args.quiet)
        failed = next((r for r in rows if r.get("status") != "ok"), None)
        if failed is not None:
            why = f"the run of seed {failed['seed']} failed ({failed.get('error')})"
            raise LightsoutError(f"{why}; no calibration written")
        measured = measure([Path(j.out) for j in jobs], variant.cell)
        made = {
            "duration_s": args.duration,
            "seeds": list(seeds),
            "drop_rate": args.drop_rate,
            "fidelity": "physics",
        }
        path = write_calibration(args.cell, variant.cell, measured, made)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ops = measured["operations"]
    samples = sum(o["duration_s"]["count"] for o in ops)
    console.print(
        f"calibration: {path}: {len(ops)} (robot, operation, stations), {samples} timed "
        f"operations, {measured['drops']['count']} drops"
    )
    return 0


def add_commands(sub: Any) -> None:
    """``sweep`` and ``calibrate``."""
    cores = os.cpu_count() or 2
    sw = sub.add_parser("sweep", help="run a cell over many seeds and --set variants (Dask)")
    sw.add_argument("cell", help="cell file, e.g. cells/assembly.toml")
    sw.add_argument("--seeds", required=True, help="seeds: 1-200, 7, or 1,5,9-12")
    sw.add_argument("--duration", type=positive, default=600.0, help="sim seconds per run (600)")
    trouble = sw.add_mutually_exclusive_group()
    trouble.add_argument("--faults", metavar="SCENARIO", help="inject a scenario file's faults")
    trouble.add_argument(
        "--chaos",
        type=within(1e-6, MAX_CHAOS_RATE),
        metavar="RATE",
        help="random faults of every kind, RATE per sim second, drawn per seed (runs with "
        "--processes; each run ends with its audit)",
    )
    sw.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="set a cell-file key (conveyors.infeed.speed=0.2); a key given with several "
        "values makes variants, every combination of them",
    )
    sw.add_argument("--fidelity", choices=FIDELITIES, default="physics", help="world model")
    sw.add_argument("--processes", action="store_true", help="each run one process per agent")
    sw.add_argument("--cluster", metavar="ADDRESS", help="a running Dask scheduler (tcp://H:8786)")
    sw.add_argument(
        "--workers",
        type=whole(1, MAX_WORKERS),
        default=cores,
        help=f"worker processes of the local cluster (default {cores}: the cores)",
    )
    sw.add_argument("--guard", type=positive, default=10.0, metavar="S", help="as for run")
    sw.add_argument("--out", metavar="DIR", help="the sweep directory (default SWEEPS_DIR/...)")
    sw.add_argument("--sweeps-dir", default="sweeps", help="where sweeps go (default sweeps/)")
    sw.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    cal = sub.add_parser("calibrate", help="measure durations and drop outcomes from physics runs")
    cal.add_argument("cell", help="cell file; the calibration goes beside it (NAME.calib.json)")
    cal.add_argument("--duration", type=positive, default=600.0, help="sim seconds per run (600)")
    cal.add_argument("--seeds", type=whole(1, 10_000), default=4, help="runs, seeds 1..N (4)")
    cal.add_argument(
        "--drop-rate",
        type=within(0.0, 1.0),
        default=0.02,
        metavar="R",
        help="gripper drops per sim second in each run, to measure where parts land (0.02)",
    )
    cal.add_argument("--workers", type=whole(1, MAX_WORKERS), default=cores, help="local workers")
    cal.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cal.set_defaults(func=cmd_calibrate)
