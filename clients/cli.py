"""``lightsout``: the one command-line entry point.

Each subcommand returns an exit code; a known error prints one line
``error: ...`` and exits 2; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bus.errors import LightsoutError
from cells.schema import SYNCS
from clients.args import MAX_CHAOS_RATE, positive, whole, within
from clients.cli_control import add_commands
from clients.cli_factory import add_commands as add_factory_commands
from clients.cli_report import add_commands as add_report_commands
from clients.cli_study import add_commands as add_study_commands
from supervisor.allocation import POLICIES

if TYPE_CHECKING:
    from cells.audit import Check

PACE_FACTORS = (1e-3, 1e3)
"""The real-time factors ``--realtime`` takes (as ``pace realtime`` does, ``sim.host``)."""
WRITERS = ("run", "sim", "record", "agent", "supervisor", "sweep", "factory")
"""The subcommands that write runs, journals, logs or bags: owner-only (umask 077)."""


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    """Run a cell headless and print its KPIs."""
    from bus.endpoints import private_ipc_base, remove_ipc
    from cells.audit import audit_run
    from cells.headless import plan_faults, write_chaos
    from cells.launch import RunOptions, run_cell, run_dir
    from cells.schema import load_cell
    from clients.kpi_table import print_kpis
    from clients.report import write_report

    cell = load_cell(args.cell)
    if args.policy:
        cell = dataclasses.replace(cell, policy=args.policy)
    if args.sync:
        cell = dataclasses.replace(cell, sync=args.sync)
    if args.fidelity == "events" or args.calibration:
        from cells.calibrate import with_fidelity

        cell = with_fidelity(cell, args.cell, args.fidelity, borrowed=args.calibration)
    if args.no_maintain:
        cell = dataclasses.replace(cell, maintain=False)
    if args.no_optimize:
        cell = dataclasses.replace(cell, optimize=dataclasses.replace(cell.optimize, enabled=False))
    planned = plan_faults(
        cell,
        scenario=args.faults,
        chaos_rate=args.chaos or 0.0,
        duration_s=args.duration,
        seed=args.seed,
        # killed as processes, or in this one over inproc (a recorder and the console need
        # an endpoint other processes reach: the members are threads then)
        killable=args.processes
        or (
            args.record is None
            and not args.console
            and (args.endpoint or "inproc://").startswith("inproc://")
        ),
        wear=args.wear,
    )
    faults, chaos = planned.faults, planned.chaos
    if args.console:
        return _run_with_console(args, console)
    # a run name takes no dot: chaos 0.02 names the run ...-chaos0_02
    rate = f"-chaos{args.chaos:g}".replace(".", "_") if chaos else ""
    name = args.name or f"{cell.name}-seed{args.seed}{rate}"
    out = run_dir(Path(args.runs_dir), name)
    if chaos:
        wear = " --wear" if args.wear else ""
        note = f"lightsout run {args.cell} --chaos {args.chaos:g}{wear} --seed {args.seed}"
        write_chaos(out, planned, note)
    endpoint = args.endpoint
    recorder = None
    if args.record is not None:
        # the recorder is its own process (it must not slow the cell), so the cell needs an
        # endpoint another process can reach
        endpoint = endpoint or private_ipc_base()
        bag = Path(args.record) if args.record else out / "bag"
        if bag.exists():
            raise LightsoutError(f"{bag} exists: a bag is never overwritten")
        cmd = [sys.executable, "-m", "clients.cli", "record", "--endpoint", endpoint, str(bag)]
        recorder = subprocess.Popen(
            [*cmd, "--cell", args.cell], stdout=subprocess.DEVNULL, preexec_fn=lower_priority
        )
    opts = RunOptions(
        seed=args.seed,
        duration_s=args.duration,
        processes=args.processes,
        endpoint=endpoint,
        realtime=args.realtime,
        faults=faults,
        subscribers=1 if recorder else 0,
        keys_dir=Path(args.keys) if args.keys else None,
        insecure=args.insecure,
        guard_s=args.guard,
    )
    mode = "processes over " + (args.endpoint or "ipc://") if args.processes else "one process"
    console.print(
        f"[bold]{cell.name}[/bold]: {args.duration:.0f} s of sim time, seed {args.seed}, {mode}"
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s sim"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
        transient=False,
    ) as bar:
        task = bar.add_task("running", total=args.duration)

        shown = [-1]

        def on_tick(t_ns: int, total_ns: int) -> None:
            # once a sim second (the events world may jump over the tick that starts one)
            if t_ns // 1_000_000_000 != shown[0]:
                shown[0] = t_ns // 1_000_000_000
                bar.update(task, completed=t_ns / 1e9)

        try:
            kpis = run_cell(cell, out, opts, progress=on_tick)
        finally:
            if recorder is not None and recorder.wait(timeout=120) != 0:
                console.print(f"[red]the recorder exited with {recorder.returncode}[/red]")
            if endpoint and endpoint != args.endpoint:
                remove_ipc(endpoint, remove_dir=True)  # the directory made here for the recorder
        bar.update(task, completed=args.duration)
    print_kpis(kpis, console)
    console.print(f"results: {out / 'kpis.json'}")
    console.print(f"events:  {out / 'events.jsonl'}")
    console.print(f"report:  {write_report(out)}")
    if recorder is not None:
        console.print(f"bag:     {Path(args.record) if args.record else out / 'bag'}")
    if chaos:
        console.print(f"chaos:   {len(chaos)} faults, {out / 'chaos.toml'}")
        code = print_audit(audit_run(out), console)
        return code or stopped(kpis, console)
    return stopped(kpis, console)


def stopped(kpis: dict[str, Any], console: Console) -> int:
    """0 for a run that reached its end; 128 + the signal for one a signal ended (results
    written all the same)."""
    reason = str(kpis.get("sim", {}).get("exit_reason", ""))
    if not reason.startswith("signal "):
        return 0
    console.print(f"stopped: {reason} at {kpis.get('duration_s', 0):g} s of sim time")
    return 128 + int(getattr(signal, reason.removeprefix("signal "), 0))


def add_realtime(parser: argparse.ArgumentParser) -> None:
    """``--realtime [FACTOR]``, for ``run`` and ``resume`` alike (a resumed run is paced
    anew: the pace is how it is watched, not part of the run)."""
    parser.add_argument(
        "--realtime",
        type=within(*PACE_FACTORS),
        nargs="?",
        const=1.0,
        default=0.0,
        metavar="FACTOR",
        help="pace sim time to the wall clock (times FACTOR); default: as fast as possible",
    )


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    """Carry a crashed or killed run on from its journal (``cells.resume``)."""
    from cells.audit import audit_run
    from cells.resume import resume_run
    from clients.kpi_table import print_kpis
    from clients.report import write_report

    out = Path(args.run)
    processes = True if args.processes else (False if args.one_process else None)
    kpis = resume_run(out, processes=processes, realtime=args.realtime)
    print_kpis(kpis, console)
    console.print(f"results: {out / 'kpis.json'}")
    console.print(f"report:  {write_report(out)}")
    code = print_audit(audit_run(out), console) if args.audit else 0
    return code or stopped(kpis, console)


def print_audit(checks: list[Check], console: Console) -> int:
    """The audit as a table; 0 if every check passed, else 1."""
    table = Table(title="audit")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    console.print(table)
    return 0 if all(c.ok for c in checks) else 1


def cmd_audit(args: argparse.Namespace, console: Console) -> int:
    """Check a finished run's promises (docs/faults.md)."""
    from cells.audit import audit_run

    return print_audit(audit_run(Path(args.run), window_s=args.window), console)


def cmd_decisions(args: argparse.Namespace, console: Console) -> int:
    """List a run's diagnoses and maintenances with their evidence, and check them."""
    from cells.decisions import audit_decisions
    from cells.optimize_audit import audit_optimization

    lines, checks = audit_decisions(Path(args.run))
    console.print(f"{len(lines)} diagnoses", markup=False, highlight=False)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    changes, more = audit_optimization(Path(args.run))
    console.print(f"{len(changes)} changes by self-optimization", markup=False, highlight=False)
    for line in changes:
        console.print(line, markup=False, highlight=False)
    return print_audit(checks + more, console)


def lower_priority() -> None:
    """Make this process an observer: it runs only on CPU the cell leaves idle.

    SCHED_IDLE where the OS has it (Linux), else the lowest niceness. The cell
    keeps the CPU it needs; the recorder catches up from its queue (a
    subscriber's queue holds 100,000 frames, minutes of sim time), and the
    cell's end comes after every frame, so nothing is lost.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError:
            pass
    os.nice(19)


def _run_with_console(args: argparse.Namespace, console: Console) -> int:
    """Run the cell in a process of its own and watch it in the console until ``q``.

    The console only subscribes and sends the odd command, so the cell runs as
    fast as it would alone. Quitting the console ends the run (its results are
    written as at the end of its duration).
    """
    from bus.endpoints import private_ipc_base, remove_ipc
    from clients.console import run_console
    from clients.control import ControlClient

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise LightsoutError("--console needs a terminal; run without it for a headless run")
    base = args.endpoint or private_ipc_base()
    cmd = [sys.executable, "-m", "clients.cli", "run", args.cell, "-q", "--endpoint", base]
    if args.keys or args.insecure:
        raise LightsoutError("--console watches a local cell: leave out --keys and --insecure")
    cmd += ["--duration", str(args.duration), "--seed", str(args.seed), "--runs-dir", args.runs_dir]
    for flag, value in (
        ("--name", args.name),
        ("--faults", args.faults),
        ("--chaos", args.chaos or None),
        ("--realtime", args.realtime or None),
        ("--policy", args.policy),
        ("--sync", args.sync),
        ("--fidelity", args.fidelity if args.fidelity != "physics" else None),
        ("--calibration", args.calibration),
    ):
        if value:
            cmd += [flag, str(value)]
    if args.processes:
        cmd.append("--processes")
    if args.wear:
        cmd.append("--wear")
    if args.no_maintain:
        cmd.append("--no-maintain")
    if args.no_optimize:
        cmd.append("--no-optimize")
    if args.record is not None:
        cmd += ["--record", *([args.record] if args.record else [])]
    with tempfile.TemporaryFile() as log:
        cell = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            run_console(base)
        finally:
            if cell.poll() is None:
                try:
                    with ControlClient(base, timeout_s=5) as client:
                        client.shutdown()
                except LightsoutError:
                    cell.terminate()
            cell.wait(timeout=120)
            if not args.endpoint:
                remove_ipc(base, remove_dir=True)
            log.seek(0)
            sys.stdout.write(log.read().decode(errors="replace"))
    return cell.returncode


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    """Check a cell file and say what it holds."""
    from cells.schema import load_cell

    cell = load_cell(args.cell)
    recipes = ", ".join(
        f"{r.product!r} ({len(r.ops)} operations{', builds robots' if r.robot else ''})"
        for r in cell.recipes
    )
    bay = (
        f", {len(cell.stands)} test stands, {len(cell.mounts)} mount points" if cell.mounts else ""
    )
    console.print(
        f"{args.cell}: ok: {len(cell.robots)} robots, {len(cell.fixtures)} fixtures, "
        f"{len(cell.conveyors)} conveyors, {len(cell.feeders)} feeders{bay}; recipes {recipes}"
    )
    return 0


def cmd_node(args: argparse.Namespace, console: Console) -> int:
    """Run one participant process (agent or supervisor) of a cell started elsewhere."""
    from cells.node import run_agent, run_supervisor

    keys = Path(args.keys) if args.keys else None
    if args.command == "agent":
        return run_agent(args.cell, args.robot, args.endpoint, keys=keys)
    return run_supervisor(
        args.cell, args.endpoint, seed=args.seed, out=args.out, restore=args.restore, keys=keys
    )


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    """Run only the sim server (world and clock); participants connect to it."""
    import zmq

    from bus.endpoints import Endpoints, check_tcp_keys, ensure_ipc_dir
    from cells.schema import load_cell
    from sim import SimServer

    cell = load_cell(args.cell)
    check_tcp_keys(args.endpoint, args.keys, args.insecure)
    Endpoints.from_base(args.endpoint)  # a bad endpoint is one clear error
    ensure_ipc_dir(args.endpoint)
    ctx: zmq.Context[Any] = zmq.Context()
    server = SimServer(
        cell,
        Endpoints.from_base(args.endpoint),
        seed=args.seed,
        duration_s=args.duration,
        ctx=ctx,
        join_timeout_s=args.join_timeout,
        keys_dir=Path(args.keys) if args.keys else None,
    )
    try:
        server.setup()
        console.print(f"sim server for {cell.name} on {args.endpoint}; waiting for participants")
        return server.run()
    finally:
        server.shutdown()
        ctx.term()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = argparse.ArgumentParser(
        prog="lightsout", description="Run and steer lights-out robotic cells."
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a cell headless and print its KPIs")
    run.add_argument("cell", help="cell file, e.g. cells/assembly.toml")
    run.add_argument("--duration", type=positive, default=600.0, help="sim seconds (default 600)")
    run.add_argument("--seed", type=whole(0), default=1, help="random seed (default 1)")
    run.add_argument(
        "--processes", action="store_true", help="one OS process per agent and the supervisor"
    )
    run.add_argument("--endpoint", help="base endpoint (inproc://NAME, ipc://DIR, tcp://HOST:PORT)")
    add_realtime(run)
    run.add_argument(
        "--record",
        nargs="?",
        const="",
        metavar="BAG",
        help="record a ROS 2 bag of the run (default RUNS_DIR/NAME/bag)",
    )
    run.add_argument("--console", action="store_true", help="watch the run in the live console")
    run.add_argument(
        "--keys", metavar="DIR", help="CURVE keys and roles guarding control and telemetry"
    )
    run.add_argument("--insecure", action="store_true", help="allow a tcp endpoint without --keys")
    run.add_argument(
        "--faults", metavar="SCENARIO", help="inject the faults of a scenario file (docs/faults.md)"
    )
    run.add_argument(
        "--chaos",
        type=within(1e-6, MAX_CHAOS_RATE),
        metavar="RATE",
        help="inject random faults of every kind, RATE per sim second (docs/faults.md): its "
        "crashes and freezes kill processes with --processes, members in this process "
        "without; the run ends with its audit",
    )
    run.add_argument(
        "--wear",
        action="store_true",
        help="with --chaos: the degrading kinds too (joint drift, gripper, belt wear, creep)",
    )
    run.add_argument(
        "--no-maintain",
        action="store_true",
        help="diagnose wear but do not act on it: no robot is taken out for maintenance "
        "(the cell file's [cell] maintain = false; docs/autonomy.md)",
    )
    run.add_argument(
        "--no-optimize",
        action="store_true",
        help="learn operation times but act on nothing learned: no allocation by them, no "
        "speed tuning (the cell file's [optimize] enabled = false; docs/autonomy.md)",
    )
    run.add_argument(
        "--policy",
        choices=sorted(POLICIES),
        help="how the supervisor allocates work (default: the cell file's, else contract_net)",
    )
    run.add_argument(
        "--sync",
        choices=SYNCS,
        help="event: the clock ticks a participant only when it must act (the default); "
        "tick: everyone every control tick, the fixed-rate reference (docs/protocol.md)",
    )
    run.add_argument(
        "--fidelity",
        choices=("physics", "events"),
        default="physics",
        help="physics: the PyBullet world (the default); events: the discrete-event model run "
        "from the cell's calibration (CELL.calib.json, made by lightsout calibrate)",
    )
    run.add_argument(
        "--calibration",
        metavar="FILE",
        help="with --fidelity events: time the cell from another cell's calibration whose steps "
        "are named the same (a generated cell of islands, python -m cells.islands)",
    )
    run.add_argument(
        "--guard",
        type=positive,
        default=10.0,
        metavar="S",
        help="wall seconds a participant may stay silent before it is dropped (and, with "
        "--processes, killed and restarted; default 10)",
    )
    run.add_argument("--name", help="run name (default CELL-seedN); results go to RUNS_DIR/NAME")
    run.add_argument("--runs-dir", default="runs", help="where runs are written (default runs/)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    aud = sub.add_parser("audit", help="check a finished run: ledger, parts, operations, recovery")
    aud.add_argument("run", help="a run directory, e.g. runs/assembly-seed1")
    aud.add_argument(
        "--window",
        type=positive,
        default=300.0,
        metavar="S",
        help="throughput must be above zero in every window of S sim seconds (default 300)",
    )
    aud.set_defaults(func=cmd_audit)

    dec = sub.add_parser(
        "decisions",
        help="list a run's diagnoses, maintenances and self-optimization's changes with their "
        "evidence",
    )
    dec.add_argument("run", help="a run directory, e.g. runs/assembly-seed1")
    dec.set_defaults(func=cmd_decisions)

    res = sub.add_parser("resume", help="carry a killed run on from its journal to its duration")
    res.add_argument("run", help="the run directory, e.g. runs/assembly-seed1")
    mode = res.add_mutually_exclusive_group()
    mode.add_argument("--processes", action="store_true", help="resume with one process each")
    mode.add_argument("--one-process", action="store_true", help="resume in one process")
    res.add_argument("--audit", action="store_true", help="audit the whole run when it ends")
    add_realtime(res)
    res.set_defaults(func=cmd_resume)

    val = sub.add_parser("validate", help="check a cell file")
    val.add_argument("cell")
    val.set_defaults(func=cmd_validate)

    simp = sub.add_parser("sim", help="run only the sim server (world and clock)")
    simp.add_argument("cell")
    simp.add_argument("--endpoint", required=True)
    simp.add_argument("--duration", type=positive, default=600.0)
    simp.add_argument("--seed", type=whole(0), default=1)
    simp.add_argument("--join-timeout", type=positive, default=300.0)
    simp.add_argument(
        "--keys", metavar="DIR", help="CURVE keys: roles for clients, participant keys per cell"
    )
    simp.add_argument("--insecure", action="store_true", help="allow a tcp endpoint without --keys")
    simp.set_defaults(func=cmd_sim)

    agent = sub.add_parser("agent", help="run one robot agent process")
    agent.add_argument("cell")
    agent.add_argument("--robot", required=True)
    agent.add_argument("--endpoint", required=True)
    agent.add_argument("--keys", metavar="DIR", help="sign with the robot's participant key")
    agent.set_defaults(func=cmd_node)

    supv = sub.add_parser("supervisor", help="run the supervisor process")
    supv.add_argument("cell")
    supv.add_argument("--endpoint", required=True)
    supv.add_argument("--seed", type=whole(0), default=1)
    supv.add_argument("--out", type=Path, help="directory for kpis.json and events.jsonl")
    supv.add_argument("--keys", metavar="DIR", help="sign with the supervisor's participant key")
    supv.add_argument(
        "--restore", action="store_true", help="carry on from the journal in --out (a restart)"
    )
    supv.set_defaults(func=cmd_node)

    add_commands(sub)  # status, robot, cell, fault, pace, order, snapshot, watch, console, keys
    add_report_commands(sub)  # report, record, replay
    add_study_commands(sub)  # sweep, calibrate
    add_factory_commands(sub)  # factory check, trace, recall
    return ap


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lightsout`` command."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    # a service manager's SIGTERM (or a closed terminal's SIGHUP) unwinds like an error, so a
    # run still closes its sockets and removes its ipc files
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminated)
    if getattr(args, "keys", None):
        # with keys, SIGHUP re-reads roles.toml and the participant keys instead (revocation)
        from bus.trust import reload_all

        signal.signal(signal.SIGHUP, lambda signum, frame: reload_all())
    if args.command in WRITERS:
        # runs, journals, logs and bags are the owner's alone (they name keys, parts, faults)
        os.umask(0o077)
    try:
        code: int = args.func(args, console)
        return code
    except LightsoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
