"""``python -m bench``: run the benchmarks and print their ratios."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import (
    autonomy,
    control,
    curve,
    drift,
    drops,
    factory,
    factory_view,
    failover,
    fidelity,
    fleet,
    maintenance,
    memory,
    policy,
    quality,
    recall,
    record,
    restarts,
    rtf,
    timeshare,
)
from bench.cellrun import sync_modes
from bus.errors import LightsoutError
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Parse arguments, measure, print."""
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument(
        "--cell",
        help="cell file (default cells/assembly.toml; rtf: the 4-, 8- and 12-robot assembly cells)",
    )
    ap.add_argument(
        "--duration",
        type=float,
        help="sim seconds per measurement (default 60; failover: 900; policy: 600; memory: 3600)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--fail-at",
        type=float,
        default=failover.FAIL_AT_S,
        metavar="S",
        help=f"failover: when the robot fails, sim seconds (default {failover.FAIL_AT_S:g})",
    )
    ap.add_argument(
        "--only",
        choices=[
            "rtf",
            "stepping",
            "control",
            "record",
            "curve",
            "failover",
            "drops",
            "fleet",
            "policy",
            "restarts",
            "memory",
            "drift",
            "profile",
            "maintenance",
            "quality",
            "recall",
            "factory",
            "factory_view",
            "fidelity",
            "autonomy",
            "false_alarms",
            "journal",
            "optimize",
            "scale",
        ],
        help="run one benchmark (drops, memory, maintenance, quality, fidelity, autonomy, "
        "false_alarms and optimize only run when asked: about 90 runs for --duration 130; an hour "
        "of sim time; 8 runs of 400 s; four runs and 60,000 inspections; hours of sim time at two "
        "fidelities; 60 runs of 40 min and --seeds runs of an hour at events fidelity; optimize: "
        "about 30 runs; scale: cells of 100 to 256 agents, minutes)",
    )
    ap.add_argument(
        "--fractions",
        default="0.3,0.7",
        help="drops: where in each carry to drop the part (comma-separated fractions)",
    )
    ap.add_argument(
        "--sync",
        choices=("tick", "event"),
        help="memory: the barrier of the soak (default: the launcher's own)",
    )
    ap.add_argument(
        "--seeds",
        type=int,
        help=f"fidelity: seeds of the accuracy runs, from --seed on (default {fidelity.SEEDS}); "
        f"autonomy: seeds, each on and off (default {autonomy.SEEDS})",
    )
    ap.add_argument(
        "--hours",
        type=float,
        default=fidelity.HOURS,
        help=f"fidelity: sim hours of the chaos shift (default {fidelity.HOURS:g})",
    )
    ap.add_argument(
        "--chaos",
        type=float,
        default=fidelity.CHAOS_RATE,
        help=f"fidelity: chaos faults per sim second of the shift (default {fidelity.CHAOS_RATE:g})",
    )
    ap.add_argument(
        "--parts",
        default="accuracy,speed",
        help="fidelity: which parts to run, comma-separated: accuracy, speed (default both)",
    )
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"accuracy", "speed"}:
        ap.error(f"--parts {args.parts}: give accuracy, speed or both")
    if args.seeds is None:
        args.seeds = autonomy.SEEDS if args.only in ("autonomy", "false_alarms") else fidelity.SEEDS
    if args.seeds < 1 or not args.hours > 0:
        ap.error("--seeds must be 1 or more and --hours more than 0")
    if args.sync and args.sync not in sync_modes():
        ap.error(f"--sync {args.sync}: this launcher has no such barrier yet")
    chosen_cells = [args.cell] if args.cell else [str(c) for c in rtf.CELLS]
    args.cell = args.cell or str(ROOT / "cells" / "assembly.toml")
    if args.only == "failover" and not 0 < args.fail_at < _duration(args, failover.DURATION_S):
        ap.error("--fail-at must fall inside the run (0 < --fail-at < --duration)")
    console = Console()
    try:
        _measure(console, args, chosen_cells)
    except LightsoutError as exc:  # a bad cell file, a failed run: one line, exit 2
        console.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    return 0


def _measure(console: Console, args: argparse.Namespace, chosen_cells: list[str]) -> None:
    """Run the benchmarks ``--only`` names (all but the long ones if it names none)."""
    if args.only in (None, "rtf"):
        _rtf(console, args, chosen_cells)
    if args.only in (None, "stepping"):
        from bench.stepping import print_stepping

        print_stepping(console, args.seed)
    if args.only in (None, "record"):
        _record(console, args)
    if args.only in (None, "control"):
        _control(console)
    if args.only in (None, "curve"):
        _curve(console, args)
    if args.only == "drops":
        _drops(console, args)
    if args.only in (None, "failover"):
        _failover(console, args)
    if args.only in (None, "fleet"):
        _fleet(console, args)
    if args.only in (None, "policy"):
        _policy(console, args)
    if args.only == "restarts":
        _restarts(console, args)
    if args.only == "memory":
        _memory(console, args)
    if args.only in (None, "drift"):
        _drift(console, args)
    if args.only in (None, "profile"):
        _profile(console, args)
    if args.only == "maintenance":
        _maintenance(console, args)
    if args.only == "quality":
        _quality(console, args)
    if args.only in (None, "journal"):
        _journal(console, args)
    if args.only in (None, "recall"):
        _recall(console)
    if args.only in (None, "factory"):
        _factory(console, args)
    if args.only in (None, "factory_view"):
        _factory_view(console, args)
    if args.only == "optimize":
        from bench import optimize

        seeds = tuple(range(args.seed, args.seed + optimize.SEEDS))
        optimize.print_optimize(console, seeds, _duration(args, optimize.DURATION_S))
    if args.only == "scale":
        from bench import scale

        scale.print_scale(console, _duration(args, scale.DURATION_S), args.seed)
    if args.only == "fidelity":
        from bench.fidelity_print import print_fidelity

        print_fidelity(console, args)
    if args.only == "autonomy":
        from bench.autonomy_print import print_autonomy

        print_autonomy(console, args)
    if args.only == "false_alarms":
        from bench.autonomy_print import print_false_alarms

        print_false_alarms(console, args)


def _maintenance(console: Console, args: argparse.Namespace) -> None:
    """A drifting joint maintained before it trips, against the same run diagnosis only."""
    cell = load_cell(args.cell)
    duration = _duration(args, maintenance.DURATION_S)
    console.print(
        f"{cell.name}: {maintenance.ROBOT} joint 3 drifts from {maintenance.START_S:g} s (mean "
        f"time to the trip {maintenance.MEAN_S:g} s), {duration:g} s per run, maintenance "
        f"{cell.maintenance_s:g} s; maintained (on) and diagnosis only (off), same seed"
    )
    table = Table(title="the drifting robot, maintained and not")
    for col in (
        "seed",
        "diagnosed (s)",
        "on: in Maintenance / back (s)",
        "on: tripped",
        "off: tripped (s)",
        "lead (s)",
        "down on / off (s)",
        "units on / off",
    ):
        table.add_column(col, justify="right")

    def s(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    for r in maintenance.run(cell, duration, args.seed):
        table.add_row(
            str(r.seed),
            s(r.on.diagnosed_s),
            f"{s(r.on.in_maintenance_s)} / {s(r.on.back_s)}",
            s(r.on.tripped_s),
            s(r.off.tripped_s),
            s(r.lead_s),
            f"{r.on.down_s:.1f} / {r.off.down_s:.1f}",
            f"{r.on.units} / {r.off.units}",
        )
    console.print(table)


def _quality(console: Console, args: argparse.Namespace) -> None:
    """Placement margins of sound robots, a worn screwdriver's cost, the decision's error rates."""
    cell = load_cell(args.cell)
    duration = _duration(args, 300.0)
    seeds = [args.seed, args.seed + 1, args.seed + 2]
    m = quality.margins(cell, seeds, duration)
    table = Table(title=f"worst placement error in the base's plane, {m['units']} units, no faults")
    for col in ("step", "worst (mm)", "tolerance (mm)"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for step, (worst, tol) in m["steps"].items():
        table.add_row(step, f"{worst:.2f}", f"{tol:.2f}")
    console.print(
        f"{cell.name}, seeds {seeds}, {duration:.0f} s each: {m['defects']} defects found"
    )
    console.print(table)
    fault = quality.worn_tool()
    w = quality.worn(cell, args.seed, 200.0, fault)
    q, d = w["quality"], w["diagnosis"]
    console.print(
        f"{fault.target}'s screwdriver losing {fault.share:.0%} of its torque over "
        f"{fault.duration_s:g} s from {fault.at_s:g} s, 200 s: {q['inspected']} units inspected, "
        f"{q['good']} good, quality {q['quality']} (OEE's {w['oee_quality']}); first defect at "
        f"{w['first_defect_s']} s; diagnosis "
        + (
            "none"
            if d is None
            else f"at {d['at_s']:.1f} s: {d['component']}, {d['cause']}, {d['defects']}"
        )
    )
    rq = Table(title="the inspection's decision, 10,000 inspections of each unit (seed 3)")
    for col in ("false accept set", "measured", "false reject set", "measured"):
        rq.add_column(col, justify="right")
    for fa, fr in ((0.0, 0.0), (0.02, 0.01), (0.1, 0.05)):
        r = quality.rates(cell, 3, 10_000, fa, fr)
        rq.add_row(f"{fa:g}", f"{r['false_accept']:.4f}", f"{fr:g}", f"{r['false_reject']:.4f}")
    console.print(rq)


def _drift(console: Console, args: argparse.Namespace) -> None:
    """CUSUM and Page-Hinkley at their defaults: delay to a shift and false-alarm rate."""
    methods = drift.measure(args.seed)
    console.print(
        f"drift statistics on seeded Gaussian series (seed {args.seed}): baseline of "
        f"{drift.LEARN} samples, shift {drift.IN_CONTROL} samples later, {drift.SERIES} series "
        f"per shift; false alarms over {drift.NOISE_SERIES} x {drift.NOISE_SAMPLES} samples"
    )
    table = Table(title="samples from the shift to the alarm (mean / median / p95, missed)")
    table.add_column("shift (sigma)", justify="right")
    for m in methods:
        table.add_column(f"{m.name} ({m.settings})", justify="right")
    table.add_column("ratio PH/CUSUM (mean)", justify="right")
    cusum, ph = methods
    for a, b in zip(cusum.delays, ph.delays, strict=True):
        cells = [f"{d.mean:.1f} / {d.median:.0f} / {d.p95:.0f}, {d.missed}" for d in (a, b)]
        table.add_row(f"{a.shift:g}", *cells, f"{b.mean / a.mean:.2f}")
    table.add_row(
        "false alarms",
        *(f"{m.false_alarms} in {m.samples}: 1 per {m.arl0:.0f}" for m in methods),
        f"{ph.arl0 / cusum.arl0:.2f} (ARL0)",
    )
    console.print(table)


def _restarts(console: Console, args: argparse.Namespace) -> None:
    """The wall-clock stall per restart before and after, then a cut-off run resumed."""
    cell = load_cell(args.cell)
    console.print(f"restarts of {cell.name}: processes killed from outside, before and after")
    before = restarts.stalls(cell, watch_dead=False)
    after = restarts.stalls(cell, watch_dead=True)
    table = Table(title="wall-clock stall per restart (s)")
    for col in ("killed", "before", "after", "ratio after/before", "join wait after"):
        table.add_column(col, justify="left" if col == "killed" else "right")
    for b, a in zip(before, after, strict=True):
        ratio = a.stall_s / b.stall_s if b.stall_s else 0.0
        table.add_row(
            b.target, f"{b.stall_s:.2f}", f"{a.stall_s:.2f}", f"{ratio:.2f}", f"{a.join_wait_s:.2f}"
        )
    console.print(table)
    duration = _duration(args, 600.0)
    alone, cut, at = restarts.resumed(args.cell, duration)
    console.print(
        f"resume: {duration:.0f} s one process, killed (whole group) at {at:.0f} s and resumed: "
        f"{cut} units against {alone} left alone (ratio {cut / alone if alone else 0:.3f})"
    )


def _duration(args: argparse.Namespace, default: float = 60.0) -> float:
    return float(args.duration) if args.duration is not None else default


def _drops(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    fractions = tuple(float(f) for f in args.fractions.split(","))
    duration = _duration(args)
    console.print(
        f"gripper drops at {', '.join(f'{f:.0%}' for f in fractions)} of every carry starting "
        f"in the first {duration:.0f} s of {cell.name} (seed {args.seed}), one drop per run"
    )
    tally, each, balanced = drops.run(cell, duration, args.seed, fractions)
    for at, robot, part, what in each:
        console.print(f"  {at:8.2f} s  {robot}  {part:13s} {what}")
    table = Table(title="what became of the dropped part")
    table.add_column("outcome")
    table.add_column("drops", justify="right")
    table.add_column("share", justify="right")
    total = sum(tally.values())
    for what, n in tally.most_common():
        table.add_row(what, str(n), f"{n / total:.0%}")
    console.print(table)
    console.print(f"ledger balanced in every run: {balanced}")


def _record(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    rows = record.run(cell, _duration(args), args.seed)
    _ratios(console, "recording a ROS 2 bag", "plain", rows)


def _ratios(console: Console, title: str, first: str, rows: list[tuple[str, float, str]]) -> None:
    """Real-time factors as a table, each beside its ratio to the first row's."""
    table = Table(title=f"{title} (real-time factor, sim s / wall s)")
    for col in ("what", "RTF", f"ratio to {first}", "note"):
        table.add_column(col, justify="left" if col in ("what", "note") else "right")
    for name, value, note in rows:
        table.add_row(name, f"{value:.2f}", f"{value / rows[0][1]:.3f}", note)
    console.print(table)


def _curve(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    duration = _duration(args)
    console.print(
        f"CURVE on every socket: {cell.name} with --processes over tcp, {duration:.0f} s of "
        f"sim time each (seed {args.seed}), without keys and with them, one after the other"
    )
    _ratios(console, "cost of CURVE", "no CURVE", curve.run(cell, duration, args.seed))


def _control(console: Console) -> None:
    console.print("control and telemetry of a running cell (own process) beside raw pyzmq")
    table = Table(title="control plane")
    for col in ("transport", "what", "cell", "raw pyzmq", "ratio cell/raw"):
        table.add_column(col, justify="left" if col in ("transport", "what") else "right")
    for transport, what, value, raw, unit in control.run():
        table.add_row(
            transport, what, f"{value:.0f} {unit}", f"{raw:.0f} {unit}", f"{value / raw:.2f}"
        )
    console.print(table)


def _rtf(console: Console, args: argparse.Namespace, paths: list[str]) -> None:
    cells = [load_cell(p) for p in paths]
    duration = _duration(args)
    names = ", ".join(f"{c.name} ({len(c.robots)} robots)" for c in cells)
    console.print(
        f"real-time factor of {names}: {duration:.0f} s of sim time each (seed {args.seed}); "
        f"barriers here: {', '.join(sync_modes())}"
    )
    figs = rtf.run(cells, duration, args.seed, on_run=lambda what: console.log(what))
    rtf.print_tables(console, figs, args.seed)


def _factory(console: Console, args: argparse.Namespace) -> None:
    """Two and eleven physics lines under one coordinator, in one process each."""
    duration = _duration(args)
    console.print(
        f"factory runs: {duration:.0f} s of sim time (seed {args.seed}), one process per "
        "factory, every line a physics assembly cell, one order keeping every line busy"
    )
    table = Table(
        "factory",
        "lines",
        "wall s",
        "sim s / wall s",
        "line-s / wall s",
        "units",
        "peak RSS MB",
        "MB / line",
        "material",
    )
    for f in factory.run(duration, args.seed):
        table.add_row(
            f.factory,
            str(f.lines),
            f"{f.wall_s:.1f}",
            f"{f.rtf:.2f}",
            f"{f.line_rtf:.1f}",
            str(f.units),
            f"{f.rss_mb:.0f}",
            f"{f.rss_mb / f.lines:.0f}",
            "balanced" if f.balanced else "[red]NOT balanced[/red]",
        )
    console.print(table)


def _factory_view(console: Console, args: argparse.Namespace) -> None:
    """The factory view's cost: a factory with and without it, side by side."""
    duration = _duration(args)
    console.print(
        f"factory view: cells/factory_2.toml at events fidelity, {duration:.0f} s of sim time "
        f"(seed {args.seed}), one process; best of {factory_view.REPEATS} runs each, interleaved"
    )
    f = factory_view.measure(duration, args.seed)
    table = Table("run", "wall s", "vs plain")
    for mode in factory_view.MODES:
        table.add_row(mode, f"{f.wall_s[mode]:.2f}", f"{f.ratio(mode):.3f}")
    console.print(table)
    console.print(f"the view was built at {f.steps} coordinator steps a run")


def _recall(console: Console) -> None:
    """``recall LOT`` and ``trace SERIAL`` over a genealogy of 100,000 shipped units."""
    console.print(
        f"genealogy of {recall.UNITS:,} shipped units ({recall.LINES} lines, "
        f"{len(recall.PART_KINDS)} parts each, lots of {recall.LOT_SIZE}): filling, then "
        f"{recall.SAMPLES} recalls and traces, each on a fresh read-only connection"
    )
    f = recall.measure()
    table = Table("what", "median", "worst", "goal")
    table.add_row(
        f"recall LOT ({recall.LOT_SIZE} units)",
        f"{f.recall_median_s * 1e3:.1f} ms",
        f"{f.recall_max_s * 1e3:.1f} ms",
        f"< {recall.GOAL_S:g} s: " + ("met" if f.recall_max_s < recall.GOAL_S else "NOT met"),
    )
    table.add_row(
        "trace SERIAL", f"{f.trace_median_s * 1e3:.2f} ms", f"{f.trace_max_s * 1e3:.2f} ms", ""
    )
    table.add_row(
        "lightsout recall LOT -q (own process)",
        f"{f.cli_s:.2f} s",
        "",
        f"< {recall.GOAL_S:g} s: " + ("met" if f.cli_s < recall.GOAL_S else "NOT met"),
    )
    console.print(table)
    console.print(
        f"store: {f.units:,} units, {f.lots} lots, {f.db_mb:.0f} MB, filled in {f.fill_s:.1f} s"
    )


def _journal(console: Console, args: argparse.Namespace) -> None:
    """The journal's commits of one run, taken and written three ways."""
    from bench import journal

    duration = _duration(args, 600.0)
    console.print(
        f"the journal: every commit of a {duration:.0f} s events run of the assembly cell (seed "
        f"{args.seed}), taken and written as one JSON state row, as a row per component in "
        "msgpack, and with the health model's series in rows of their own"
    )
    first, second, now = journal.run(duration, args.seed)
    table = Table("layout", "commits", "take CPU s", "write CPU s", "state written (MB)")
    for name, c in (
        ("whole state, JSON", first),
        ("per component, msgpack", second),
        ("per component, a row per series", now),
    ):
        table.add_row(
            name,
            str(c.commits),
            f"{c.take_s:.2f}",
            f"{c.cpu_s:.2f}",
            f"{c.state_bytes / 1e6:.1f}",
        )
    console.print(table)
    for name, c in (("per component", second), ("a row per series", now)):
        console.print(
            f"{name} over whole state: CPU {(c.take_s + c.cpu_s) / (first.take_s + first.cpu_s):.2f}"
            f", bytes {c.state_bytes / first.state_bytes:.3f}"
        )
    console.print(
        "a row per series over per component: take and write CPU "
        f"{(now.take_s + now.cpu_s) / (second.take_s + second.cpu_s):.2f}, bytes "
        f"{now.state_bytes / second.state_bytes:.3f}"
    )


def _profile(console: Console, args: argparse.Namespace) -> None:
    """Where each mode's wall time goes (``bench.timeshare``), one row per mode."""
    cell = load_cell(args.cell)
    duration = _duration(args)
    console.print(
        f"where the wall time of {cell.name} goes: {duration:.0f} s of sim time (seed {args.seed})"
        ", shares of each run's wall time"
    )
    rows = timeshare.run(cell, duration, args.seed)
    cols = ["physics", "participants", "agents", "supervisor", "messaging", "loop and start-up"]
    table = Table("mode", "wall s", "rtf", *cols)
    for mode, got in rows:
        shares = [f"{got[c]:.0%}" if c in got else "" for c in cols]
        table.add_row(mode, f"{got['wall_s']:.1f}", f"{got['rtf']:.1f}", *shares)
    console.print(table)


def _memory(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    duration = _duration(args, 3600.0)
    sync = f"--sync {args.sync}" if args.sync else "the launcher's default barrier"
    console.print(
        f"memory soak of {cell.name}: --processes, {sync}, for {duration:.0f} s of sim time (seed "
        f"{args.seed}), every process's RSS read from /proc every {memory.EVERY_S:.0f} s of sim time"
    )

    def on_sample(t_s: float, rss: dict[str, int]) -> None:
        each = ", ".join(f"{n} {kb / 1024:.1f}" for n, kb in rss.items())
        console.log(f"{t_s:6.0f} s sim, MB: {each}")

    result = memory.soak(cell, duration, args.seed, sync=args.sync or "", on_sample=on_sample)
    memory.print_soak(console, result)


def _failover(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    duration = _duration(args, failover.DURATION_S)
    if not 0 < args.fail_at < duration:
        console.print(f"failover skipped: --fail-at {args.fail_at:g} is not inside {duration:g} s")
        return
    names = sorted(r.name for r in cell.robots)
    console.print(
        f"failover of {cell.name}: {duration:.0f} s of sim time each (seed {args.seed}), "
        f"fault-free and with each of {', '.join(names)} failed for good at {args.fail_at:g} s"
    )
    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s sim"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}
        for label in ["fault-free", *(f"{n} fails" for n in names)]:
            tasks[label] = bar.add_task(label, total=duration, start=False)

        def on_progress(label: str, done_s: float) -> None:
            task = tasks[label]
            bar.start_task(task)
            bar.update(task, completed=done_s)

        def on_result(r: failover.Result) -> None:
            who = f"{r.robot} failed" if r.robot else "fault-free"
            console.print(
                f"{who}: {r.shipped_after} units after {args.fail_at:g} s, "
                f"{r.shipped} in all ({r.wall_s:.0f} s wall)"
            )

        results = failover.run(
            cell,
            duration_s=duration,
            seed=args.seed,
            fail_at_s=args.fail_at,
            on_progress=on_progress,
            on_result=on_result,
        )
    base = results[0]
    table = Table(
        title=f"units shipped after {args.fail_at:g} s, one robot failed for good",
        caption=f"after: units shipped after {args.fail_at:g} s; ratio: after / fault-free's; "
        "in all: units shipped in the run",
    )
    for col in ("failed", "after", "ratio", "in all", "scrapped", "its state", "ledger", "wall s"):
        table.add_column(col, justify="left" if col == "failed" else "right")
    for r in results:
        table.add_row(
            r.robot or "none",
            str(r.shipped_after),
            f"{failover.ratio(r, base):.2f}",
            str(r.shipped),
            str(r.scrapped),
            r.final_state or "-",
            "balanced" if r.balanced else "[red]NOT balanced[/red]",
            f"{r.wall_s:.0f}",
        )
    console.print(table)
    worst = min(results[1:], key=lambda r: failover.ratio(r, base))
    value = failover.ratio(worst, base)
    verdict = "met" if value >= failover.GOAL else "[red]NOT met[/red]"
    console.print(
        f"worst: {worst.robot} failed, ratio {value:.2f} "
        f"(goal >= {failover.GOAL:.2f} for every robot: {verdict})"
    )


def _policy(console: Console, args: argparse.Namespace) -> None:
    duration = _duration(args, policy.DURATION_S)
    console.print(
        f"allocation policies side by side: {duration:.0f} s of sim time per run "
        f"(seed {args.seed}), one process"
    )
    table = Table(
        title="units per hour by allocation policy",
        caption="ratio: fcfs / contract_net; util: the robots' mean utilisation",
    )
    for col in ("cell", "contract_net", "fcfs", "ratio", "units", "util", "wall s"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for row in policy.run(duration, args.seed):
        table.add_row(
            row.cell,
            f"{row.per_hour['contract_net']:.1f}",
            f"{row.per_hour['fcfs']:.1f}",
            f"{row.ratio:.2f}",
            f"{row.units['contract_net']} / {row.units['fcfs']}",
            f"{row.utilisation['contract_net']:.2f} / {row.utilisation['fcfs']:.2f}",
            f"{row.wall_s:.0f}",
        )
    console.print(table)


def _fleet(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(ROOT / "cells" / "assembly_with_builders.toml")
    duration = _duration(args, fleet.DURATION_S)
    if duration < 2 * fleet.WINDOW_S:
        console.print(f"fleet skipped: --duration {duration:g} is shorter than two windows")
        return
    console.print(
        f"{cell.name}: phones shipped in the first and the last {fleet.WINDOW_S / 60:g} minutes "
        f"of {duration:.0f} s (seed {args.seed}), with robots built and mounted, and without"
    )
    with Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s sim"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {
            label: bar.add_task(label, total=duration, start=False)
            for label in ("robots added", "no mount points")
        }

        def on_progress(label: str, done_s: float) -> None:
            bar.start_task(tasks[label])
            bar.update(tasks[label], completed=done_s)

        results = fleet.run(cell, duration_s=duration, seed=args.seed, on_progress=on_progress)
    table = Table(
        title="phones shipped as the fleet grows",
        caption="robots: mean robots in the cell over the window (builders included)",
    )
    for col in (
        "run",
        "first 10 min",
        "robots",
        "last 10 min",
        "robots",
        "last / first",
        "built",
        "ledger",
        "wall s",
    ):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in results:
        table.add_row(
            r.label,
            str(r.first),
            f"{r.robots_first:.1f}",
            str(r.last),
            f"{r.robots_last:.1f}",
            f"{r.ratio:.2f}",
            str(r.built),
            "balanced" if r.balanced else "[red]NOT balanced[/red]",
            f"{r.wall_s:.0f}",
        )
    console.print(table)
    grown, flat = results
    console.print(
        f"last / first with robots added: {grown.ratio:.2f}; without: {flat.ratio:.2f} "
        f"(their ratio {grown.ratio / flat.ratio:.2f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
