"""``lightsout factory ...``, ``trace`` and ``recall``: the factory's subcommands.

``factory check FILE`` validates a factory file and every cell file it names;
``trace SERIAL`` and ``recall LOT`` answer from a factory run's genealogy
database (``factory.genealogy``). Each returns an exit code; a known error is
one line ``error: ...`` and exit 2 (``clients.cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bus.errors import ConfigError, LightsoutError
from clients.args import MAX_CHAOS_RATE, positive, whole, within
from clients.cli_hosts import add_commands as add_host_commands
from clients.cli_hosts import add_host_args


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


def cmd_factory_run(args: argparse.Namespace, console: Console) -> int:
    """Run every line of a factory under one coordinator and print what it did."""
    from cells.faults import load_scenario
    from cells.launch import run_dir
    from clients.console_factory import FactoryConsole
    from factory.control import check_endpoint
    from factory.run import OrderLine, run_factory
    from factory.schema import load_factory
    from factory.supply import load_supply

    spec = load_factory(args.file)
    orders = [OrderLine.parse(o) for o in args.order]
    faults = {}
    for given in args.faults:
        line, _, scenario = given.partition("=")
        try:
            cell = spec.line(line).cell
        except KeyError:
            known = ", ".join(ln.name for ln in spec.lines)
            raise ConfigError(
                "--faults", given[:80], f"LINE=SCENARIO, LINE one of {known}"
            ) from None
        faults[line] = load_scenario(scenario, cell)
    late = load_supply(args.supply, spec) if args.supply else ()
    if args.endpoint:  # before anything runs; over tcp, its roles.toml names the clients
        check_endpoint(args.endpoint, bool(args.keys))
    tcp = bool(args.endpoint) and args.endpoint.startswith("tcp://")
    if args.hosts and tcp and args.console:
        why = "--console asks the coordinator over a private ipc socket: leave out a tcp one"
        raise ConfigError("--endpoint", args.endpoint[:80], why)
    out = run_dir(Path(args.runs_dir), args.name or f"{spec.name}-seed{args.seed}")
    if args.hosts:
        return run_hosts_and_print(args, spec, orders, out, console)
    if args.kill_coordinator_at is not None or (args.keys and not tcp):
        why = "the coordinator is a process of its own only with --hosts"
        if args.kill_coordinator_at is None:
            why = "without --hosts, --keys is for a tcp --endpoint only"
        raise ConfigError("--kill-coordinator-at" if args.keys is None else "--keys", "", why)
    console.print(
        f"[bold]{spec.name}[/bold]: {len(spec.lines)} lines, {args.duration:g} s of sim time, "
        f"seed {args.seed}, " + ("lines' processes" if args.processes else "one process"),
        highlight=False,
    )
    screen = FactoryConsole(console) if args.console else None
    with screen.live() if screen is not None else contextlib.nullcontext():
        kpis = run_factory(
            spec,
            out,
            orders=orders,
            duration_s=args.duration,
            seed=args.seed,
            processes=args.processes,
            faults=faults,
            late=late,
            endpoint=args.endpoint,
            chaos=args.chaos or 0.0,
            wear=args.wear,
            guard_s=args.guard,
            keys_dir=Path(args.keys) if args.keys else None,
            on_step=screen.update if screen is not None else None,
        )
    print_factory(kpis, console)
    return _results(args, kpis, out, console)


def _results(
    args: argparse.Namespace, kpis: dict[str, Any], out: Path, console: Console, more: str = ""
) -> int:
    """Where a factory run's files are, and its exit code: 1 if the material does not balance
    or (after chaos) a line's audit fails."""
    from clients.report_factory import write_factory_report

    console.print(f"report:    {write_factory_report(out)}")
    console.print(f"results:   {out / 'kpis.json'}{more}")
    console.print(f"events:    {out / 'events.jsonl'}")
    console.print(f"genealogy: {out / 'genealogy.sqlite'} (lightsout trace / recall --run {out})")
    console.print(f"audit:     lightsout factory audit --run {out}")
    code = 0 if kpis["material_balanced"] else 1
    if args.chaos:
        code = max(code, audit_lines(out, list(kpis["lines"]), args.window, console))
    return code


def run_hosts_and_print(
    args: argparse.Namespace, spec: Any, orders: list[Any], out: Path, console: Console
) -> int:
    """``factory run --hosts``: every line and the coordinator a process of its own."""
    import shutil

    from bus.endpoints import private_ipc_base
    from clients.cli_hosts import run_on_hosts, watch_coordinator
    from clients.console_factory import FactoryConsole
    from factory.run import order_book

    order_book(spec, orders)  # a bad order fails here, before any process starts
    console.print(
        f"[bold]{spec.name}[/bold]: {len(spec.lines)} lines, {args.duration:g} s of sim time, "
        f"seed {args.seed}, each line on a host of its own (loopback), over tcp with keys",
        highlight=False,
    )
    if not args.console:
        run = run_on_hosts(args, spec, orders, out)
    else:  # the console asks the coordinator's control socket (a private one if none given)
        own = None if args.endpoint else private_ipc_base()
        args.endpoint = args.endpoint or own
        screen = FactoryConsole(console)
        stop = threading.Event()
        watcher = threading.Thread(
            target=watch_coordinator, args=(args.endpoint, screen.update, stop), daemon=True
        )
        try:
            with screen.live():
                watcher.start()
                run = run_on_hosts(args, spec, orders, out, log=console.print)
        finally:
            stop.set()
            if watcher.is_alive():
                watcher.join(5)
            if own is not None:
                shutil.rmtree(own.removeprefix("ipc://"), ignore_errors=True)
    kpis = run.kpis
    print_factory(kpis, console)
    if run.killed_at_s is not None:
        console.print(f"coordinator: killed at {run.killed_at_s:g} s, carried on from its journal")
    return _results(args, kpis, out, console, f" (each line's own run: {out / 'hosts'})")


def audit_lines(out: Path, lines: list[str], window_s: float, console: Console) -> int:
    """Every line's audit after chaos (as ``lightsout audit`` would judge its run): 0 if
    every check of every line passed, else 1."""
    from cells.audit import audit_run
    from clients.cli import print_audit

    code = 0
    for name in lines:
        run = out / "lines" / name
        console.print(f"[bold]line {name}[/bold]: lightsout audit {run} --window {window_s:g}")
        code = max(code, print_audit(audit_run(run, window_s=window_s), console))
    return code


def cmd_factory_status(args: argparse.Namespace, console: Console) -> int:
    """A running factory's lines, orders and stores, from its control socket."""
    from bus.enums import ControlCommand
    from clients.cli_control import client_curve
    from clients.console_factory import header, lines_table, orders_table, stores_table
    from clients.control import ControlClient

    if args.watch:
        from clients.cli_hosts import watch_factory

        if args.json:
            raise ConfigError("--json", "", "--watch draws the live view; --json prints it once")

        return watch_factory(
            args.endpoint, console, timeout_s=args.timeout, curve=client_curve(args)
        )
    with ControlClient(args.endpoint, timeout_s=args.timeout, curve=client_curve(args)) as client:
        reply = client.request(ControlCommand.STATUS)
    try:
        view = json.loads(reply.data)
    except ValueError:
        view = None
    if not isinstance(view, dict):
        raise LightsoutError(f"{args.endpoint}: the status answer carries no factory view")
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return 0
    console.print(header(view))
    console.print(lines_table(view))
    console.print(orders_table(view, limit=None))
    console.print(stores_table(view))
    return 0


def print_factory(kpis: dict[str, Any], console: Console) -> None:
    """Lines, orders, stores and the material balance of a factory run, as tables."""
    lines = Table(
        "line",
        "released",
        "shipped",
        "scrapped",
        "units/h",
        "OEE",
        "ledger",
        "stock-outs",
        "faults inj/det/rec",
        title="lines",
    )
    for name, ln in kpis["lines"].items():
        oee, f = ln["oee"], ln["faults"]
        lines.add_row(
            name,
            str(ln["released"]),
            str(ln["units_shipped"]),
            str(ln["units_scrapped"]),
            f"{ln['throughput_per_hour'] or 0:.0f}",
            f"{oee:.1%}" if isinstance(oee, float) else "-",
            "balanced" if ln["ledger_balanced"] else "[red]NOT balanced[/red]",
            ", ".join(f"{k} {n}" for k, n in ln["stockouts"].items()) or "-",
            f"{f['injected']}/{f['detected']}/{f['recovered']}",
        )
    console.print(lines)
    orders = Table(
        "order", "customer", "product", "qty", "built", "due", "shipped", "late", title="orders"
    )
    for oid, o in kpis["orders"].items():
        shipped = "-" if o["shipped_s"] is None else f"{o['shipped_s']:.0f} s ({o['shipment']})"
        orders.add_row(
            oid,
            o["customer"],
            o["product"],
            str(o["quantity"]),
            str(o["built"]),
            f"{o['due_s']:g} s",
            shipped,
            f"{o['lateness_s']:g} s",
        )
    console.print(orders)
    mat = Table(
        "part",
        "received",
        "in store",
        "WIP",
        "consumed",
        "scrapped",
        "shipped",
        "balance",
        title="material",
    )
    for kind, m in kpis["material"].items():
        mat.add_row(
            kind,
            *(
                str(m[k])
                for k in ("received", "in_store", "wip", "consumed", "scrapped", "shipped")
            ),
            "ok" if m["balanced"] else "[red]NOT balanced[/red]",
        )
    console.print(mat)


def _db(args: argparse.Namespace) -> Path:
    """The genealogy database of ``--run``, else of the newest factory run in ``--runs-dir``."""
    from factory.genealogy import DB_NAME

    if args.run:
        return Path(args.run) / DB_NAME
    found = sorted(Path(args.runs_dir).glob(f"*/{DB_NAME}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LightsoutError(f"{args.runs_dir}: no factory run here (give --run DIR)")
    return found[-1]


def cmd_factory_audit(args: argparse.Namespace, console: Console) -> int:
    """Audit a finished factory run from its files (``factory.audit``): 0 if every check holds."""
    from factory.audit import audit_factory

    run = Path(args.run) if args.run else _db(args).parent
    checks, verdicts = audit_factory(run)
    table = Table("check", "result", "detail", title=f"factory audit: {run}")
    for c in checks:
        table.add_row(c.name, "ok" if c.ok else "[red]FAIL[/red]", c.detail)
    console.print(table)
    late = [v for v in verdicts if v.verdict == "late"]
    if late:
        why = Table("order", "quantity", "due", "shipped", "why", title="late orders")
        for v in late:
            shipped = "open" if v.shipped_s is None else f"{v.shipped_s:g} s"
            why.add_row(
                v.order,
                str(v.quantity),
                f"{v.due_s:g} s",
                shipped,
                "\n".join(v.why) or "[red]unexplained[/red]",
            )
        console.print(why)
    return 0 if all(c.ok for c in checks) else 1


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
        ops.add_row(o.op, o.robot or "-", _t(o.started_ns), _t(o.done_ns))
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
        built = sum(u.status == "shipped" for u in units)
        delivered = sum(u.shipment is not None for u in units)
        console.print(
            f"lot {args.lot}: {size} {kind} from {supplier}, received {_t(at)}; "
            f"{len(units)} units hold its parts: {built} built, {delivered} delivered",
            highlight=False,
        )
    for u in units:
        line = f"{u.serial} {u.status} {u.order_id or '-'} {u.shipment or '-'}"
        print(u.serial if args.quiet else line)
    return 0


def add_commands(sub: Any) -> None:
    """Register ``factory`` (``check``), ``trace`` and ``recall`` on the ``lightsout`` parser."""
    fac = sub.add_parser("factory", help="factories: many lines, orders, stores, genealogy")
    fsub = fac.add_subparsers(dest="factory_command", required=True)
    chk = fsub.add_parser("check", help="check a factory file and the cell files it names")
    chk.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    chk.set_defaults(func=cmd_factory_check)
    run = fsub.add_parser("run", help="run every line under one coordinator (one process)")
    run.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    run.add_argument("--duration", type=positive, default=300.0, help="sim seconds (default 300)")
    run.add_argument("--seed", type=whole(0), default=1, help="random seed (default 1)")
    run.add_argument(
        "--order",
        action="append",
        default=[],
        metavar="CUSTOMER:PRODUCT:QTY:DUE_S[:rush][@AT_S]",
        help="a customer order (repeat for more), coming in at AT_S (default 0); a pull "
        "factory builds only what is ordered",
    )
    run.add_argument(
        "--processes",
        action="store_true",
        help="each line's supervisor and agents as OS processes (the coordinator stays here)",
    )
    run.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="LINE=SCENARIO",
        help="inject a scenario file's faults into one line (docs/faults.md); repeat per line",
    )
    run.add_argument(
        "--chaos",
        type=within(1e-6, MAX_CHAOS_RATE),
        metavar="RATE",
        help="random faults of every kind on every line, RATE per sim second, each line's "
        "drawn from its own seed (docs/faults.md), crashes and freezes of processes with "
        "--processes, of the members in the line's process without; ends with every "
        "line's audit",
    )
    run.add_argument(
        "--wear",
        action="store_true",
        help="with --chaos: the degrading kinds too (joint drift, gripper, belt wear, creep)",
    )
    run.add_argument(
        "--guard",
        type=positive,
        default=10.0,
        metavar="S",
        help="wall seconds a line's process may stay silent before it is dropped, killed and "
        "restarted (default 10)",
    )
    run.add_argument(
        "--window",
        type=positive,
        default=300.0,
        metavar="S",
        help="with --chaos: every line's audit asks a unit in every window of S sim seconds "
        "(default 300, as lightsout audit)",
    )
    run.add_argument(
        "--supply",
        metavar="FILE",
        help="supply faults: lots that come late (docs/factory.md)",
    )
    run.add_argument(
        "--endpoint",
        metavar="BASE",
        help="take orders while running (lightsout order add ... --endpoint BASE): ipc://DIR, "
        "or tcp://HOST:PORT with --keys DIR (client keys and roles: lightsout keys create)",
    )
    run.add_argument(
        "--console",
        action="store_true",
        help="show every line, order and store live while it runs (rich)",
    )
    add_host_args(run)
    run.add_argument("--name", help="run name (default FACTORY-seedN)")
    run.add_argument("--runs-dir", default="runs", help="where runs are written (default runs/)")
    run.set_defaults(func=cmd_factory_run)
    add_host_commands(fsub)
    au = fsub.add_parser(
        "audit", help="a finished factory run: material, shipments, orders (late ones explained)"
    )
    au.add_argument("--run", metavar="DIR", help="factory run (default: the newest in RUNS_DIR)")
    au.add_argument("--runs-dir", default="runs", help="where runs are (default runs/)")
    au.set_defaults(func=cmd_factory_audit)
    st = fsub.add_parser("status", help="a running factory's lines, orders and stores")
    st.add_argument(
        "--endpoint",
        required=True,
        metavar="BASE",
        help="the factory's endpoint (factory run --endpoint)",
    )
    st.add_argument("--timeout", type=positive, default=5.0, help="seconds per try (default 5)")
    st.add_argument("--key", metavar="FILE", help="CURVE client secret key (NAME.key_secret)")
    st.add_argument(
        "--server-key",
        metavar="FILE",
        help="the factory's public key (default: server.key beside --key)",
    )
    st.add_argument("--json", action="store_true", help="the view as JSON")
    st.add_argument(
        "--watch",
        action="store_true",
        help="the live view, until the factory's run ends or Ctrl-C (--timeout: for its first "
        "answer)",
    )
    st.set_defaults(func=cmd_factory_status)

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
