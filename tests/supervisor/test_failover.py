"""A robot that fails for good, as the supervisor sees it: never cleared, what it holds written off."""

from __future__ import annotations

import json
from pathlib import Path

from bus.enums import ControlCommand, OpStatus, PackMLCommand, PackMLState, WorldEventKind
from bus.messages import (
    Bid,
    CallForBids,
    Command,
    CommandReply,
    ControlRequest,
    Message,
    OpReport,
    OpStarted,
    WorldEvent,
)
from supervisor import Supervisor
from supervisor.fleet import failed_for_good
from tests.kit.supervisor import TICK, Harness, request

HOUR_TICKS = 3600 * 24


def fault(h: Harness, robot: str, *, permanent: bool, duration_s: float = 0.0) -> list[str]:
    req = ControlRequest(
        f"fault-{h.k}",
        ControlCommand.FAULT,
        robot,
        "robot_fault",
        duration_s,
        permanent=permanent,
    )
    sent, lines = request(h, req)
    aborts = [m for d, m in sent if isinstance(m, Command)]
    assert [(m.robot, m.command) for m in aborts] == [(robot, PackMLCommand.ABORT)]
    # the agent answers (else the supervisor sends the Abort again, as over a lossy link)
    h.step((robot, CommandReply(aborts[0].cmd_id, robot, True, PackMLState.ABORTING, "")))
    return lines


def commands(sent: list[tuple[str, Message]]) -> list[PackMLCommand]:
    return [m.command for _, m in sent if isinstance(m, Command)]


def test_a_timed_fault_is_cleared_after_its_duration() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    fault(h, "R1", permanent=False, duration_s=2.0)
    h.step(h.hb("R1", PackMLState.ABORTED))
    assert commands(h.step(h.hb("R1", PackMLState.ABORTED))) == []
    h.k += 2 * 24
    assert commands(h.step(h.hb("R1", PackMLState.ABORTED))) == [PackMLCommand.CLEAR]


def test_a_permanent_fault_is_never_cleared() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    lines = fault(h, "R1", permanent=True)
    logged = [json.loads(line) for line in lines if '"fault_injected"' in line]
    assert [(e["target"], e["permanent"]) for e in logged] == [("R1", True)]
    assert failed_for_good(h.sup.robots["R1"])
    h.step(h.hb("R1", PackMLState.ABORTED))
    for _ in range(3):
        h.k += HOUR_TICKS
        assert commands(h.step(h.hb("R1", PackMLState.ABORTED))) == []


def test_it_is_still_failed_for_good_after_a_supervisor_restart(tmp_path: Path) -> None:
    h = Harness(out_dir=tmp_path)
    h.step(h.hb("R1", PackMLState.EXECUTE))
    fault(h, "R1", permanent=True)
    h.step(h.hb("R1", PackMLState.ABORTED))
    h.sup.close()  # killed: a new supervisor comes back from the journal
    again = Harness(out_dir=None)
    again.sup = Supervisor(h.sup.cell, out_dir=tmp_path, restore=True)
    again.k = h.k + HOUR_TICKS
    try:
        assert failed_for_good(again.sup.robots["R1"])
        for _ in range(3):
            again.k += 24
            assert commands(again.step(again.hb("R1", PackMLState.ABORTED))) == []
    finally:
        again.sup.close()


def test_an_operator_who_clears_it_hands_it_back() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    fault(h, "R1", permanent=True)
    h.step(h.hb("R1", PackMLState.ABORTED))
    sent, _ = request(h, ControlRequest("op-1", ControlCommand.ROBOT, "R1", "Clear"))
    assert set(commands(sent)) == {PackMLCommand.CLEAR}
    # until the robot answers, the supervisor sends it nothing of its own (no second Clear)
    assert commands(h.step(h.hb("R1", PackMLState.ABORTED))) == []
    h.k += 3 * 24  # even past the retry interval: only the operator's Clear is repeated
    assert commands(h.step(h.hb("R1", PackMLState.ABORTED))) == [PackMLCommand.CLEAR]
    sent = h.step(("R1", CommandReply("op-1", "R1", True, PackMLState.CLEARING, "")))
    assert commands(sent) == []
    assert not failed_for_good(h.sup.robots["R1"])
    assert not h.sup.robots["R1"].manual  # from here the supervisor brings it up again
    sent = h.step(h.hb("R1", PackMLState.STOPPED))
    assert commands(sent) == [PackMLCommand.RESET]


def test_a_start_the_robot_refuses_leaves_a_robot_an_operator_stopped_alone() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    sent, _ = request(h, ControlRequest("op-1", ControlCommand.ROBOT, "R1", "Stop"))
    assert commands(sent) == [PackMLCommand.STOP]
    h.step(("R1", CommandReply("op-1", "R1", True, PackMLState.STOPPING, "")))
    h.step(h.hb("R1", PackMLState.STOPPED))
    sent, _ = request(h, ControlRequest("op-2", ControlCommand.ROBOT, "R1", "Start"))
    assert commands(sent) == [PackMLCommand.START]
    why = "Start refused in state Stopped"
    h.step(("R1", CommandReply("op-2", "R1", False, PackMLState.STOPPED, why)))
    assert h.sup.robots["R1"].manual
    for _ in range(3):  # the supervisor does not Reset it behind the operator's back
        h.k += 24
        assert commands(h.step(h.hb("R1", PackMLState.STOPPED))) == []


def grasped_frame(h: Harness, robot: str) -> str:
    """A unit started for frame-0001, its load awarded to ``robot``, which has the frame in hand."""
    h.step(h.hb(robot, PackMLState.EXECUTE))
    spawn = WorldEvent(0, WorldEventKind.SPAWNED, "frame-0001", "frame", "conveyor:infeed", "")
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=(spawn,))
    op_id = next(m.op.op_id for _, m in sent if isinstance(m, CallForBids))
    h.step()
    h.step((robot, Bid(op_id, robot, 10**9)))
    h.step((robot, OpStarted(op_id, robot, h.k * TICK)))
    grasp = WorldEvent(
        h.k * TICK, WorldEventKind.GRASPED, "frame-0001", "frame", f"gripper:{robot}", ""
    )
    h.sensors["infeed.end"] = ""
    h.step(events=(grasp,))
    assert h.sup.ledger.location("frame-0001") == f"gripper:{robot}"
    return op_id


def test_a_unit_in_the_hand_of_a_robot_failed_for_good_is_scrapped_and_its_fixture_freed() -> None:
    h = Harness()
    op_id = grasped_frame(h, "R1")
    fault(h, "R1", permanent=True)
    report = OpReport(
        op_id, "R1", OpStatus.FAILED, "interrupted by command Abort", h.k * TICK, None
    )
    h.step(("R1", report), h.hb("R1", PackMLState.ABORTING))
    unit = h.sup.units["frame-0001"]
    assert unit.rejected and unit.reason == "frame-0001 held by R1, failed for good"
    assert h.sup.ledger.location("frame-0001") == "scrap"
    assert h.sup.ledger.check()
    # the fixture it was meant for takes the next frame
    h.sensors["infeed.end"] = "frame-0002"
    spawn = WorldEvent(
        h.k * TICK, WorldEventKind.SPAWNED, "frame-0002", "frame", "conveyor:infeed", ""
    )
    h.step(events=(spawn,))
    assert h.sup.units["frame-0002"].fixture == unit.fixture


def test_a_robot_with_a_timed_fault_keeps_what_it_holds() -> None:
    h = Harness()
    op_id = grasped_frame(h, "R1")
    fault(h, "R1", permanent=False, duration_s=5.0)
    report = OpReport(
        op_id, "R1", OpStatus.FAILED, "interrupted by command Abort", h.k * TICK, None
    )
    h.step(("R1", report), h.hb("R1", PackMLState.ABORTING))
    assert not h.sup.units["frame-0001"].rejected
    assert h.sup.ledger.location("frame-0001") == "gripper:R1"
    assert h.sup.ops[op_id].part == "frame-0001"
