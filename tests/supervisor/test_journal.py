"""The journal: a supervisor restored from it is the supervisor that wrote it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bus.enums import PackMLState, WorldEventKind
from bus.messages import Bid, CallForBids, OpStarted, WorldEvent
from cells.calibrate import with_fidelity
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from supervisor import Supervisor
from supervisor.journal import Journal
from tests.kit.supervisor import TICK, Harness


def test_restore_gives_back_ledger_operations_and_assignments_exactly(tmp_path: Path) -> None:
    h = Harness(out_dir=tmp_path)
    h.step(*(h.hb(r, PackMLState.EXECUTE) for r in ("R1", "R2", "R3", "R4")))
    spawns = tuple(
        WorldEvent(0, WorldEventKind.SPAWNED, pid, kind, loc, "")
        for pid, kind, loc in (
            ("frame-0001", "frame", "conveyor:infeed"),
            ("battery-0001", "battery", "feeder:battery_tray"),
            ("board-0001", "board", "feeder:board_tray"),
        )
    )
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=spawns)
    op_id = next(m.op.op_id for _, m in sent if isinstance(m, CallForBids))
    h.step()
    h.step(("R1", Bid(op_id, "R1", 10**9)), ("R2", Bid(op_id, "R2", 2 * 10**9)))
    h.step(("R1", OpStarted(op_id, "R1", h.k * TICK)))
    moved = WorldEvent(
        h.k * TICK, WorldEventKind.GRASPED, "frame-0001", "frame", "gripper:R1", "R1"
    )
    h.step(events=(moved,))
    before = h.sup.snapshots.take()
    assert before["units"]["units"]["frame-0001"]["ops"]["load_frame"]["robot"] == "R1"

    h.sup.close()  # as good as killed: nothing more is written

    again = Supervisor(h.sup.cell, out_dir=tmp_path, restore=True)
    after = again.snapshots.take()
    again.close()
    assert after == before
    # the dispatcher too: when it last booked idle time, so the ticks between are booked
    assert before["dispatch"]["accounted"][0] >= 0 and after["dispatch"] == before["dispatch"]
    assert again.ledger.location("frame-0001") == "gripper:R1"
    assert again.ledger.check()
    # the event log was carried over, not started afresh
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == again.events.count > 10


def test_a_fresh_supervisor_ignores_an_old_journal_unless_told(tmp_path: Path) -> None:
    h = Harness(out_dir=tmp_path)
    h.step(h.hb("R1", PackMLState.EXECUTE))
    h.sup.close()
    fresh = Supervisor(h.sup.cell, out_dir=tmp_path)
    fresh.close()
    assert fresh.ledger.created == 0 and fresh.events.count == 0


def test_the_health_series_each_have_a_row_written_only_when_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real events run: every series the report names has its own row in the journal; the
    commits carry the series sampled since the last, not all; a supervisor restored from the rows reports the
    same baselines the run ended with; and a journal of the former layout (the series inside
    the health row) still restores."""
    cell_file = Path(__file__).resolve().parents[2] / "cells" / "assembly.toml"
    cell = with_fidelity(load_cell(cell_file), cell_file, "events")
    carried: list[int] = []
    real = Journal.commit

    def spy(self: Journal, tick: int, t_ns: int, lines: tuple[str, ...], state: Any) -> None:
        carried.append(sum(1 for name in state if name.startswith("health/")))
        real(self, tick, t_ns, lines, state)

    monkeypatch.setattr(Journal, "commit", spy)
    run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=240))
    monkeypatch.undo()
    report = json.loads((tmp_path / "kpis.json").read_text())["health"]
    named = {
        f"{kind}:{target}/{part}"
        for target, t in report["targets"].items()
        for kind, _, part in (s.partition("/") for s in t["series"])
    }
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        rows = {r[0] for r in db.execute("SELECT name FROM parts WHERE name LIKE 'health/%'")}
    assert len(named) > 20 and rows == {f"health/{k}" for k in named}
    # the drives' tracking (28 series, once a second) comes together; the others one by one
    written = sum(carried)
    assert 0 < written < len(carried) * len(named) / 3, "a commit carries what was sampled"

    again = Supervisor(cell, out_dir=tmp_path, restore=True)
    try:
        assert again.health.report() == report
        whole = again.health.snapshot()
        again.health.restore_rows(whole, {})  # the former layout: one row
        assert again.health.snapshot() == whole
    finally:
        again.close()
