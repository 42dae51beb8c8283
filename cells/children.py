"""The participant processes of a ``--processes`` run: started, watched, replaced.

``Children`` starts the supervisor and every agent as ``python -m cells.node``
processes that die with the launcher, and every control tick kills and
freezes what the scenario says and restarts what died or was dropped
(``cells.launch`` runs the cell around it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bus.cellspec import CellSpec
from bus.errors import LightsoutError
from bus.trust import NodeKeys, ensure_participants
from cells.faults import FREEZE_KINDS, PROCESS_KINDS, ScheduledFault
from cells.lifecycle import die_with_parent
from sim import SimServer
from sim.server import SUPERVISOR

if TYPE_CHECKING:
    from cells.launch import RunOptions

log = logging.getLogger(__name__)

RESTART_S = 5.0
"""Sim seconds from a process's death to its restarted self joining the clock.

Fixed in sim time, so the same scenario gives the same event log however long
the restart takes on the wall; longer than the 3 heartbeat intervals in which
the supervisor notices a robot is gone. The clock keeps running meanwhile
(the dead process is dropped as soon as it is seen dead, not after the
guard); it waits only if the restarted process is still starting up when its
tick comes, and that wait is measured (``kpis.json`` ``sim.restart_wait_s``).
"""


def inject(server: SimServer, fault: ScheduledFault) -> None:
    """Apply a physical or robot fault through the cell host; log process faults there too.

    (``Children`` kills the processes; the host only has the supervisor log it.)
    """
    host = server.host
    if host is None:
        return
    problem = host.inject(
        fault.kind.value,
        fault.target,
        fault.duration_s,
        factor=fault.amount,
        permanent=fault.permanent,
        hidden=fault.hidden,
    )
    if problem:
        log.warning("fault %s on %s not injected: %s", fault.kind.value, fault.target, problem)


def signed(opts: RunOptions) -> bool:
    """Whether the clock and the cell bus run CURVE with participant keys: keys, off inproc.

    With ``--processes`` and no endpoint the cell runs over a private ``ipc://`` base
    (``cells.launch``), not inproc: its sim server's clock is keyed, so its processes
    must sign too, or none of them could join.
    """
    if opts.keys_dir is None:
        return False
    base = opts.endpoint or ("ipc://" if opts.processes else "inproc://")
    return not base.startswith("inproc:")


def node_keys(opts: RunOptions, cell: CellSpec, name: str) -> NodeKeys | None:
    """``name``'s participant key pair (made now if the keys lack it), when the run is signed."""
    if not signed(opts) or opts.keys_dir is None:
        return None
    ensure_participants(opts.keys_dir, cell.name, [name])
    return NodeKeys.load(opts.keys_dir, cell.name, name)


class Children:
    """The participant processes: started, watched every tick, restarted when they die.

    A process that dies is taken out of the barrier at once (no wall-clock
    wait: the clock asks ``gone`` while it waits) and started again: an agent
    comes back through Stopped, Resetting and Idle; the supervisor comes back
    from its journal (``--restore``). A process the clock's guard dropped
    (frozen: SIGSTOP, a hung call) is killed and restarted the same way, so a
    freeze is a crash, and a frozen supervisor is replaced, never lost. Every
    child dies with the launcher (``die_with_parent``, and ``--parent``).
    """

    def __init__(self, cell: CellSpec, base: str, out_dir: Path, opts: RunOptions) -> None:
        self.cell, self.base = cell, base
        self.keys = {"keys": str(opts.keys_dir)} if signed(opts) else {}
        self.opts = opts
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}
        self.killed: list[tuple[int, str]] = []
        self.cmds = {
            "supervisor": node_command(
                "supervisor",
                cell,
                base,
                seed=str(opts.seed),
                out=str(out_dir),
                policy=cell.policy,
                maintain="on" if cell.maintain else "off",
                **self.keys,
            )
        }
        timed = {"calibration": cell.calibration.source} if cell.calibration else {}
        for r in cell.robots:
            self.cmds[r.name] = node_command(
                "agent", cell, base, robot=r.name, **self.keys, **timed
            )
        self.kills = sorted(
            (round(f.at_s * 1e9), f.target) for f in opts.faults if f.kind in PROCESS_KINDS
        )
        self.freezes = sorted(
            (f for f in opts.faults if f.kind in FREEZE_KINDS), key=lambda f: (f.at_s, f.target)
        )
        self.thaw: list[tuple[float, str]] = []
        """Frozen children and the wall time (monotonic) they get SIGCONT."""
        self.noted: dict[str, ScheduledFault] = {}
        """A frozen supervisor's freeze, logged once it is dropped or thawed: sent while it is
        frozen, the note would be lost with it."""
        self.frozen: list[tuple[int, str, float]] = []
        self.stopping = False
        self.restart_ticks = round(RESTART_S * 1e9 / cell.tick_ns)
        self.resuming = opts.resume is not None

    def add_built(self, name: str, mount: str) -> None:
        """A robot built in the cell passed its check: start its agent (and restart it as any)."""
        node_keys(self.opts, self.cell, name)  # its key pair, before it starts
        self.cmds[name] = node_command(
            "agent", self.cell, self.base, robot=name, mount=mount, **self.keys
        )
        self.start(name)

    def start(self, name: str, *, restore: bool = False, resume: bool = False) -> None:
        cmd = self.cmds[name] + ["--parent", str(os.getpid())]
        cmd += ["--restore"] if restore or resume else []
        cmd += ["--resume"] if resume else []
        with (self.logs / f"{name}.log").open("ab") as fh:
            self.procs[name] = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )

    def start_all(self) -> None:
        for name in self.cmds:
            self.start(name, resume=self.resuming and name == "supervisor")

    def gone(self) -> list[str]:
        """Children that have exited (the clock drops them without waiting out its guard)."""
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def horizon(self) -> int:
        """The sim time of the next kill or freeze the scenario plans (``SimServer.horizons``:
        the events world skips no tick past it)."""
        times = [t for t, _ in self.kills[:1]] + [round(f.at_s * 1e9) for f in self.freezes[:1]]
        return min(times, default=1 << 62)

    def check(self, server: SimServer) -> None:
        """Per tick: kill and freeze what the scenario says, restart what died or froze."""
        now = server.world.t_ns
        while self.kills and self.kills[0][0] <= now:
            _, name = self.kills.pop(0)
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                self.killed.append((now, name))
                log.warning("killed %s (SIGKILL) at %.3f s", name, now / 1e9)
        self._freeze(server, now)
        silent = server.clock.silent if server.clock is not None else []
        dropped, silent[:] = list(silent), []
        for name in dropped:
            if name in self.noted:
                inject(server, self.noted.pop(name))
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None and not self.stopping:
                # dropped by the guard but alive: frozen or hung; a fresh one resyncs
                log.warning("%s stopped answering at %.3f s; killing it", name, now / 1e9)
                proc.kill()
                proc.wait()
        for name, proc in list(self.procs.items()):
            if self.stopping or proc.poll() is None:
                continue
            log.warning(
                "%s exited with %s at %.3f s; restarting it", name, proc.returncode, now / 1e9
            )
            if server.clock is not None:
                server.clock.drop(name)
                server.clock.rejoin_at(name, server.ticks + self.restart_ticks)
            self.restarts[name] = self.restarts.get(name, 0) + 1
            self.start(name, restore=name == "supervisor")

    def _freeze(self, server: SimServer, now: int) -> None:
        """SIGSTOP the scenario's ``process_freeze`` targets; SIGCONT them when it is over.

        A freeze lasts wall seconds (a stopped process stops the wall, not sim time):
        shorter than the clock's guard it only stands the cell still; longer, the guard
        drops the process and ``check`` replaces it.
        """
        while self.freezes and self.freezes[0].at_s * 1e9 <= now:
            fault = self.freezes.pop(0)
            name, wall_s = fault.target, fault.duration_s
            proc = self.procs.get(name)
            starting = server.clock is not None and name in server.clock.pending()
            if proc is not None and proc.poll() is None and starting:
                # restarted and not back in the barrier yet: frozen, it would hold the clock
                # at its tick until given up, so it is replaced now, at this tick
                proc.kill()
                proc.wait()
                self.frozen.append((now, name, wall_s))
                log.warning("froze %s at %.3f s while it started up: replacing it", name, now / 1e9)
            elif proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGSTOP)
                if server.clock is not None:
                    server.clock.poke(name)  # waited for at the next tick, in either sync mode
                # continued on the wall clock, not at a tick: the ticks wait for it
                timer = threading.Timer(wall_s, _cont, (proc,))
                timer.daemon = True
                timer.start()
                self.thaw.append((time.monotonic() + wall_s, name))
                self.frozen.append((now, name, wall_s))
                log.warning("froze %s (SIGSTOP) at %.3f s for %g s", name, now / 1e9, wall_s)
            if name == SUPERVISOR and not starting:
                self.noted[name] = fault
            else:
                inject(server, fault)
        for due, name in list(self.thaw):
            proc = self.procs.get(name)
            if time.monotonic() >= due or proc is None or proc.poll() is not None:
                self.thaw.remove((due, name))
                if name in self.noted:
                    inject(server, self.noted.pop(name))

    def finish(self, late: list[str] | None = None) -> None:
        """After the last tick: wait for every process to write its results and leave.

        ``late``: processes due to join the clock after the run ended (restarted, or a
        new robot's); they never took part in it, so they are stopped, not waited for.
        """
        self.stopping = True
        for child in self.procs.values():
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)  # one still frozen must wake to finish
        for name in late or ():
            proc = self.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for name, proc in self.procs.items():
            code = proc.wait(timeout=60)
            if code != 0:
                raise LightsoutError(
                    f"{name} exited with {code}; see {self.logs / (name + '.log')}"
                )

    def kill_all(self) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _cont(proc: subprocess.Popen[bytes]) -> None:
    """End a freeze (from a timer thread): SIGCONT, unless the process is gone."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)


def node_command(role: str, cell: CellSpec, endpoint: str, **extra: str) -> list[str]:
    """The command line that starts one participant process."""
    cmd = [sys.executable, "-m", "cells.node", role, cell.source, "--endpoint", endpoint]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", v]
    return cmd
