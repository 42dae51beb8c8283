"""The rich console: a full-screen live view of a running cell, steered with single keys.

The view itself is ``ConsoleModel`` (``clients.console_model``); this module
is the terminal around it: a telemetry ``Subscriber``, a worker thread that
owns the ``ControlClient`` (so a slow or dead cell never freezes the screen),
a thread that reads keys from stdin in cbreak mode, and a loop that drains
telemetry in batches and redraws at a fixed rate.

The console only subscribes and sends the commands a person asks for (and a
``status`` once a second, for the pace and for robots while telemetry is
quiet), so watching a cell does not change it. It decodes only the newest
``joints`` / ``parts`` / ``kpis`` frame of each batch and redraws at most
``fps`` times a second, which keeps it to a few percent of a core with 12
robots.

Keys: ``h`` hold the cell, ``r`` resume (unhold) it, ``j`` / ``k`` or the
arrows select a robot, ``f`` inject a ``robot_fault`` on it, ``p`` pause or
run the clock, ``e`` show only faults, ``q`` quit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from typing import IO, Any

import zmq
from rich.console import Console
from rich.live import Live

from bus.errors import LightsoutError
from bus.messages import CellStatus
from bus.security import CurveKeys
from clients.console_model import ConsoleModel
from clients.control import ControlClient, Subscriber

__all__ = ["CommandRunner", "ConsoleApp", "ConsoleModel", "KeyReader", "parse_keys", "run_console"]

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
"""How often the console asks for ``status`` (pace, robots when telemetry is quiet)."""
SNAPSHOT_AFTER_GAP_S = 2.0
"""At most one ``snapshot`` per this many seconds to recover from telemetry gaps."""

Job = Callable[[ControlClient], object]


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What a job sent to the cell came back with."""

    label: str
    result: object = None
    error: str = ""


class CommandRunner(threading.Thread):
    """Runs control requests one at a time on its own thread and socket.

    The screen loop hands jobs over with ``submit`` and picks up ``Outcome``s
    from ``outcomes``; a request that takes its full timeout only delays the
    next request, never a redraw.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        curve: CurveKeys | None = None,
        timeout_s: float = 2.0,
        ctx: zmq.Context[Any] | None = None,
    ) -> None:
        super().__init__(name="console-control", daemon=True)
        self.endpoint = endpoint
        self.curve = curve
        self.timeout_s = timeout_s
        self.ctx = ctx
        self.jobs: queue.Queue[tuple[str, Job] | None] = queue.Queue()
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.busy = threading.Event()

    def submit(self, label: str, job: Job) -> None:
        """Queue ``job(client)``; its outcome arrives in ``outcomes`` labelled ``label``."""
        self.busy.set()
        self.jobs.put((label, job))

    def stop(self) -> None:
        """Finish the job in hand, drop the rest, close the socket."""
        self.jobs.put(None)
        if self.ident is not None:
            self.join(timeout=2 * self.timeout_s + 1)

    def run(self) -> None:
        client = ControlClient(
            self.endpoint, timeout_s=self.timeout_s, retries=1, curve=self.curve, ctx=self.ctx
        )
        try:
            while True:
                item = self.jobs.get()
                if item is None:
                    return
                label, job = item
                try:
                    self.outcomes.put(Outcome(label, result=job(client)))
                except LightsoutError as exc:
                    self.outcomes.put(Outcome(label, error=str(exc)))
                finally:
                    if self.jobs.empty():
                        self.busy.clear()
        finally:
            client.close()


ESCAPES = {
    b"\x1b[A": "up",
    b"\x1b[B": "down",
    b"\x1bOA": "up",
    b"\x1bOB": "down",
    b"\x1b[C": "right",
    b"\x1b[D": "left",
}


def parse_keys(data: bytes) -> list[str]:
    """Key names from what a terminal sent: letters as themselves, arrows as ``up`` / ``down``."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        for seq, name in ESCAPES.items():
            if data.startswith(seq, i):
                keys.append(name)
                i += len(seq)
                break
        else:
            ch = data[i : i + 1]
            if ch == b"\x1b":
                keys.append("escape")
            elif ch.isascii() and ch.decode().isprintable():
                keys.append(ch.decode())
            i += 1
    return keys


class KeyReader(threading.Thread):
    """Reads keys from a terminal file descriptor into ``keys`` until stopped.

    The caller puts the terminal in cbreak mode (``cbreak``); this thread only
    waits with ``select`` (so it notices ``stop`` within 0.1 s) and reads.
    """

    def __init__(self, fd: int) -> None:
        super().__init__(name="console-keys", daemon=True)
        self.fd = fd
        self.keys: queue.Queue[str] = queue.Queue()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:  # end of input: the terminal went away
                self.keys.put("q")
                return
            for k in parse_keys(data):
                self.keys.put(k)

    def stop(self) -> None:
        """Stop reading (within 0.1 s)."""
        self._halt.set()
        self.join(timeout=1)


@contextlib.contextmanager
def cbreak(stream: IO[str]) -> Iterator[int | None]:
    """Put a terminal in cbreak mode (keys one by one, no echo; Ctrl-C still works).

    Yields its descriptor, or None if ``stream`` is not a terminal; the old
    mode is restored on the way out, whatever happens.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        yield None
        return
    if not os.isatty(fd):
        yield None
        return
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


class ConsoleApp:
    """The loop: keys to commands, telemetry and answers to the model, the model to the screen."""

    def __init__(
        self,
        endpoint: str,
        *,
        curve: CurveKeys | None,
        fault_duration_s: float,
        fps: float,
        timeout_s: float,
        ctx: zmq.Context[Any] | None,
    ) -> None:
        self.model = ConsoleModel(endpoint=endpoint)
        self.fault_duration_s = fault_duration_s
        self.period = 1.0 / fps
        self.sub = Subscriber(endpoint, curve=curve, ctx=ctx)
        self.runner = CommandRunner(endpoint, curve=curve, timeout_s=timeout_s, ctx=ctx)
        self.quit = False
        self.draws = 0
        """Redraws so far."""
        self._gaps_seen = 0
        self._last_status = -1e9
        self._last_snapshot = -1e9
        self._draws: list[float] = []

    # ------------------------------------------------------------ keys

    def key(self, k: str) -> None:
        """Act on one key."""
        m = self.model
        if k in ("q", "Q"):
            self.quit = True
        elif k in ("j", "down"):
            m.select(+1)
        elif k in ("k", "up"):
            m.select(-1)
        elif k == "e":
            m.faults_only = not m.faults_only
        elif k == "h":
            self.command("hold the cell", lambda c: c.cell("Hold"))
        elif k == "r":
            self.command("resume the cell", lambda c: c.cell("Unhold"))
        elif k == "p":
            mode = "run" if m.pace == "paused" else "pause"
            self.command(f"pace {mode}", lambda c: c.pace(mode))
            self.runner.submit("status", lambda c: c.status())
        elif k == "f":
            robot = m.selected_robot
            if robot is None:
                m.note("no robot to fault yet", alarm=True)
                return
            d = self.fault_duration_s
            self.command(f"robot_fault on {robot}", lambda c: c.fault(robot, "robot_fault", d))

    def command(self, label: str, job: Job) -> None:
        """Send a command on the runner and say so until its answer comes."""
        self.model.note(f"{label}...")
        self.runner.submit(label, job)

    # ------------------------------------------------------------ loop

    def take_outcomes(self) -> None:
        """Put answers from the runner into the model."""
        m = self.model
        while True:
            try:
                out = self.runner.outcomes.get_nowait()
            except queue.Empty:
                return
            if out.label == "status":
                if isinstance(out.result, CellStatus):
                    m.apply_status(out.result)
                elif out.error:
                    m.link = "cell not answering" if "timeout" in out.error else out.error
            elif out.label == "snapshot":
                if isinstance(out.result, dict):
                    m.apply_snapshot(out.result)
            elif out.error:
                m.note(out.error, alarm=True)
            else:
                reason = getattr(out.result, "reason", "") or "ok"
                m.note(f"{out.label}: {reason}")

    def housekeeping(self, now: float) -> None:
        """Ask for status once a second, and a snapshot after new gaps (rate-limited)."""
        if now - self._last_status >= STATUS_EVERY_S and not self.runner.busy.is_set():
            self._last_status = now
            self.runner.submit("status", lambda c: c.status())
        if (
            self.sub.gap_count > self._gaps_seen
            and now - self._last_snapshot >= SNAPSHOT_AFTER_GAP_S
        ):
            self._gaps_seen = self.sub.gap_count
            self._last_snapshot = now
            self.runner.submit("snapshot", lambda c: c.snapshot())

    def drain(self) -> None:
        """Everything the telemetry socket holds, newest full frames only."""
        for msg in self.sub.poll(0, latest=True):
            self.model.feed(msg)
        s = self.sub
        self.model.set_link(gaps=s.gap_count, lost=s.lost, malformed=s.malformed)

    def run(
        self,
        console: Console,
        keys: queue.Queue[str] | None,
        *,
        max_s: float | None = None,
    ) -> None:
        """Draw until ``q`` (or ``max_s`` of wall time)."""
        self.model.keys = keys is not None
        if self.runner.ident is None:
            self.runner.start()
        self.runner.submit("snapshot", lambda c: c.snapshot())
        start = time.monotonic()
        with Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            next_draw = time.monotonic()
            while not self.quit:
                now = time.monotonic()
                if max_s is not None and now - start >= max_s:
                    break
                if keys is not None:
                    self._wait_keys(keys, next_draw - now)
                else:
                    time.sleep(max(0.0, next_draw - now))
                now = time.monotonic()
                if now < next_draw or self.quit:
                    continue
                self.drain()
                self.take_outcomes()
                self.housekeeping(now)
                self._draws = [t for t in self._draws if now - t < 1.0] + [now]
                self.model.fps = len(self._draws) / min(1.0, max(now - start, 1e-3))
                self.draws += 1
                live.update(self.model.render(height=console.height), refresh=True)
                next_draw = max(next_draw + self.period, now + self.period / 2)

    def _wait_keys(self, keys: queue.Queue[str], timeout_s: float) -> None:
        """Handle keys as they come until ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while not self.quit:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self.key(keys.get(timeout=left))
            except queue.Empty:
                return

    def close(self) -> None:
        """Stop the runner and close the subscriber."""
        self.runner.stop()
        self.sub.close()


def run_console(
    endpoint: str,
    *,
    curve: CurveKeys | None = None,
    fault_duration_s: float = 10.0,
    fps: float = 12.0,
    timeout_s: float = 2.0,
    console: Console | None = None,
    stdin: IO[str] | None = None,
    ctx: zmq.Context[Any] | None = None,
    max_s: float | None = None,
) -> int:
    """Show the cell at ``endpoint`` full screen until ``q``; returns the exit code.

    ``fps`` is the redraw rate (the loop never redraws faster). Without a
    terminal on ``stdin`` the view runs without keys (quit with Ctrl-C).
    """
    if not 0 < fps <= 60:
        raise LightsoutError(f"--fps must be from 1 to 60, got {fps:g}")
    console = console or Console()
    app = ConsoleApp(
        endpoint,
        curve=curve,
        fault_duration_s=fault_duration_s,
        fps=fps,
        timeout_s=timeout_s,
        ctx=ctx,
    )
    try:
        with cbreak(stdin or sys.stdin) as fd:
            reader = KeyReader(fd) if fd is not None else None
            if reader is not None:
                reader.start()
            try:
                app.run(console, reader.keys if reader else None, max_s=max_s)
            except KeyboardInterrupt:
                pass
            finally:
                if reader is not None:
                    reader.stop()
    finally:
        app.close()
    return 0
