"""How a run begins and ends, whatever ends it: its record, signals, orphans.

* ``run.json`` and ``scenario.toml``, written at the start, say how the run
  was started (cell file, seed, duration, mode, faults), so ``lightsout
  resume`` can carry it on and the audit can read the cell;
* ``world.jsonl``, written as the run goes (flushed every tick with news),
  holds the world's own records of what the arms did (``World.records``): the
  evidence the audit holds the supervisor's log against;
* ``Signals``: SIGTERM and SIGINT to the launcher end the run as its duration
  would (the children are told to finish, the event log is flushed, the
  supervisor writes ``kpis.json``), with the signal as the exit reason; a
  second signal gives up at once;
* ``die_with_parent``: a participant process is killed by the kernel when
  the launcher dies (Linux ``PR_SET_PDEATHSIG``), and watches its parent's
  pid too (any OS), so no child outlives a killed launcher by more than a
  second or two.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bus.cellspec import CellSpec
from cells.faults import ScheduledFault, dump_scenario

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
"""The C library (its ``prctl``), loaded in the launcher, before any fork."""
WATCH_S = 0.5
"""How often an orphan watchdog looks at its parent's pid."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunMeta:
    """What ``run.json`` holds."""

    cell: str
    seed: int
    duration_s: float
    processes: bool
    guard_s: float


def write_meta(
    out_dir: Path, cell: CellSpec, meta: RunMeta, faults: tuple[ScheduledFault, ...]
) -> None:
    """``run.json`` and ``scenario.toml`` (the faults of the run, ``--faults`` and chaos alike)."""
    data = {
        **dataclasses.asdict(meta),
        "cell": str(Path(cell.source).resolve()),
        "fidelity": cell.fidelity,
    }
    text = json.dumps(data, indent=2, sort_keys=True)
    (out_dir / "run.json").write_text(text + "\n", encoding="utf-8")
    note = "the faults of this run (lightsout resume injects those still to come)"
    (out_dir / "scenario.toml").write_text(dump_scenario(faults, note), encoding="utf-8")


class WorldRecords:
    """Appends the world's records (``World.take_records``) to ``world.jsonl`` after each tick."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self._fh: IO[str] | None = path.open("a" if append else "w", encoding="utf-8")

    def write(self, records: list[dict[str, Any]]) -> None:
        if self._fh is None or not records:
            return
        for rec in records:
            self._fh.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
        # flushed before the supervisor can log what the records show (a tick later),
        # so even a power cut leaves the evidence of every logged operation on disk
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Signals:
    """SIGTERM and SIGINT end the run gently once, then at once (on the main thread only)."""

    def __init__(self) -> None:
        self.reason = ""
        """``signal SIGTERM`` (or SIGINT) once one arrived."""
        self._old: dict[int, Any] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for signum, old in self._old.items():
                signal.signal(signum, old)
            self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.reason:
            log.warning("%s again: stopping at once", name)
            raise KeyboardInterrupt
        self.reason = f"signal {name}"
        log.warning("%s: ending the run (results are written); again to stop at once", name)


def die_with_parent() -> None:
    """In a child, before exec: the kernel kills this process when its parent dies (Linux).

    Only calls the C library loaded at import (a ``preexec_fn`` must not load libraries,
    spawn anything or take locks between fork and exec)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def watch_parent(parent: int | None = None) -> threading.Thread:
    """A daemon thread that ends this process as soon as its parent is gone (any OS)."""
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            if os.getppid() != parent:
                log.error("the launcher (pid %d) is gone; exiting", parent)
                os._exit(4)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
