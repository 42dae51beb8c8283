"""The journal: a supervisor restored from it is the supervisor that wrote it."""

from __future__ import annotations

from pathlib import Path

from bus.enums import PackMLState, WorldEventKind
from bus.messages import Bid, CallForBids, OpStarted, WorldEvent
from supervisor import Supervisor
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
