"""``lightsout factory serve`` and ``factory line``: a factory's coordinator and its lines as
processes on hosts of their own (``factory.hub``, ``factory.linehost``), and ``factory run
--hosts``, which starts them all on this machine (``factory.hosts``).

Each returns an exit code; a known error is one line ``error: ...`` and exit 2
(``clients.cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from bus.errors import ConfigError
from bus.security import CurveKeys
from clients.args import MAX_CHAOS_RATE, positive, whole, within


def _meta(args: argparse.Namespace, spec: Any, orders: list[Any], late: Any) -> dict[str, Any]:
    from factory.run import factory_meta

    meta = factory_meta(spec, args.seed, args.duration, True, orders, None, 0.0, False, late)
    for key in ("processes", "faults", "chaos", "wear"):  # each line host's own, not known here
        del meta[key]
    meta["hosts"] = True
    meta["lines_own"] = "processes, faults, chaos: lines/NAME/run.json and chaos.toml"
    return meta


def cmd_factory_serve(args: argparse.Namespace, console: Console) -> int:
    """The coordinator of lines on other hosts, until every line is done."""
    from factory.hub import Hub
    from factory.run import OrderLine
    from factory.schema import load_factory
    from factory.supply import load_supply

    spec = load_factory(args.file)
    orders = [OrderLine.parse(o) for o in args.order]
    late = load_supply(args.supply, spec) if args.supply else ()

    def shown(view: dict[str, Any]) -> None:
        if round(view["t_s"]) % 60 == 0:
            print(
                f"coordinator: {view['t_s']:g} s, {view['orders_open']} of "
                f"{view['orders_total']} orders open",
                flush=True,
            )

    hub = Hub(
        spec,
        Path(args.out),
        meta=_meta(args, spec, orders, late),
        orders=orders,
        duration_s=args.duration,
        late=late,
        bind=args.bind,
        keys_dir=Path(args.keys),
        endpoint=args.endpoint,
        resume=args.resume,
        on_step=shown,
    )
    kpis = hub.serve()
    console.print(
        f"coordinator: done: {kpis['shipments']} shipments, material balanced: "
        f"{kpis['material_balanced']}; refused {hub.refused} reports",
        highlight=False,
    )
    return 0 if kpis["material_balanced"] else 1


def cmd_factory_line(args: argparse.Namespace, console: Console) -> int:
    """One line of a factory, here, under a coordinator elsewhere."""
    from cells.faults import load_scenario
    from factory.linehost import run_line_host
    from factory.schema import load_factory

    spec = load_factory(args.file)
    try:
        cell = spec.line(args.line).cell
    except KeyError:
        known = ", ".join(ln.name for ln in spec.lines)
        raise ConfigError(
            "--line", args.line[:80], f"not a line of {spec.source} ({known})"
        ) from None
    scenario = load_scenario(args.faults, cell) if args.faults else ()
    kpis = run_line_host(
        spec,
        args.line,
        Path(args.out),
        coordinator=args.coordinator,
        keys_dir=Path(args.keys),
        seed=args.seed,
        duration_s=args.duration,
        processes=args.processes,
        endpoint=args.endpoint,
        scenario=scenario,
        chaos=args.chaos or 0.0,
        wear=args.wear,
        guard_s=args.guard,
    )
    console.print(
        f"line {args.line}: done: {kpis.get('units_completed')} units, ledger balanced: "
        f"{kpis.get('ledger_balanced')}",
        highlight=False,
    )
    return 0


WATCH_S = 0.5
"""Wall seconds between the console's status requests to the coordinator."""


def watch_coordinator(endpoint: str, update: Any, stop: threading.Event) -> None:
    """Feed ``update`` the coordinator's view (its ``status``) until ``stop``: the console of
    a factory on hosts. A coordinator not up yet, or restarting, is asked again; a view that
    is not one is dropped (the last good one stays on screen)."""
    from bus.enums import ControlCommand
    from bus.errors import LightsoutError
    from clients.control import ControlClient

    with ControlClient(endpoint, timeout_s=1.0, retries=0) as client:
        while not stop.wait(WATCH_S):
            try:
                view = json.loads(client.request(ControlCommand.STATUS).data)
            except (LightsoutError, ValueError, OSError):
                continue
            if isinstance(view, dict):
                update(view)


GONE_S = 3.0
"""``factory status --watch``: a factory silent this long after answering has ended its run."""


def watch_factory(
    endpoint: str, console: Console, *, timeout_s: float, curve: CurveKeys | None = None
) -> int:
    """``factory status --watch``: the live view of a running factory (any: in one process,
    with ``--processes`` or on hosts), asked twice a second from its control socket, until it
    stops answering for ``GONE_S`` (its run ended) or Ctrl-C. A factory that never answers
    within ``timeout_s`` is one line (exit 2): a mistyped endpoint, or no factory there."""
    import time

    from bus.enums import ControlCommand
    from bus.errors import LightsoutError
    from clients.console_factory import FactoryConsole
    from clients.control import ControlClient

    screen = FactoryConsole(console)
    start, last = time.monotonic(), None
    with ControlClient(endpoint, timeout_s=1.0, retries=0, curve=curve) as client, screen.live():
        try:
            while True:
                try:
                    view = json.loads(client.request(ControlCommand.STATUS).data)
                except (LightsoutError, ValueError, OSError):
                    view = None
                now = time.monotonic()
                if isinstance(view, dict):
                    screen.update(view)
                    last = now
                elif last is None and now - start > timeout_s:
                    raise LightsoutError(f"{endpoint}: no factory answered within {timeout_s:g} s")
                elif last is not None and now - last > GONE_S:
                    break
                time.sleep(WATCH_S)
        except KeyboardInterrupt:
            return 0
    console.print(f"{endpoint}: the factory stopped answering (its run ended)", highlight=False)
    return 0


def run_on_hosts(
    args: argparse.Namespace, spec: Any, orders: list[Any], out: Path, log: Any = None
) -> Any:
    """``factory run --hosts``: the coordinator and every line as processes of their own;
    ``log`` takes the launcher's progress lines (default: stderr)."""
    from factory.hosts import run_hosts

    faults = {}
    for given in args.faults:
        line, _, scenario = given.partition("=")
        faults[line] = scenario
    return run_hosts(
        spec,
        out,
        orders=orders,
        duration_s=args.duration,
        seed=args.seed,
        keys_dir=Path(args.keys) if args.keys else out.parent / f"{out.name}-keys",
        processes=args.processes,
        faults=faults,
        supply=args.supply,
        chaos=args.chaos or 0.0,
        wear=args.wear,
        guard_s=args.guard,
        kill_coordinator_at=args.kill_coordinator_at,
        endpoint=args.endpoint,
        log=log or (lambda text: print(text, file=sys.stderr, flush=True)),
    )


def add_host_args(run: Any) -> None:
    """``factory run``'s options for lines on hosts of their own."""
    run.add_argument(
        "--hosts",
        action="store_true",
        help="the coordinator and each line as a process of its own, each line on its own "
        "loopback address, over tcp with CURVE keys (docs/factory.md)",
    )
    run.add_argument(
        "--keys",
        metavar="DIR",
        help="with --hosts: the keys directory (made if missing; default RUN-keys beside the run)",
    )
    run.add_argument(
        "--kill-coordinator-at",
        type=positive,
        metavar="S",
        help="with --hosts: kill the coordinator (SIGKILL) once its journal reaches S sim "
        "seconds, and start it again from its journal",
    )


def add_commands(fsub: Any) -> None:
    """Register ``factory serve`` and ``factory line``."""
    serve = fsub.add_parser("serve", help="a factory's coordinator for lines on other hosts")
    serve.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    serve.add_argument("--bind", required=True, metavar="tcp://HOST:PORT")
    serve.add_argument("--keys", required=True, metavar="DIR", help="keys directory")
    serve.add_argument("--out", required=True, metavar="DIR", help="the factory's run directory")
    serve.add_argument("--resume", action="store_true", help="carry on from the journal in --out")
    serve.add_argument("--order", action="append", default=[], metavar="ORDER")
    serve.add_argument("--supply", metavar="FILE", help="supply faults (docs/factory.md)")
    serve.add_argument(
        "--endpoint",
        metavar="BASE",
        help="take orders while running: ipc://DIR, or tcp://HOST:PORT (with --keys' roles)",
    )
    line = fsub.add_parser("line", help="one line of a factory, under a coordinator elsewhere")
    line.add_argument("file", help="factory file, e.g. cells/factory_2.toml")
    line.add_argument("--line", required=True, help="the line's name in the factory file")
    line.add_argument("--coordinator", required=True, metavar="tcp://HOST:PORT")
    line.add_argument("--keys", required=True, metavar="DIR", help="keys directory")
    line.add_argument("--out", required=True, metavar="DIR", help="the line's run directory")
    line.add_argument("--processes", action="store_true", help="supervisor and agents as processes")
    line.add_argument("--endpoint", metavar="tcp://HOST:PORT", help="the line's own sockets")
    line.add_argument("--faults", metavar="SCENARIO", help="a scenario file for this line")
    line.add_argument("--chaos", type=within(1e-6, MAX_CHAOS_RATE), metavar="RATE")
    line.add_argument("--wear", action="store_true", help="with --chaos: the degrading kinds too")
    line.add_argument("--guard", type=positive, default=10.0, metavar="S")
    for p in (serve, line):
        p.add_argument("--duration", type=positive, default=300.0, help="sim seconds")
        p.add_argument("--seed", type=whole(0), default=1, help="the factory's seed")
    serve.set_defaults(func=cmd_factory_serve)
    line.set_defaults(func=cmd_factory_line)
