"""The ``lightsout`` subcommands that talk to a running cell, and ``keys create``.

``status``, ``robot``, ``cell``, ``fault inject``, ``pace``, ``order add``,
``snapshot``, ``watch`` and ``console`` each take ``--endpoint BASE`` (the
cell's base endpoint, as given to ``run``) and ``--json`` for output a
program reads. They return 0, or raise a ``LightsoutError`` that the entry
point prints as one line ``error: ...`` with exit code 2. With ``--json`` a
refused request also prints the reply as JSON on stdout, so a script sees the
code without parsing the message.

Kept apart from ``clients.cli`` so that module stays the launcher's and this
one the control plane's; ``clients.cli.build_parser`` calls ``add_commands``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bus.codec import to_wire
from bus.endpoints import Endpoints
from bus.enums import ControlCommand, PackMLCommand, UnitMode
from bus.errors import ConfigError, LightsoutError
from bus.messages import (
    PACES,
    TOPICS,
    CellStatus,
    ControlReply,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartsFrame,
)
from bus.security import ROLES, CurveKeys, create_key
from bus.simtime import NS
from clients.args import positive, whole, within
from clients.control import ControlClient, ControlError, Subscriber, parse_command

COMMANDS = ", ".join(c.value.lower() for c in (*PackMLCommand, *UnitMode))


# ---------------------------------------------------------------- shared


def _endpoints(args: argparse.Namespace, socket: str) -> Endpoints:
    """The cell's endpoints; for ``ipc://`` a missing socket file is a clear error now, not a timeout."""
    ends = Endpoints.from_base(args.endpoint)
    if ends.transport == "ipc":
        path = getattr(ends, socket).removeprefix("ipc://")
        if not os.path.exists(path):
            raise LightsoutError(f"no cell at {args.endpoint}: {path} does not exist")
    return ends


def client_curve(args: argparse.Namespace) -> CurveKeys | None:
    """The client's CURVE identity from ``--key`` (and ``--server-key``), or None without."""
    if not args.key:
        if args.server_key:
            raise ConfigError("--server-key", args.server_key, "needs --key too")
        return None
    return CurveKeys.from_files(args.key, args.server_key)


def _client(args: argparse.Namespace) -> ControlClient:
    _endpoints(args, "control")
    return ControlClient(
        args.endpoint, timeout_s=args.timeout, retries=args.retries, curve=client_curve(args)
    )


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _send(args: argparse.Namespace, console: Console, label: str, fn: Any, *fn_args: Any) -> int:
    """Run one command request and print its answer (or, with --json, the reply)."""
    with _client(args) as client:
        try:
            reply: ControlReply = fn(client, *fn_args)
        except ControlError as exc:
            if args.json:
                _emit({"ok": False, "code": exc.code, "reason": exc.reason})
            raise
    if args.json:
        _emit(to_wire(reply))
    else:
        console.print(f"{label}: {reply.reason or 'ok'}", markup=False, highlight=False)
    return 0


# ---------------------------------------------------------------- commands


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    """Print the cell's clock, robots and production counts."""
    with _client(args) as client:
        status = client.status()
    if args.json:
        _emit(to_wire(status))
    else:
        print_status(status, console)
    return 0


def print_status(status: CellStatus, console: Console) -> None:
    """The status as a line and a robot table."""
    console.print(
        f"sim {status.t_ns / NS:.1f} s, pace {status.pace}: "
        f"{status.units_completed} units completed, {status.units_in_progress} in progress, "
        f"ledger {'balanced' if status.ledger_balanced else 'NOT balanced'}",
        markup=False,
        highlight=False,
    )
    console.print(
        counts_line(status.refused, status.malformed, status.dropped), markup=False, highlight=False
    )
    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("robot", "mode", "state", "step", "operation", "holding", "alive", "fault"):
        table.add_column(col)
    for r in status.robots:
        table.add_row(
            r.robot,
            r.mode.value,
            r.state.value,
            r.step.value,
            r.op_id or "-",
            r.holding or "-",
            "yes" if r.alive else "NO",
            r.fault or "-",
        )
    console.print(table, markup=False, highlight=False)


def cmd_robot(args: argparse.Namespace, console: Console) -> int:
    """A PackML command for one robot."""
    cmd = parse_command(args.action)
    return _send(args, console, args.robot, ControlClient.robot, args.robot, cmd)


def cmd_cell(args: argparse.Namespace, console: Console) -> int:
    """A PackML command for every robot of the cell."""
    cmd = parse_command(args.action)
    return _send(args, console, "cell", ControlClient.cell, cmd)


def cmd_fault(args: argparse.Namespace, console: Console) -> int:
    """Inject a fault (``--permanent``: a robot that fails for good, with no duration)."""
    amount = args.share if args.kind == "message_loss" else args.factor
    fault = functools.partial(ControlClient.fault, permanent=args.permanent, factor=amount)
    duration = 0.0 if args.permanent else args.duration
    return _send(args, console, args.target, fault, args.target, args.kind, duration)


def cmd_pace(args: argparse.Namespace, console: Console) -> int:
    """Pause, run, or pace the clock."""
    if args.mode not in PACES:
        raise ConfigError("pace", args.mode, f"not a pace; use one of {', '.join(PACES)}")
    return _send(args, console, "clock", ControlClient.pace, args.mode, args.factor)


def cmd_order(args: argparse.Namespace, console: Console) -> int:
    """Add an order of units."""
    try:
        count = int(args.count)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError("order add", args.count, "COUNT must be a whole number from 1")
    if args.customer or args.due:
        # a factory's order (``factory.control``): the customer and the due time ride along
        def order(client: ControlClient) -> ControlReply:
            return client.request(
                ControlCommand.ORDER,
                target=args.customer or "",
                action=args.product,
                value=float(count),
                factor=args.due or 0.0,
            )

        return _send(args, console, "orders", order)
    return _send(args, console, "orders", ControlClient.order, args.product, count)


def counts_line(refused: object, malformed: object, dropped: object) -> str:
    """What the cell refused and dropped since it started (requests, telemetry)."""
    return (
        f"requests refused {refused}, malformed {malformed}; "
        f"telemetry queue overflows (dropped) {dropped}"
    )


def cmd_snapshot(args: argparse.Namespace, console: Console) -> int:
    """Print what a viewer needs to rebuild its picture after a telemetry gap."""
    with _client(args) as client:
        snap = client.snapshot()
    if args.json:
        _emit(snap)
        return 0
    parts = snap.get("parts", {})
    where = collections.Counter(
        str(p.get("location", "?")).partition(":")[0] for p in parts.values() if isinstance(p, dict)
    )
    t = snap.get("t_ns", 0)
    console.print(
        f"sim {t / NS if isinstance(t, int) else 0:.1f} s, pace {snap.get('pace', '?')}, "
        f"{len(parts)} live parts ({', '.join(f'{k} {v}' for k, v in sorted(where.items()))})",
        markup=False,
        highlight=False,
    )
    robots = snap.get("robots", {})
    table = Table(show_edge=False, box=None, pad_edge=False)
    for col in ("robot", "state", "step", "operation", "holding"):
        table.add_column(col)
    for name, r in robots.items():
        table.add_row(
            name, r.get("state"), r.get("step"), r.get("op") or "-", r.get("holding") or "-"
        )
    console.print(table, markup=False, highlight=False)
    console.print(
        counts_line(snap.get("refused", "?"), snap.get("malformed", "?"), snap.get("dropped", "?")),
        markup=False,
        highlight=False,
    )
    seq = snap.get("seq", {})
    console.print(
        "telemetry seq: " + ", ".join(f"{k} {v}" for k, v in sorted(seq.items())),
        markup=False,
        highlight=False,
    )
    return 0


def describe(msg: Message) -> str:
    """One line for a telemetry message, as ``watch`` prints it."""
    if isinstance(msg, JointsFrame):
        arms = "  ".join(
            f"{a.robot} {a.state.value}/{a.step.value}" + (f" [{a.holding}]" if a.holding else "")
            for a in msg.arms
        )
        head, body = "joints", arms
    elif isinstance(msg, PartsFrame):
        where = collections.Counter(msg.locations)
        head = "parts"
        body = f"{len(msg.parts)} parts: " + ", ".join(f"{k} {v}" for k, v in sorted(where.items()))
    elif isinstance(msg, EventFrame):
        try:
            rec = json.loads(msg.data)
        except ValueError:
            rec = {}
        fields = rec if isinstance(rec, dict) else {}
        rest = " ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in fields.items()
            if k not in ("t_ns", "kind")
        )
        head, body = "events", f"{msg.kind} {rest}"
    elif isinstance(msg, KpiFrame):
        try:
            k = json.loads(msg.data)
        except ValueError:
            k = {}
        k = k if isinstance(k, dict) else {}
        head = "kpis"
        body = (
            f"units {k.get('units_completed', '-')} completed, "
            f"{k.get('units_in_progress', '-')} in progress; "
            f"throughput {k.get('throughput_per_hour', '-')}/h; "
            f"ledger {'balanced' if k.get('ledger_balanced') else 'NOT balanced'}"
        )
    else:
        return type(msg).__name__
    seq = getattr(msg, "seq", -1)
    t = getattr(msg, "t_ns", 0)
    return f"{t / NS:10.3f}s {head:<6} #{seq:<6} {body}"


def cmd_watch(args: argparse.Namespace, console: Console) -> int:
    """Print telemetry as lines until Ctrl-C or ``--count`` messages."""
    _endpoints(args, "telemetry")
    topics = tuple(args.topics or TOPICS)
    seen = 0
    gaps = 0
    with Subscriber(args.endpoint, topics, curve=client_curve(args)) as sub:
        try:
            while args.count is None or seen < args.count:
                for msg in sub.poll(0.5):
                    if args.json:
                        _emit(to_wire(msg))
                    else:
                        sys.stdout.write(describe(msg) + "\n")
                    seen += 1
                    if args.count is not None and seen >= args.count:
                        break
                sys.stdout.flush()
                fresh = min(sub.gap_count - gaps, len(sub.gaps))
                for gap in list(sub.gaps)[len(sub.gaps) - fresh :]:
                    print(
                        f"gap: {gap.topic} expected #{gap.expected}, got #{gap.got}",
                        file=sys.stderr,
                    )
                gaps = sub.gap_count
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            # the reader went away (`| head`): that ends the watch, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:
            print(
                f"{seen} messages, {sub.gap_count} gaps ({sub.lost} lost), "
                f"{sub.malformed} malformed",
                file=sys.stderr,
            )
    return 0


def cmd_console(args: argparse.Namespace, console: Console) -> int:
    """The full-screen live view."""
    from clients.console import run_console

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise LightsoutError(
            "console needs a terminal; `lightsout watch` prints telemetry as lines"
        )
    _endpoints(args, "telemetry")
    return run_console(
        args.endpoint,
        curve=client_curve(args),
        fault_duration_s=args.fault_duration,
        fps=args.fps,
        timeout_s=args.timeout,
    )


def cmd_keys_create(args: argparse.Namespace, console: Console) -> int:
    """Make a client key pair with a role, or a cell's participant pair (and the host's pair)."""
    if args.role == PARTICIPANT:
        return _participant_key(args, console)
    if args.cell:
        raise ConfigError("--cell", args.cell, "only a participant key belongs to one cell")
    info = create_key(Path(args.dir), args.name, args.role, force=args.force)
    if args.json:
        _emit(
            {
                "name": info.name,
                "role": info.role,
                "public": info.public,
                "public_file": str(info.public_file),
                "secret_file": str(info.secret_file),
                "roles_file": str(info.roles_file),
            }
        )
    else:
        console.print(
            f"{info.name} ({info.role}): {info.public_file}, {info.secret_file}\n"
            f"public key {info.public}, listed in {info.roles_file}\n"
            f"connect with --key {info.secret_file} (server key: {info.public_file.parent}/server.key)",
            markup=False,
            highlight=False,
        )
    return 0


PARTICIPANT = "participant"
"""``keys create --role participant``: a key pair of one cell's supervisor or robot."""


def _participant_key(args: argparse.Namespace, console: Console) -> int:
    from bus.trust import create_participant, read_participants

    if not args.cell:
        raise ConfigError("--cell", "", "a participant key belongs to one cell: give --cell NAME")
    secret = create_participant(Path(args.dir), args.cell, args.name, force=args.force)
    public = next(
        k for k, n in read_participants(Path(args.dir), args.cell).items() if n == args.name
    )
    if args.json:
        _emit(
            {
                "name": args.name,
                "role": PARTICIPANT,
                "cell": args.cell,
                "public": public,
                "secret_file": str(secret),
            }
        )
    else:
        console.print(
            f"{args.name} (participant of {args.cell}): {secret}\npublic key {public}, "
            f"listed in {secret.parent / 'participants.toml'}",
            markup=False,
            highlight=False,
        )
    return 0


# ---------------------------------------------------------------- parser


def _common(*, control: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--endpoint",
        required=True,
        metavar="BASE",
        help="the cell's base endpoint (ipc://DIR, tcp://HOST:PORT, as given to run)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--timeout", type=positive, default=2.0, metavar="S", help="seconds per try (default 2)"
    )
    if control:
        p.add_argument(
            "--retries",
            type=int,
            choices=range(0, 10),
            default=2,
            metavar="N",
            help="tries after the first, same request id (default 2)",
        )
    p.add_argument("--key", metavar="FILE", help="CURVE client secret key (NAME.key_secret)")
    p.add_argument(
        "--server-key",
        metavar="FILE",
        help="the cell's public key (default: server.key beside --key)",
    )
    return p


def add_commands(sub: Any) -> None:
    """Register the control-plane subcommands on ``lightsout``'s subparsers."""
    common = _common()

    p = sub.add_parser("status", parents=[common], help="a running cell's clock, robots and counts")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "robot", parents=[common], help="a PackML command (or a unit mode) for one robot"
    )
    p.add_argument("robot", help="robot name, e.g. R1")
    p.add_argument("action", metavar="COMMAND", help=f"one of {COMMANDS}")
    p.set_defaults(func=cmd_robot)

    p = sub.add_parser(
        "cell", parents=[common], help="a PackML command (or a unit mode) for every robot"
    )
    p.add_argument("action", metavar="COMMAND", help=f"one of {COMMANDS}")
    p.set_defaults(func=cmd_cell)

    p = sub.add_parser("fault", help="inject a fault into a running cell")
    fsub = p.add_subparsers(dest="fault_command", required=True)
    q = fsub.add_parser("inject", parents=[common], help="inject a fault now")
    q.add_argument(
        "target", help="a robot, a conveyor (conveyor_jam) or a sensor (sensor_blackout)"
    )
    q.add_argument(
        "kind",
        help="robot_fault, gripper_drop, conveyor_jam, sensor_blackout, slow_robot or "
        "message_loss (docs/faults.md)",
    )
    q.add_argument(
        "--factor", type=positive, default=2.0, help="slow_robot: times slower (default 2)"
    )
    q.add_argument(
        "--share",
        type=positive,
        default=0.3,
        help="message_loss: share of messages lost, below 1 (default 0.3)",
    )
    how_long = q.add_mutually_exclusive_group()
    how_long.add_argument(
        "--duration", type=positive, default=10.0, metavar="S", help="sim seconds (default 10)"
    )
    how_long.add_argument(
        "--permanent",
        action="store_true",
        help="robot_fault only: the robot fails for good and is never cleared",
    )
    q.set_defaults(func=cmd_fault)

    p = sub.add_parser("pace", parents=[common], help="pause, run or pace the clock")
    p.add_argument("mode", help=f"one of {', '.join(PACES)}")
    p.add_argument(
        "--factor",
        type=within(1e-3, 1e3),
        default=1.0,
        help="realtime: sim seconds per wall second (0.001 to 1000)",
    )
    p.set_defaults(func=cmd_pace)

    p = sub.add_parser("order", help="orders of units")
    osub = p.add_subparsers(dest="order_command", required=True)
    q = osub.add_parser("add", parents=[common], help="add an order")
    q.add_argument("product", help="the cell's product, e.g. phone")
    q.add_argument("count", help="units, a whole number from 1")
    q.add_argument("--customer", help="a factory's customer (default: the first taking it)")
    q.add_argument(
        "--due",
        type=within(1e-3, 365 * 24 * 3600.0),
        metavar="S",
        help="a factory's order: due S sim seconds from when it is taken (default 3600)",
    )
    q.set_defaults(func=cmd_order)

    p = sub.add_parser("snapshot", parents=[common], help="robots, live parts, KPIs, telemetry seq")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser(
        "watch", parents=[_common(control=False)], help="print telemetry until Ctrl-C"
    )
    p.add_argument(
        "--topics", nargs="+", metavar="TOPIC", help=f"any of {', '.join(TOPICS)} (default all)"
    )
    p.add_argument(
        "--count",
        type=whole(1),
        metavar="N",
        help="stop after N messages (default: run until Ctrl-C)",
    )
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("console", parents=[common], help="full-screen live view with keys")
    p.add_argument("--fps", type=positive, default=12.0, help="redraws per second (default 12)")
    p.add_argument(
        "--fault-duration",
        type=positive,
        default=10.0,
        metavar="S",
        help="how long the f key's robot_fault lasts, sim seconds (default 10)",
    )
    p.set_defaults(func=cmd_console)

    p = sub.add_parser("keys", help="CurveZMQ keys and roles for tcp:// cells")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    q = ksub.add_parser("create", help="make a client key pair with a role, or a participant's")
    q.add_argument("name", help="letters, digits, _ and -")
    q.add_argument(
        "--role",
        required=True,
        help=f"one of {', '.join(ROLES)}, or {PARTICIPANT} (a cell's supervisor or robot)",
    )
    q.add_argument("--cell", help=f"{PARTICIPANT}: the cell (its name in the cell file)")
    q.add_argument("--dir", default="keys", help="keys directory (default keys/)")
    q.add_argument("--force", action="store_true", help="replace a key of that name")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_keys_create)
