"""``lightsout factory run FILE --hosts``: the coordinator and every line as processes of their
own, one line per "host" (its own loopback address), over tcp with CURVE keys.

This launcher stands in for the machines of a real plant: it starts the
coordinator (``lightsout factory serve``, on 127.0.0.1) and, for each line, a
line host (``lightsout factory line``) whose cell binds its own sockets on
127.0.0.(2 + i). Each line host keeps its full cell run in ``hosts/NAME``;
the coordinator's run directory gets only what the lines send it. If the
coordinator dies before the results are written it is started again with
``--resume`` from its journal (``factory.hub``), and the lines, waiting on
their reports, carry on; ``kill_coordinator_at`` kills it once on purpose
(SIGKILL, when its journal reaches that sim time) to show it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bus.endpoints import free_port
from bus.errors import LightsoutError
from bus.trust import ensure_participants
from factory.hub import journal_t_s
from factory.run import OrderLine
from factory.schema import FactorySpec
from factory.wire import ensure_line_keys

RESTARTS = 5
"""Times a dead coordinator is started again before the factory is given up."""


@dataclasses.dataclass(slots=True)
class HostsRun:
    """What the launcher saw: every process's exit code, the coordinator's restarts."""

    kpis: dict[str, Any]
    restarts: int
    killed_at_s: float | None
    lines: dict[str, int]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clients.cli", *args]


def run_hosts(
    spec: FactorySpec,
    out: Path,
    *,
    orders: list[OrderLine],
    duration_s: float,
    seed: int,
    keys_dir: Path,
    processes: bool = True,
    faults: dict[str, str] | None = None,
    supply: str | None = None,
    chaos: float = 0.0,
    wear: bool = False,
    guard_s: float = 10.0,
    kill_coordinator_at: float | None = None,
    endpoint: str | None = None,
    log: Any = None,
) -> HostsRun:
    """Run ``spec`` as a coordinator process and one line host per line; return the KPIs the
    coordinator wrote and what happened to the processes. ``faults``: a scenario file per
    line name; ``supply``: the supply faults file (the coordinator's); ``endpoint``: the
    coordinator's control socket (``ipc://DIR``, or ``tcp://`` guarded by ``keys_dir``'s
    client roles: orders and status while it runs; bound again by a restarted
    coordinator)."""
    ensure_line_keys(keys_dir, spec.name, [ln.name for ln in spec.lines])
    if processes:  # every line's cell's own keys, made here: not by two line hosts at once
        for ln in spec.lines:
            names = ["supervisor", *(r.name for r in ln.cell.robots)]
            ensure_participants(keys_dir, ln.cell.name, names)
    out.mkdir(parents=True, exist_ok=False)
    logs = out / "logs"
    logs.mkdir()
    bind = f"tcp://127.0.0.1:{free_port('127.0.0.1')}"
    common = ["--duration", repr(duration_s), "--seed", str(seed), "--keys", str(keys_dir)]
    serve = _cli("factory", "serve", spec.source, "--bind", bind, "--out", str(out), *common)
    for o in orders:
        serve += ["--order", order_text(o)]
    if supply:
        serve += ["--supply", supply]
    if endpoint:
        serve += ["--endpoint", endpoint]
    lines = {}
    for i, ln in enumerate(spec.lines):
        host = f"127.0.0.{2 + i}"
        cmd = _cli("factory", "line", spec.source, "--line", ln.name, "--coordinator", bind)
        cmd += ["--out", str(out / "hosts" / ln.name), *common, "--guard", repr(guard_s)]
        if processes:
            cmd += ["--processes", "--endpoint", f"tcp://{host}:{free_port(host, 4)}"]
        if faults and ln.name in faults:
            cmd += ["--faults", faults[ln.name]]
        if chaos:
            cmd += ["--chaos", repr(chaos)] + (["--wear"] if wear else [])
        lines[ln.name] = cmd
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "ab") as f:  # the child holds its own copy
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)

    (out / "hosts").mkdir()
    coord = start(serve, "coordinator")
    hosts = {name: start(cmd, f"line-{name}") for name, cmd in lines.items()}
    restarts, killed_at = 0, None
    last_shown = -1.0
    try:
        while True:
            rc = coord.poll()
            dead = [n for n, p in hosts.items() if p.poll() not in (None, 0)]
            if dead:
                raise LightsoutError(
                    f"line {dead[0]} exited {hosts[dead[0]].returncode}: "
                    f"{last_line(logs / f'line-{dead[0]}.log')}"
                )
            t = journal_t_s(out)
            if log is not None and t >= last_shown + 60:
                last_shown = t
                log(f"factory at {max(t, 0):g} s of {duration_s:g} s")
            if rc is None:
                if (
                    kill_coordinator_at is not None
                    and killed_at is None
                    and t >= kill_coordinator_at
                ):
                    coord.send_signal(signal.SIGKILL)
                    coord.wait()
                    killed_at = t
                    if log is not None:
                        log(f"coordinator killed at {t:g} s of sim time: restarting it")
                    coord = start([*serve, "--resume"], "coordinator")
                    restarts += 1
                time.sleep(0.2)
                continue
            if rc == 0:
                break
            dead = [n for n, p in hosts.items() if p.poll() not in (None, 0)]
            if dead or restarts >= RESTARTS:
                why = f"line {dead[0]} exited {hosts[dead[0]].returncode}" if dead else ""
                raise LightsoutError(
                    f"the coordinator exited {rc} ({why or f'{restarts} restarts'}); see {logs}"
                )
            if log is not None:
                log(f"coordinator exited {rc}: restarting it from its journal")
            coord = start([*serve, "--resume"], "coordinator")
            restarts += 1
        codes = {}
        for name, p in hosts.items():
            try:
                codes[name] = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
    finally:
        for p in [coord, *hosts.values()]:
            if p.poll() is None:
                p.kill()
                p.wait()
    bad = {n: c for n, c in codes.items() if c != 0}
    if bad:
        name = sorted(bad)[0]
        raise LightsoutError(
            f"line {name} exited {bad[name]}: {last_line(logs / f'line-{name}.log')}"
        )
    kpis = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    return HostsRun(kpis, restarts, killed_at, codes)


def last_line(path: Path) -> str:
    """The last line a process wrote to its log (its error), and where the log is."""
    try:
        rows = [r for r in path.read_text(encoding="utf-8", errors="replace").splitlines() if r]
    except OSError:
        rows = []
    return f"{rows[-1][:300] if rows else 'nothing logged'} (log: {path})"


def order_text(o: OrderLine) -> str:
    """An order as ``--order`` reads it again (``OrderLine.parse``)."""
    text = f"{o.customer}:{o.product}:{o.quantity}:{o.due_s!r}" + (":rush" if o.rush else "")
    return text + (f"@{o.at_s!r}" if o.at_s else "")
