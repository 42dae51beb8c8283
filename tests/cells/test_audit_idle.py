"""The audit of a line with nothing to build: the windows of a pull line left idle by its
factory are not judged for throughput, and one where a unit stood in the making is.

A real two-line factory at events fidelity builds one small order early in a 900 s run;
afterwards nothing is released to its lines and they start no unit. Each line's own audit
(``lightsout audit lines/NAME``) must pass, saying which windows it did not judge; the same
log with a unit started in the idle stretch and never finished must fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cells import crosscheck
from cells.audit import Check, audit_run
from clients.cli import main
from tests.factory.kit import events_factory

S = 1_000_000_000


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("idle")
    argv = ["factory", "run", str(events_factory(tmp)), "--duration", "900", "--seed", "2"]
    argv += ["--order", "retail:phone:12:300", "--runs-dir", str(tmp), "--name", "f"]
    assert main(argv) == 0
    return tmp / "f" / "lines" / "L1"


def throughput(run: Path) -> Check:
    return next(c for c in audit_run(run, window_s=150) if c.name == "throughput in every window")


def test_an_idle_pull_line_passes_and_says_which_windows_it_did_not_judge(line: Path) -> None:
    events = [json.loads(x) for x in (line / "events.jsonl").read_text().splitlines()]
    shipped = [e["t_ns"] for e in events if e["kind"] == "unit_shipped"]
    assert shipped and max(shipped) < 450 * S, "the order was built early, then nothing"
    checks = audit_run(line, window_s=150)
    assert [c for c in checks if not c.ok] == []
    c = throughput(line)
    assert "with units in the making for under" in c.detail and "not judged" in c.detail
    spans = crosscheck.making(events, 900 * S)
    assert spans and spans[-1][1] <= max(shipped), "no unit in the making after the last"
    assert crosscheck.busy_s(spans, 600 * S, 750 * S) == 0.0


def test_a_unit_left_in_the_making_in_the_idle_stretch_fails_the_windows(
    line: Path, tmp_path: Path
) -> None:
    run = tmp_path / "L1"
    run.mkdir()
    for f in line.iterdir():
        if f.is_file():
            (run / f.name).write_bytes(f.read_bytes())
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    stuck = {"kind": "unit_started", "t_ns": 500 * S, "unit": "frame-9999", "fixture": "fx1"}
    events.append(stuck)
    events.sort(key=lambda e: e["t_ns"])
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    c = throughput(run)
    assert not c.ok and "600-750 s" in c.detail, c.detail
