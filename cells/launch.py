"""The launcher: wires a cell's world, supervisor and robot agents, and runs it.

Two modes, same code (DESIGN principle 2):

* one process: the sim server on the calling thread, the supervisor and each
  agent on a thread of their own, over ``inproc://``;
* ``processes=True``: the sim server here, the supervisor and each agent as a
  separate OS process (``python -m cells.node ...``) over ``ipc://`` (or any
  ``endpoint`` given), each its own pybullet client and zmq context.

Either way the run ends with ``kpis.json``, ``events.jsonl`` and ``world.jsonl``
in ``out_dir``, and starts with ``run.json`` (``cells.lifecycle``): on SIGTERM
and SIGINT too, which end the run as its duration would. ``opts.resume``
carries on a run from its journal (``cells.resume``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.cellspec import CellSpec
from bus.endpoints import (
    Endpoints,
    check_tcp_keys,
    ensure_ipc_dir,
    private_ipc_base,
    remove_ipc,
)
from bus.errors import ConfigError
from bus.participant import LocalMember, Participant, run_participant
from bus.trust import LiveKeys, ensure_participants, safe_name
from cells.children import Children, inject, node_keys, signed
from cells.commission import Commissioner
from cells.faults import FREEZE_KINDS, PROCESS_KINDS, ScheduledFault
from cells.lifecycle import RunMeta, Signals, WorldRecords, write_meta
from cells.residents import Residents
from cells.resume import write_off
from robots import RobotAgent
from sim import SimServer, World
from sim.feeders import FeedGate
from sim.rebuild import KeptUnit
from supervisor import Supervisor

log = logging.getLogger(__name__)

NS = 1_000_000_000
_RUNS = itertools.count(1)

Progress = Callable[[int, int], None]
Watch = Callable[[World], None]
"""Called with the world after every control tick, on the clock's thread (tests, recorders)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run a cell."""

    seed: int = 1
    duration_s: float = 600.0
    processes: bool = False
    endpoint: str | None = None
    guard_s: float = 10.0
    join_timeout_s: float = 60.0
    realtime: float = 0.0
    """Pace sim time to the wall clock times this factor; 0 runs as fast as possible."""
    faults: tuple[ScheduledFault, ...] = ()
    """Faults to inject at their sim times (a scenario file)."""
    subscribers: int = 0
    """Telemetry subscribers (recorders) to wait for before the first tick."""
    keys_dir: Path | None = None
    """CURVE keys and roles (``lightsout keys create``) guarding control and telemetry."""
    insecure: bool = False
    """Allow a ``tcp://`` endpoint without keys (benchmarks, trusted networks)."""
    resume: Resume | None = None
    """Carry on the run in ``out_dir`` from its journal (``cells.resume``)."""
    feed_gate: FeedGate | None = None
    """Where the feeders' material comes from (a factory's store, ``factory.coordinator``);
    none: feeders never run out."""
    horizon: Callable[[], int] | None = None
    """The next sim time someone outside must see a tick at (a factory's next step): the
    events world lets no quiet tick pass over it."""
    on_event: Callable[[str], None] | None = None
    """Called with every line the supervisor writes to its event log, as the world hears it
    (the same lines, in the same order, one process or many), on the world's thread: how a
    factory's coordinator sees a line's units finished and scrapped while it runs."""
    on_kpis: Callable[[dict[str, Any]], None] | None = None
    """Called with every KPI snapshot the supervisor sends (as ``kpis.json`` reads), likewise:
    a factory's live view of its lines."""
    threads: bool = False
    """One process over ``inproc``: each participant on a thread of its own with its socket
    to the clock, instead of stepped on the clock's thread (``ClockServer.attach``). The
    same event log, slower; the reference the one-thread loop is tested against."""


@dataclasses.dataclass(frozen=True, slots=True)
class Resume:
    """Where a resumed run carries on: the tick after its journal's last, part ids after its
    ledger's (``cells.resume.resume_point``)."""

    tick: int
    last_ids: dict[str, int]
    units: tuple[KeptUnit, ...] = ()
    """The units kept in their fixtures (the world rebuilds them)."""


def run_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name-2``, ``-3``... so an earlier run is never overwritten.

    ``name`` is a safe name (``bus.security.SAFE_NAME``), so the run is always a
    directory right under ``root``, never beside or above it.
    """
    safe_name(name, "a run name", "--name")
    path = root / name
    n = 2
    while path.exists():
        path = root / f"{name}-{n}"
        n += 1
    return path


def run_cell(
    cell: CellSpec,
    out_dir: Path,
    opts: RunOptions,
    *,
    progress: Progress | None = None,
    watch: Watch | None = None,
) -> dict[str, Any]:
    """Run ``cell`` for ``opts.duration_s`` of sim time; return the KPIs."""
    check_tcp_keys(opts.endpoint, opts.keys_dir, opts.insecure)
    needs = sorted({f.kind.value for f in opts.faults if f.kind in (*PROCESS_KINDS, *FREEZE_KINDS)})
    if needs and not (opts.processes or stepped_here(opts)):
        raise ConfigError(
            "--faults",
            needs[0],
            "kills a process: run the cell with --processes, or in one process over inproc",
        )
    made = False
    if opts.endpoint:
        Endpoints.from_base(opts.endpoint)  # a bad endpoint is one clear error
        made = ensure_ipc_dir(opts.endpoint)
    if signed(opts):
        assert opts.keys_dir is not None
        # each participant signs with a key of its own, made here if the keys lack it
        names = ["supervisor", *(r.name for r in cell.robots)]
        ensure_participants(opts.keys_dir, cell.name, names)
    out_dir.mkdir(parents=True, exist_ok=True)
    if opts.resume is None:
        meta = RunMeta(cell.source, opts.seed, opts.duration_s, opts.processes, opts.guard_s)
        write_meta(out_dir, cell, meta, opts.faults)
    signals = Signals()
    try:
        with signals.installed():
            if opts.processes:
                return _run_processes(cell, out_dir, opts, progress, watch, signals)
            return _run_threads(cell, out_dir, opts, progress, watch, signals)
    finally:
        # however the run ends (done, shut down, interrupted, failed), its sockets go
        if opts.endpoint:
            remove_ipc(opts.endpoint, remove_dir=made)


def stepped_here(opts: RunOptions) -> bool:
    """Whether a run's members are stepped on the clock's thread (one process over inproc,
    ``ClockServer.attach``): then its crashes and freezes are ``cells.residents``'."""
    base = opts.endpoint or "inproc://"
    return not opts.processes and base.startswith("inproc://") and not opts.threads


def _server(
    cell: CellSpec,
    endpoints: Endpoints,
    ctx: zmq.Context[Any],
    opts: RunOptions,
    progress: Progress | None,
    watch: Watch | None,
    hooks: list[Callable[[SimServer], None]] | None = None,
    *,
    records: WorldRecords,
    signals: Signals,
) -> SimServer:
    """The sim server, calling ``progress``, ``watch`` and ``hooks`` after each tick, writing
    the world's records, and ending the run when a signal asks."""
    server: SimServer
    pending = [f for f in opts.faults if f.kind not in FREEZE_KINDS]  # Children's to note

    def on_tick(t_ns: int, total_ns: int) -> None:
        records.write(server.world.take_records())
        server.stop_reason = signals.reason
        while pending and pending[0].at_s * 1e9 <= t_ns:
            inject(server, pending.pop(0))
        for hook in hooks or ():
            hook(server)
        if progress is not None:
            progress(t_ns, total_ns)
        if watch is not None:
            watch(server.world)

    server = SimServer(
        cell,
        endpoints,
        seed=opts.seed,
        duration_s=opts.duration_s,
        ctx=ctx,
        guard_s=opts.guard_s,
        join_timeout_s=opts.join_timeout_s,
        on_tick=on_tick,
        subscribers=opts.subscribers,
        keys_dir=opts.keys_dir,
    )
    server.horizons.append(lambda: round(pending[0].at_s * 1e9) if pending else 1 << 62)
    if opts.feed_gate is not None:
        server.world.gate_feeders(opts.feed_gate)
    if opts.horizon is not None:
        server.horizons.append(opts.horizon)
    if opts.on_event is not None:
        server.listeners.append(opts.on_event)
    if opts.on_kpis is not None:
        server.kpi_listeners.append(opts.on_kpis)
    if opts.realtime > 0:
        server.pace_realtime = opts.realtime
    if opts.resume is not None:
        server.carry_on(opts.resume.tick, opts.resume.last_ids, opts.resume.units)
    return server


def _run_threads(
    cell: CellSpec,
    out_dir: Path,
    opts: RunOptions,
    progress: Progress | None,
    watch: Watch | None,
    signals: Signals,
) -> dict[str, Any]:
    base = opts.endpoint or f"inproc://lightsout-{os.getpid()}-{next(_RUNS)}"
    endpoints = Endpoints.from_base(base)
    ctx: zmq.Context[Any] = zmq.Context()
    resuming = opts.resume is not None
    supervisor = Supervisor(cell, seed=opts.seed, out_dir=out_dir, restore=resuming)
    if resuming:
        write_off(supervisor)
    agents = [RobotAgent(cell, r.name) for r in cell.robots]
    errors: list[BaseException] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    # over inproc with nobody outside the process, the participants are stepped on the
    # clock's thread: a round trip to a thread each tick cost more than their own work
    local = endpoints.clock.startswith("inproc://") and not signed(opts) and not opts.threads
    members: list[LocalMember] = []
    mounts: dict[str, str] = {}
    current = [supervisor]

    def rebuild(name: str) -> Participant:
        """A crashed member's replacement (``cells.residents``): the supervisor from its
        journal, an agent afresh (a built robot's on its mount)."""
        if name == "supervisor":
            current[0] = Supervisor(cell, seed=opts.seed, out_dir=out_dir, restore=True)
            return current[0]
        for old in [a for a in agents if a.name == name]:
            agents.remove(old)  # freed by the residents
        spec = cell.built_robot(name, mounts[name]) if name in mounts else None
        agent = RobotAgent(cell, name, spec=spec)
        agent.setup()
        agents.append(agent)
        return agent

    def attach(part: Participant, *, hub: bool) -> None:
        member = LocalMember(part, ctx, endpoints, hub=hub, guard_s=opts.guard_s)
        member.setup()
        members.append(member)
        server.require_clock().attach(member)

    def start_built(name: str, mount: str) -> None:
        """A robot built in the cell passed its check: its agent on a thread of its own (or
        stepped on the clock's)."""
        agent = RobotAgent(cell, name, spec=cell.built_robot(name, mount))
        agent.setup()
        agents.append(agent)
        mounts[name] = mount
        if local:
            attach(agent, hub=False)
            return
        threads.append(thread(agent, hub=False))
        threads[-1].start()

    commissioner = Commissioner(cell, start_built)
    records = WorldRecords(out_dir / "world.jsonl", append=resuming)
    residents = Residents(
        opts.faults if local else (),
        tick_ns=cell.tick_ns,
        guard_s=opts.guard_s,
        ctx=ctx,
        endpoints=endpoints,
        build=rebuild,
        members=members,
    )
    server = _server(
        cell,
        endpoints,
        ctx,
        opts,
        progress,
        watch,
        # the residents' per-tick check only where the scenario crashes or freezes a member
        [commissioner, residents.check] if residents.pending() else [commissioner],
        records=records,
        signals=signals,
    )
    if residents.pending():
        server.horizons.append(residents.horizon)

    def guarded(fn: Callable[[], object]) -> Callable[[], None]:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # a thread's crash must reach the caller
                log.exception("participant thread failed")
                errors.append(exc)

        return body

    live = LiveKeys(opts.keys_dir, cell.name) if signed(opts) and opts.keys_dir else None

    def thread(part: Participant, *, hub: bool) -> threading.Thread:
        run = functools.partial(
            run_participant,
            part,
            ctx,
            endpoints,
            hub=hub,
            guard_s=opts.guard_s,
            stop=stop,
            node=node_keys(opts, cell, part.name),
            live=live if hub else None,
        )
        return threading.Thread(target=guarded(run), name=part.name, daemon=True)

    try:
        server.setup()
        for agent in agents:
            agent.setup()
        if local:
            attach(supervisor, hub=True)  # the hub binds before the spokes connect
            for agent in agents:
                attach(agent, hub=False)
        else:
            threads.append(thread(supervisor, hub=True))
            threads += [thread(agent, hub=False) for agent in agents]
        for t in threads:
            t.start()
        server.run()
        stats = sim_stats(server, signals)
        if residents.restarts or residents.frozen:
            stats["restarts"] = dict(sorted(residents.restarts.items()))
            stats["killed"] = [[t, name] for t, name in residents.killed]
            stats["frozen"] = [[t, name, s] for t, name, s in residents.frozen]
        errors += server.require_clock().local_errors
    except BaseException:
        stop.set()  # interrupted or failed: the participants leave at once, not after a guard
        raise
    finally:
        for t in threads:
            t.join(timeout=30)
        stop.set()
        for member in members:
            member.close()
        records.close()
        commissioner.close()
        server.shutdown()
        for agent in agents:
            agent.shutdown()
        ctx.term()
    if errors:
        raise errors[0]
    return _with_sim_stats(out_dir, current[0].result, stats)


def _run_processes(
    cell: CellSpec,
    out_dir: Path,
    opts: RunOptions,
    progress: Progress | None,
    watch: Watch | None,
    signals: Signals,
) -> dict[str, Any]:
    base = opts.endpoint or private_ipc_base()
    endpoints = Endpoints.from_base(base)
    ctx: zmq.Context[Any] = zmq.Context()
    children = Children(cell, base, out_dir, opts)
    commissioner = Commissioner(cell, children.add_built)
    records = WorldRecords(out_dir / "world.jsonl", append=opts.resume is not None)
    hooks: list[Callable[[SimServer], None]] = [commissioner, children.check]
    server = _server(
        cell, endpoints, ctx, opts, progress, watch, hooks, records=records, signals=signals
    )
    server.gone = children.gone
    server.horizons.append(children.horizon)
    end_ns = 0
    try:
        server.setup()
        children.start_all()
        server.run()
        end_ns = server.world.t_ns
        stats = sim_stats(server, signals)
        stats["restarts"] = dict(sorted(children.restarts.items()))
        stats["killed"] = [[t, name] for t, name in children.killed]
        stats["frozen"] = [[t, name, s] for t, name, s in children.frozen]
        children.finish(server.clock.pending() if server.clock is not None else [])
    finally:
        children.kill_all()
        records.close()
        commissioner.close()
        server.shutdown()
        ctx.term()
        if opts.endpoint is None:
            remove_ipc(base, remove_dir=True)
    kpis = out_dir / "kpis.json"
    if not kpis.exists():
        # the supervisor was down when the run ended: its journal still has everything
        log.warning("the supervisor wrote no kpis.json; writing it from its journal")
        final = Supervisor(cell, seed=opts.seed, out_dir=out_dir, restore=True)
        final.finish(end_ns, stats["exit_reason"])
    result: dict[str, Any] = json.loads(kpis.read_text(encoding="utf-8"))
    return _with_sim_stats(out_dir, result, stats)


def sim_stats(server: SimServer, signals: Signals) -> dict[str, Any]:
    """What the sim side counted: ticks, refused input, dropped participants, restart waits."""
    clock = server.clock
    waits: dict[str, list[float]] = {}
    for name, wait_s in clock.waits if clock is not None else ():
        waits.setdefault(name, []).append(wait_s)
    return {
        "exit_reason": signals.reason or server.reason,
        "restart_wait_s": dict(sorted(waits.items())),
        "ticks": server.ticks,
        "sync": server.cell.sync,
        "fidelity": server.cell.fidelity,
        # ticks at which anyone was ticked, Tick/Done round trips, cell-bus messages
        "opened_ticks": server.opened_ticks,
        # events world: ticks nobody was due at and nothing happened in, let go by unseen
        "quiet_ticks": server.quiet_ticks,
        "round_trips": clock.opened if clock is not None else 0,
        "bus_messages": clock.messages if clock is not None else 0,
        "clock_malformed": clock.malformed if clock is not None else 0,
        "malformed_acts": server.malformed_acts,
        "dropped": list(server.dropped),
        "world": dict(sorted(server.world.counters.items())),
        # the control socket's refused and malformed requests, telemetry queue overflows
        "control": server.host.counts() if server.host is not None else {},
        # every socket's refusals: names not bound to their key, floods, handshakes turned away
        "security": server.host.security() if server.host is not None else {},
    }


def _with_sim_stats(out_dir: Path, kpis: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """Add the sim side's counters to ``kpis.json`` (the supervisor cannot see them)."""
    kpis = {**kpis, "sim": stats}
    text = json.dumps(kpis, indent=2, sort_keys=True)
    (out_dir / "kpis.json").write_text(text + "\n", encoding="utf-8")
    return kpis
