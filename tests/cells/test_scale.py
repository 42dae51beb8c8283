"""One supervisor, 100 agents: the 25-island cell at events fidelity keeps every deadline.

``cells/assembly_25x.toml`` (``python -m cells.islands 25``) runs through the real launcher
in one process, timed from the assembly cell's calibration. The evidence comes from the
clock (members it dropped for silence) and the event log (robots taken for lost, every
robot in Execute and working), not from the supervisor's own liveness view.
"""

from __future__ import annotations

import json
from pathlib import Path

from cells.calibrate import with_fidelity
from cells.islands import islands
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "cells" / "assembly_25x.toml"
DURATION_S = 30.0


def test_the_committed_cell_is_what_the_generator_makes() -> None:
    import tomllib

    assert tomllib.loads(CELL.read_text(encoding="utf-8")) == islands(25)


def test_a_hundred_agents_keep_every_heartbeat_deadline(tmp_path: Path) -> None:
    borrowed = ROOT / "cells" / "assembly.calib.json"
    cell = with_fidelity(load_cell(CELL), CELL, "events", borrowed=borrowed)
    assert len(cell.robots) == 100
    kpis = run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=DURATION_S))
    assert kpis["sim"]["dropped"] == []  # the clock never gave up waiting for anyone
    assert kpis["ledger_balanced"] is True
    lines = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e for e in lines if e["kind"] == "robot_lost"] == []
    in_execute = {e["robot"] for e in lines if e["kind"] == "robot_state" and e["dst"] == "Execute"}
    assert len(in_execute) == 100
    worked = {e["robot"] for e in lines if e["kind"] == "op_done"}
    islands_working = {(int(r[1:]) - 1) // 4 for r in worked}
    assert islands_working == set(range(25)), sorted(islands_working)
