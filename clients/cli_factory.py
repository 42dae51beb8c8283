"""``lightsout factory ...``, ``trace`` and ``recall``: the factory's subcommands.

``factory check FILE`` validates a factory file and every cell file it names;
``trace SERIAL`` and ``recall LOT`` answer from a factory run's genealogy
database (``factory.genealogy``). Each returns an exit code; a known error is
one line ``error: ...`` and exit 2 (``clients.cli``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bus.errors import LightsoutError


def cmd_factory_check(args: argparse.Namespace, console: Console) -> int:
    """Check a factory file and say what it holds."""
    from factory.schema import load_factory

    spec = load_factory(args.file)
    lines = ", ".join(f"{ln.name} ({ln.cell.name}, {ln.fidelity})" for ln in spec.lines)
    console.print(
        f"{args.file}: ok: factory {spec.name}: {len(spec.lines)} lines ({lines}); "
        f"{len(spec.stores)} stores, {len(spec.suppliers)} suppliers, "
        f"{len(spec.customers)} customers; parts {', '.join(spec.part_kinds)}",
        highlight=False,
    )
    return 0


def _db(args: argparse.Namespace) -> Path:
    """The genealogy database of ``--run``, else of the newest factory run in ``--runs-dir``."""
    from factory.genealogy import DB_NAME

    if args.run:
        return Path(args.run) / DB_NAME
    found = sorted(Path(args.runs_dir).glob(f"*/{DB_NAME}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LightsoutError(f"{args.runs_dir}: no factory run here (give --run DIR)")
    return found[-1]


def _t(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e9:.3f} s"


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    """Where a serial came from: order, line, fixture, robots with sim times, parts and lots."""
    from factory.genealogy import Genealogy

    db = _db(args)
    with Genealogy.open(db) as g:
        t = g.trace(args.serial)
    if t is None:
        raise LightsoutError(f"{db}: no unit with serial {args.serial!r}")
    console.print(
        f"[bold]{t.serial}[/bold]: {t.product}, {t.status}; line {t.line}, fixture {t.fixture}; "
        f"order {t.order_id or '-'}, shipment {t.shipment or '-'}; "
        f"started {_t(t.started_ns)}, ended {_t(t.ended_ns)}",
        highlight=False,
    )
    ops = Table("step", "robot", "started", "done", title="operations")
    for o in t.ops:
        ops.add_row(o.op, o.robot, _t(o.started_ns), _t(o.done_ns))
    console.print(ops)
    parts = Table("part", "kind", "lot", "supplier", title="parts")
    for part, kind, lot, supplier in t.parts:
        parts.add_row(part, kind, lot or "-", supplier or "-")
    console.print(parts)
    return 0


def cmd_recall(args: argparse.Namespace, console: Console) -> int:
    """Every serial holding a part of a lot, one a line (``--quiet``: serials only)."""
    from factory.genealogy import Genealogy

    db = _db(args)
    with Genealogy.open(db) as g:
        lot = g.lot(args.lot)
        if lot is None:
            raise LightsoutError(f"{db}: no lot {args.lot!r} was received")
        units = g.recall(args.lot)
    if not args.quiet:
        supplier, kind, size, at = lot
        shipped = sum(u.status == "shipped" for u in units)
        console.print(
            f"lot {args.lot}: {size} {kind} from {supplier}, received {_t(at)}; "
            f"{len(units)} units hold its parts, {shipped} of them shipped",
            highlight=False,
        )
    for u in units:
        print(u.serial if args.quiet else f"{u.serial} {u.status} {u.order_id or '-'}")
    return 0


def add_commands(sub: Any) -> None:
    """Register ``factory`` (``check``), ``trace`` and ``recall`` on the ``lightsout`` parser."""
    fac = sub.add_parser("factory", help="factories: many lines, orders, stores, genealogy")
    fsub = fac.add_subparsers(dest="factory_command", required=True)
    chk = fsub.add_parser("check", help="check a factory file and the cell files it names")
    chk.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    chk.set_defaults(func=cmd_factory_check)

    for name, helptext, arg, func in (
        (
            "trace",
            "where a serial came from: order, line, robots, parts, lots",
            "serial",
            cmd_trace,
        ),
        ("recall", "every serial holding a part of a supplier lot", "lot", cmd_recall),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(arg)
        p.add_argument("--run", metavar="DIR", help="factory run (default: the newest in RUNS_DIR)")
        p.add_argument("--runs-dir", default="runs", help="where runs are (default runs/)")
        if name == "recall":
            p.add_argument("-q", "--quiet", action="store_true", help="serials only")
        p.set_defaults(func=func)
