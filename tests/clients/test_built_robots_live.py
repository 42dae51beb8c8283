"""A robot built in the cell, seen from outside as a user sees it: ``lightsout status`` and
the console, over the cell's real control and telemetry sockets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clients.console_model import ConsoleModel
from clients.control import Subscriber
from tests.clients.livecell import ROOT, LiveCell, poll_until


@pytest.mark.timeout(300)
def test_a_built_robot_shows_in_status_and_in_the_console(tmp_path: Path) -> None:
    with LiveCell(tmp_path, duration_s=600, cell="robot_building.toml") as cell:
        model = ConsoleModel()
        with Subscriber(cell.base) as sub:

            def probe() -> bool | None:
                for m in sub.poll(0.2):
                    model.feed(m)
                rows = [model.robots.get(n) for n in ("B1", "B2")]
                up = all(r is not None and r.built and r.state == "Execute" for r in rows)
                return True if up else None

            poll_until(probe, "B1 and B2 built and in Execute in the console", timeout_s=240)
        assert [model.robots[n].built for n in ("B1", "B2")] == ["arm-0001", "arm-0002"]
        status = cell.status()
        for name in ("B1", "B2"):
            row = next(r for r in status.robots if r.robot == name)
            assert row.alive and row.state.value == "Execute"
        out = subprocess.run(
            [sys.executable, "-m", "clients.cli", "status", "--endpoint", cell.base],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=True,
        ).stdout
        assert "B1" in out and "B2" in out and "Execute" in out
