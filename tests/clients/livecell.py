"""A real cell for end-to-end client tests: ``lightsout run`` in a subprocess over ipc.

Started the way a person starts one, so these tests see what a user sees:
the cell host's real control and telemetry sockets. ``ready()`` polls
``status`` until every robot is producing; leaving the context sends
``shutdown`` and checks that the run ended cleanly (exit 0).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from bus.endpoints import Endpoints, private_ipc_base
from bus.enums import PackMLState
from bus.messages import CellStatus
from clients.control import ControlClient, NoAnswer

ROOT = Path(__file__).resolve().parents[2]
LIGHTSOUT = [sys.executable, "-m", "clients.cli"]

T = TypeVar("T")


def poll_until(
    probe: Callable[[], T | None], what: str, *, timeout_s: float = 30.0, every_s: float = 0.05
) -> T:
    """Call ``probe`` until it returns something (not None) or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None:
            return last
        time.sleep(every_s)  # the interval between probes; the deadline bounds the wait
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


class LiveCell:
    """``lightsout run cells/assembly.toml --endpoint ipc://...`` for the length of a test module."""

    def __init__(
        self,
        runs: Path,
        *,
        duration_s: float = 3600,
        extra: Sequence[str] = (),
        cell: str = "assembly.toml",
    ) -> None:
        self.base = private_ipc_base(prefix="lo-e2e-")
        self.dir = self.base.removeprefix("ipc://")
        self.endpoints = Endpoints.from_base(self.base)
        self.runs = runs
        self.log = runs / "cell.log"
        self.argv = [
            *LIGHTSOUT,
            "run",
            str(ROOT / "cells" / cell),
            "--duration",
            str(duration_s),
            "--endpoint",
            self.base,
            "--runs-dir",
            str(runs),
            "--name",
            "e2e",
            "-q",
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = ControlClient(self.base, timeout_s=5, retries=2)

    def __enter__(self) -> LiveCell:
        self.runs.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            self.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        code = self.stop()
        if exc_type is None:
            assert code == 0, f"the cell exited with {code}:\n{self.tail()}"

    def tail(self, lines: int = 40) -> str:
        """The end of the cell's output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def status(self) -> CellStatus:
        """The cell's status now."""
        return self.client.status()

    def ready(self, timeout_s: float = 90.0) -> CellStatus:
        """Wait until the cell answers and every robot is in Execute."""

        def probe() -> CellStatus | None:
            assert self.proc is not None and self.proc.poll() is None, (
                f"the cell exited early:\n{self.tail()}"
            )
            if not os.path.exists(self.endpoints.control.removeprefix("ipc://")):
                return None
            try:
                s = self.client.status()
            except NoAnswer:
                return None
            producing = s.robots and all(r.state is PackMLState.EXECUTE for r in s.robots)
            return s if producing else None

        return poll_until(probe, "every robot in Execute", timeout_s=timeout_s, every_s=0.2)

    def stop(self) -> int | None:
        """Ask the cell to end, then make sure it has; its exit code."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                # the cell may be gone already; it is killed below then
                with contextlib.suppress(Exception):
                    self.client.shutdown()
                try:
                    code = self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            else:
                code = self.proc.returncode
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code
