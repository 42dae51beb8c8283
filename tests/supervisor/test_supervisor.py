"""The supervisor's decisions, stepped by hand with no sockets and no world."""

from __future__ import annotations

import pytest

from bus.enums import OpStatus, PackMLCommand, PackMLState, WorldEventKind
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    Command,
    OpReport,
    OpStarted,
    WorldEvent,
)
from tests.kit.supervisor import TICK, Harness


def test_a_stopped_robot_is_reset_then_started() -> None:
    h = Harness()
    sent = h.step(h.hb("R1", PackMLState.STOPPED))
    assert [(d, m.command) for d, m in sent if isinstance(m, Command)] == [
        ("R1", PackMLCommand.RESET)
    ]
    sent = h.step(h.hb("R1", PackMLState.IDLE))
    assert sent == []  # the Reset is still unanswered: no second command


def test_frame_at_infeed_starts_a_unit_and_the_quickest_bid_wins() -> None:
    h = Harness()
    robots = ["R1", "R2", "R3", "R4"]
    h.step(*(h.hb(r, PackMLState.EXECUTE) for r in robots))
    spawn = WorldEvent(
        h.k * TICK, WorldEventKind.SPAWNED, "frame-0001", "frame", "conveyor:infeed", ""
    )
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=(spawn,))
    cfb = [(d, m) for d, m in sent if isinstance(m, CallForBids)]
    # only R1 and R3 (the two on the infeed's side) reach both the infeed and F1
    assert sorted(d for d, _ in cfb) == ["R1", "R3"]
    op = cfb[0][1].op
    assert (op.name, op.part, op.src, op.dst) == ("load_frame", "frame-0001", "infeed", "F1")
    h.step()
    sent = h.step(("R1", Bid(op.op_id, "R1", 9 * 10**9)), ("R3", Bid(op.op_id, "R3", 6 * 10**9)))
    awards = [(d, m) for d, m in sent if isinstance(m, Award)]
    assert [(d, m.op.op_id) for d, m in awards] == [("R3", op.op_id)]


def test_lost_robot_gives_its_work_back_within_three_heartbeats() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE), h.hb("R2", PackMLState.EXECUTE))
    spawn = WorldEvent(0, WorldEventKind.SPAWNED, "frame-0001", "frame", "conveyor:infeed", "")
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=(spawn,))
    op_id = next(m.op.op_id for _, m in sent if isinstance(m, CallForBids))
    h.step()
    h.step(("R1", Bid(op_id, "R1", 10**9)), ("R2", Bid(op_id, "R2", 2 * 10**9)))
    h.step(("R1", OpStarted(op_id, "R1", h.k * TICK)))
    assert h.sup.ops[op_id].robot == "R1"
    lost_at = h.k
    # R2 keeps beating, R1 falls silent
    for _ in range(5 * 24):  # give up after 5 s: lost must come within 3
        if not h.sup.robots["R1"].alive:
            break
        h.step(h.hb("R2", PackMLState.EXECUTE))
    waited = (h.k - lost_at) * TICK
    assert waited <= 3 * 10**9 + 2 * TICK
    assert h.sup.ops[op_id].robot == ""
    assert h.sup.ops[op_id].state.value == "ready"


@pytest.mark.parametrize("status", [OpStatus.FAILED, OpStatus.REFUSED])
def test_failed_operation_is_requeued(status: OpStatus) -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    spawn = WorldEvent(0, WorldEventKind.SPAWNED, "frame-0001", "frame", "conveyor:infeed", "")
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=(spawn,))
    op_id = next(m.op.op_id for _, m in sent if isinstance(m, CallForBids))
    h.step()
    h.step(("R1", Bid(op_id, "R1", 10**9)))
    h.step(("R1", OpReport(op_id, "R1", status, "grasp missed", h.k * TICK, None)))
    op = h.sup.ops[op_id]
    assert (op.state.value, op.robot, op.attempts) == ("ready", "", 1)
