"""``lightsout factory status --watch``: the live view of a factory run in another process,
asked over its real control socket until the run ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clients.cli import main
from tests.factory.kit import events_factory

LIGHTSOUT = str(Path(sys.executable).parent / "lightsout")


@pytest.mark.timeout(300)
def test_the_watch_shows_a_running_factory_until_its_run_ends(
    tmp_path: Path, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [LIGHTSOUT, "factory", "run", str(events_factory(tmp_path)), "--duration", "900"]
    argv += ["--order", "retail:phone:6:800", "--endpoint", base, "--runs-dir", str(tmp_path)]
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert main(["factory", "status", "--endpoint", base, "--watch", "--timeout", "120"]) == 0
        _out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, err
    text = capsys.readouterr().out
    assert "L1" in text and "L2" in text and "O00001" in text, text
    assert "the factory stopped answering (its run ended)" in text


def test_a_watch_with_no_factory_is_one_line(base: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factory", "status", "--endpoint", base, "--watch", "--timeout", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {base}: no factory answered within 1 s", err


def test_watch_and_json_together_are_refused(base: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factory", "status", "--endpoint", base, "--watch", "--json"]) == 2
    assert "--watch draws the live view" in capsys.readouterr().err
