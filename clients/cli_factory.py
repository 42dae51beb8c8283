"""``lightsout factory ...``, ``trace`` and ``recall``: the factory's subcommands.

``factory check FILE`` validates a factory file and every cell file it names;
``trace SERIAL`` and ``recall LOT`` answer from a factory run's genealogy
database (``factory.genealogy``). Each returns an exit code; a known error is
one line ``error: ...`` and exit 2 (``clients.cli``).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console


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


def add_commands(sub: Any) -> None:
    """Register ``factory`` (``check``), ``trace`` and ``recall`` on the ``lightsout`` parser."""
    fac = sub.add_parser("factory", help="factories: many lines, orders, stores, genealogy")
    fsub = fac.add_subparsers(dest="factory_command", required=True)
    chk = fsub.add_parser("check", help="check a factory file and the cell files it names")
    chk.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    chk.set_defaults(func=cmd_factory_check)
