"""``python -m bench``: run the benchmarks and print their ratios."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import control, drops, record, rtf
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Parse arguments, measure, print."""
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--cell", default=str(ROOT / "cells" / "assembly.toml"))
    ap.add_argument("--duration", type=float, default=60.0, help="sim seconds per measurement")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--only",
        choices=["rtf", "control", "record", "drops"],
        help="run one benchmark (drops only runs when asked: about 90 runs for --duration 130)",
    )
    ap.add_argument(
        "--fractions",
        default="0.3,0.7",
        help="drops: where in each carry to drop the part (comma-separated fractions)",
    )
    args = ap.parse_args()
    console = Console()
    if args.only in (None, "rtf"):
        _rtf(console, args)
    if args.only in (None, "record"):
        _record(console, args)
    if args.only in (None, "control"):
        _control(console)
    if args.only == "drops":
        _drops(console, args)
    return 0


def _drops(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    fractions = tuple(float(f) for f in args.fractions.split(","))
    console.print(
        f"gripper drops at {', '.join(f'{f:.0%}' for f in fractions)} of every carry starting "
        f"in the first {args.duration:.0f} s of {cell.name} (seed {args.seed}), one drop per run"
    )
    tally, each, balanced = drops.run(cell, args.duration, args.seed, fractions)
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
    rows = record.run(cell, args.duration, args.seed)
    table = Table(title="recording a ROS 2 bag (real-time factor, sim s / wall s)")
    for col in ("what", "RTF", "ratio to plain", "note"):
        table.add_column(col, justify="left" if col in ("what", "note") else "right")
    for name, value, note in rows:
        table.add_row(name, f"{value:.2f}", f"{value / rows[0][1]:.3f}", note)
    console.print(table)


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


def _rtf(console: Console, args: argparse.Namespace) -> None:
    cell = load_cell(args.cell)
    console.print(
        f"real-time factor of {cell.name}, {args.duration:.0f} s of sim time each (seed {args.seed})"
    )
    rows = rtf.run(cell, args.duration, args.seed)
    bare = rows[0][1]
    table = Table(title="real-time factor (sim s / wall s)")
    for col in ("what", "RTF", "ratio to bare", "note"):
        table.add_column(col, justify="left" if col in ("what", "note") else "right")
    for name, value, note in rows:
        table.add_row(name, f"{value:.2f}", f"{value / bare:.3f}", note)
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
