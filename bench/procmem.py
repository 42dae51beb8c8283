"""Memory of a run's processes, read from outside by pid (Linux ``/proc``).

The benchmarks never change the processes they measure: they find the
launcher's descendants by walking ``/proc/*/stat`` for parent pids, name the
participants among them from their command lines (``python -m cells.node
agent CELL ... --robot R2`` is ``R2``, the supervisor's is ``supervisor``;
any other is left out) and read ``VmRSS`` (resident now)
or ``VmHWM`` (the peak so far) from ``/proc/PID/status``. A process that exits
between two reads is simply missing from the second.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
HOST = "host"
"""The name of the launcher's own process: the sim server, the clock and the world (and,
in one process, every participant's thread)."""


def available() -> bool:
    """Whether this OS has a ``/proc`` to read processes' memory from."""
    return (PROC / "self" / "status").is_file()


def status_kb(pid: int, key: str) -> int | None:
    """``key`` (``VmRSS``, ``VmHWM``) of process ``pid`` in kB; None if it is gone."""
    try:
        text = (PROC / str(pid) / "status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None  # a zombie keeps its status file but no memory lines


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, their children...), sorted."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces or ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return sorted(out)


def name_of(pid: int) -> str | None:
    """A participant's name from its command line (the robot, or ``supervisor``); None for any
    other process (one gone, or a child forked that has not yet run its program: it is still a
    copy of its parent, with the parent's pages)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if "cells.node" not in argv:
        return None
    if "--robot" in argv[:-1]:
        return argv[argv.index("--robot") + 1]
    return "supervisor" if "supervisor" in argv else None


def tree(root: int, *, root_name: str = HOST) -> dict[str, int]:
    """Name -> pid of ``root`` and of the participants among its descendants."""
    out = {root_name: root}
    for pid in children(root):
        name = name_of(pid)
        if name is not None:
            out[name if name not in out else f"{name}#{pid}"] = pid
    return out


def sample(root: int, key: str = "VmRSS", *, root_name: str = HOST) -> dict[str, int]:
    """Name -> ``key`` in kB of ``root`` and each of its descendants, now."""
    out: dict[str, int] = {}
    for name, pid in tree(root, root_name=root_name).items():
        kb = status_kb(pid, key)
        if kb is not None:
            out[name] = kb
    return out


class PeakWatch:
    """Keeps the peak RSS (``VmHWM``) of a process and its descendants while it runs.

    A thread reads every ``period_s`` of wall time, so a child's peak is its
    last reading before it exits: a peak in its final ``period_s`` is missed.
    """

    def __init__(
        self,
        root: int | None = None,
        *,
        period_s: float = 0.2,
        read: Callable[[int], dict[str, int]] | None = None,
    ) -> None:
        self.root = os.getpid() if root is None else root
        self.period_s = period_s
        self._read = read or (lambda pid: sample(pid, "VmHWM"))
        self.peaks: dict[str, int] = {}
        """Name -> the largest ``VmHWM`` read, kB."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-watch", daemon=True)

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._take()

    def _take(self) -> None:
        for name, kb in self._read(self.root).items():
            self.peaks[name] = max(kb, self.peaks.get(name, 0))
