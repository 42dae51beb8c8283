"""The console as a person uses it: in a terminal (tmux), next to a running cell.

A real cell runs in one process and ``lightsout console`` in a detached tmux
pane of the test's own tmux server; or ``lightsout run --console`` does both
from one command. The tests read the screen with ``capture-pane`` and type
with ``send-keys``, as a person would.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.endpoints import private_ipc_base
from bus.enums import PackMLState
from clients.control import ControlClient
from tests.clients.livecell import LIGHTSOUT, ROOT, LiveCell, poll_until

pytestmark = pytest.mark.slow

ROBOTS = ("R1", "R2", "R3", "R4")
_SERVERS = itertools.count()


class Tmux:
    """One tmux server of the test's own (``-L``), so no user session is touched."""

    def __init__(self) -> None:
        # a fresh server each time: a killed one may still be going away
        self.name = f"lightsout-test-{os.getpid()}-{next(_SERVERS)}"

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.name, *args], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def alive(self) -> bool:
        done = subprocess.run(
            ["tmux", "-L", self.name, "has-session", "-t", "console"], capture_output=True
        )
        return done.returncode == 0

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "console")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True)


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCell]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    with LiveCell(tmp_path_factory.mktemp("console")) as c:
        yield c


@pytest.fixture
def tmux(cell: LiveCell, tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux()
    err = tmp_path / "console.err"
    command = shlex.join([*LIGHTSOUT, "console", "--endpoint", cell.base])
    try:
        t(
            "new-session", "-d", "-s", "console", "-x", "140", "-y", "45", "-c", str(ROOT),
            f"{command} 2>{shlex.quote(str(err))}",
        )  # fmt: skip
        yield t
    finally:
        t.kill()


def robot_line(screen: str, robot: str) -> str:
    return next((line for line in screen.splitlines() if f" {robot} " in line), "")


def showing(tmux: Tmux, state: str) -> str | None:
    """The screen, once every robot's line shows ``state`` and the KPIs are in."""
    screen = tmux.screen()
    if "pace fast" not in screen or "units/h" not in screen:  # status and KPIs are in
        return None
    if all(state in robot_line(screen, r) for r in ROBOTS):
        return screen
    return None


def test_the_console_shows_every_robot_and_the_kpis(cell: LiveCell, tmux: Tmux) -> None:
    screen = poll_until(lambda: showing(tmux, "Execute"), "the console with 4 robots in Execute")
    first = screen.splitlines()[0]
    assert "lightsout" in first and "pace fast" in first and "gaps" in first
    for label in ("units completed", "throughput", "cycle time", "ledger balanced"):
        assert label in screen
    assert "conveyor:infeed" in screen
    poll_until(
        lambda: True if "yes" in next(
            (line for line in tmux.screen().splitlines() if "ledger balanced" in line), ""
        ) else None,
        "ledger balanced: yes",
    )  # fmt: skip


def test_h_holds_the_cell_and_r_resumes_it(cell: LiveCell, tmux: Tmux) -> None:
    poll_until(lambda: showing(tmux, "Execute"), "the console up")
    tmux("send-keys", "-t", "console", "h")
    poll_until(
        lambda: True if all(r.state is PackMLState.HELD for r in cell.status().robots) else None,
        "status: every robot Held",
    )
    screen = poll_until(lambda: showing(tmux, "Held"), "the console showing every robot Held")
    assert "Hold accepted" in screen
    tmux("send-keys", "-t", "console", "r")
    poll_until(
        lambda: True if all(r.state is PackMLState.EXECUTE for r in cell.status().robots) else None,
        "status: every robot back in Execute",
    )
    poll_until(lambda: showing(tmux, "Execute"), "the console showing Execute again")


def test_q_quits_and_gives_the_terminal_back(cell: LiveCell, tmux: Tmux) -> None:
    poll_until(lambda: showing(tmux, "Execute"), "the console up")
    tmux("send-keys", "-t", "console", "q")
    poll_until(lambda: True if not tmux.alive() else None, "the console to exit", timeout_s=10)


def test_run_with_console_holds_on_h_and_ends_the_run_on_q(tmp_path: Path) -> None:
    """``lightsout run --console``: the cell and its console from one command, as a person types it."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    base = private_ipc_base(prefix="lo-e2e-")
    runs = tmp_path / "runs"
    command = shlex.join(
        [
            *LIGHTSOUT,
            *("run", "cells/assembly.toml", "--duration", "300", "--console"),
            *("--endpoint", base, "--runs-dir", str(runs), "--name", "watched"),
        ]
    )
    t = Tmux()
    try:
        shell = f"{command}; echo exit code $?"
        t("new-session", "-d", "-s", "console", "-x", "140", "-y", "45", "-c", str(ROOT), shell)
        t("set-option", "-t", "console", "remain-on-exit", "on")
        poll_until(
            lambda: showing(t, "Execute"), "the console with 4 robots in Execute", timeout_s=90
        )
        t("send-keys", "-t", "console", "h")
        with ControlClient(base) as c:
            poll_until(
                lambda: (
                    True if all(r.state is PackMLState.HELD for r in c.status().robots) else None
                ),
                "status: every robot Held",
            )
        poll_until(lambda: showing(t, "Held"), "the console showing every robot Held")
        t("send-keys", "-t", "console", "q")

        def ended() -> str | None:
            screen = t.screen()
            return screen if "exit code" in screen else None

        screen = poll_until(ended, "the run to end", timeout_s=60)
        assert "exit code 0" in screen and "results:" in screen
        kpis = json.loads((runs / "watched" / "kpis.json").read_text())
        assert kpis["ledger_balanced"] is True
    finally:
        t.kill()
        shutil.rmtree(base.removeprefix("ipc://"), ignore_errors=True)
