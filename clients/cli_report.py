"""The ``lightsout`` subcommands for a run's record: ``report``, ``record``, ``replay``.

``report RUN_DIR`` writes ``report.html`` from a finished run's files (a cell's, or a
factory's: ``clients.report_factory``);
``record --endpoint BASE OUTDIR`` writes a running cell's telemetry to a ROS 2
bag; ``replay BAG`` plays one through the console view. Each returns 0 or raises a ``LightsoutError`` that the entry point prints
as one line ``error: ...`` with exit code 2. Kept apart from ``clients.cli``
(which calls ``add_commands``) so the launcher's module stays small.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from bus.errors import ConfigError
from bus.simtime import NS
from clients.args import positive


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    """Write ``report.html`` for a finished run."""
    from clients.report import write_report
    from clients.report_factory import is_factory_run, write_factory_report

    run = Path(args.run_dir)
    out = write_factory_report(run) if is_factory_run(run) else write_report(run)
    console.print(f"report: {out}")
    return 0


def cmd_record(args: argparse.Namespace, console: Console) -> int:
    """Record a running cell's telemetry to a ROS 2 bag until the run ends or Ctrl-C."""
    from bus.endpoints import Endpoints
    from clients.bag_record import record

    Endpoints.from_base(args.endpoint)  # a bad endpoint is an error before the bag exists
    out = Path(args.outdir)
    if out.exists():
        raise ConfigError(str(out), "", "exists already; a bag is never overwritten")
    console.print(f"recording {args.endpoint} to {out} (Ctrl-C to stop)", highlight=False)
    # the cell file is read once subscribed: the cell waits for its recorder to subscribe
    res = record(args.endpoint, out, cell_file=args.cell or None, idle_s=args.idle)
    counts = ", ".join(f"{t} {n}" for t, n in sorted(res.counts.items()) if n)
    console.print(
        f"{res.path}: {res.frames} frames to {res.last_t_ns / NS if res.last_t_ns >= 0 else 0:.2f} s "
        f"of sim time ({res.reason}); {counts or 'nothing'}",
        highlight=False,
    )
    if res.lost or res.malformed:
        print(
            f"warning: {res.lost} telemetry frames lost in {res.gaps} gaps, "
            f"{res.malformed} malformed",
            file=sys.stderr,
        )
    return 0


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: as fast as possible), got {text}")
    return v


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    """Play a recorded bag through the console view."""
    from clients.replay import run_replay

    model = run_replay(Path(args.bag), speed=args.speed, fps=args.fps, console=console)
    console.print(f"replayed {args.bag} to {model.t_ns / NS:.2f} s of sim time", highlight=False)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``report``, ``record`` and ``replay`` on ``lightsout``'s subparsers."""
    p = sub.add_parser("report", help="write report.html for a finished run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run's directory, e.g. runs/assembly-seed1")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("record", help="record a running cell's telemetry to a ROS 2 bag (MCAP)")
    p.add_argument(
        "--endpoint",
        required=True,
        metavar="BASE",
        help="the cell's base endpoint (ipc://DIR, tcp://HOST:PORT, as given to run)",
    )
    p.add_argument("outdir", metavar="OUTDIR", help="the bag directory to create")
    p.add_argument("--cell", help="the cell file (names the robots' topics up front)")
    p.add_argument(
        "--idle",
        type=positive,
        metavar="S",
        help="stop after S wall seconds without telemetry (default: at the run's end, "
        "when the cell stops answering, or Ctrl-C; a paused cell is waited for)",
    )
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("replay", help="play a recorded bag through the console view")
    p.add_argument("bag", metavar="BAG", help="a bag written by lightsout record")
    p.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X",
        help="sim seconds per wall second (default 1; 0: as fast as possible)",
    )
    p.add_argument("--fps", type=positive, default=12.0, help="redraws per second (default 12)")
    p.set_defaults(func=cmd_replay)
