"""The agent's protocol with the supervisor: commands, state changes, heartbeats, bids, awards."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from bus.enums import ExecStep, OpStatus, PackMLCommand, PackMLState
from bus.errors import ConfigError
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    Command,
    CommandReply,
    Heartbeat,
    OpReport,
    OpStarted,
    ReportAck,
    Revoke,
    StateChanged,
)
from bus.simtime import NS
from robots.agent import ACTING_S, RobotAgent
from tests.kit.cells import (
    FA,
    IN,
    MakeRun,
    assembly_cell,
    op,
    runs,
    to_execute,
    tray_and_unit,
)

S, C = PackMLState, PackMLCommand
CELL = assembly_cell()
TICK = CELL.tick_ns


@pytest.fixture
def make_run() -> Iterator[MakeRun]:
    with runs() as make:
        yield make


BATTERY = op(
    "u1/place_battery",
    part="battery-0001",
    kind="battery",
    src="battery_tray",
    dst="F1",
    onto_unit=True,
    offset=(-0.035, 0.0, 0.0),
)


def test_constructor_is_pure_and_names_a_robot_of_the_cell() -> None:
    agent = RobotAgent(CELL, "R2")
    assert agent.role == "robot"
    assert agent.state is S.STOPPED
    with pytest.raises(ConfigError, match="no robot called 'R9'"):
        RobotAgent(CELL, "R9")


def test_reset_and_start_reach_execute_with_a_state_change_each_step(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    changes = [(m.src, m.dst) for m in run.sent(StateChanged)]
    assert changes == [
        (S.STOPPED, S.RESETTING),
        (S.RESETTING, S.IDLE),
        (S.IDLE, S.STARTING),
        (S.STARTING, S.EXECUTE),
    ]
    replies = run.sent(CommandReply)
    assert [(r.cmd_id, r.accepted, r.state) for r in replies] == [
        ("boot-reset", True, S.RESETTING),
        ("boot-start", True, S.STARTING),
    ]


def test_acting_states_complete_after_their_time(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    at = {m.dst: m.t_ns for m in run.sent(StateChanged)}
    starting = at[S.EXECUTE] - at[S.STARTING]
    assert ACTING_S[S.STARTING] * NS <= starting < ACTING_S[S.STARTING] * NS + TICK
    resetting = at[S.IDLE] - at[S.RESETTING]
    assert resetting >= ACTING_S[S.RESETTING] * NS


def test_resetting_takes_the_arm_home(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    world = run.world
    world.q["R2"] = (0.5, 0.2, -0.3, -1.8, 0.2, 1.9, 0.3)
    run.send(Command("c1", "R2", C.RESET))
    assert run.until(lambda: agent.state is S.IDLE)
    assert world.q["R2"] == pytest.approx(agent.kin.home)
    # the homing move took its time at the robot's speed, not a jump
    jumps = [
        max(abs(a - b) for a, b in zip(p.q, q.q, strict=True))
        for (_, p), (_, q) in itertools.pairwise(run.acts)
    ]
    assert max(jumps) < 2.0 * CELL.robot("R2").speed * TICK / NS


def test_refused_command_is_answered_with_the_reason(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    run.send(Command("c1", "R2", C.HOLD))
    run.run(2)
    (reply,) = run.sent(CommandReply)
    assert not reply.accepted
    assert reply.state is S.STOPPED
    assert reply.reason == "Hold refused in state Stopped"
    assert agent.state is S.STOPPED
    assert not run.sent(StateChanged)


def test_repeated_cmd_id_is_answered_again_but_applied_once(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    run.send(Command("a1", "R2", C.ABORT))
    assert run.until(lambda: agent.state is S.ABORTED)
    run.send(Command("c1", "R2", C.CLEAR))
    assert run.until(lambda: agent.state is S.STOPPED)
    # Abort would be legal again in Stopped: a retry of a1 must not apply it
    run.send(Command("a1", "R2", C.ABORT))
    run.run(3)
    assert agent.state is S.STOPPED
    replies = [r for r in run.sent(CommandReply) if r.cmd_id == "a1"]
    assert len(replies) == 2
    assert replies[0] == replies[1]
    assert replies[1].state is S.ABORTING  # the first answer, as it was


def test_heartbeat_on_the_first_tick_then_every_interval(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    run.run(round(2.5 * NS / TICK))
    beats = run.sent(Heartbeat)
    assert beats[0].t_ns == 0
    assert [b.state for b in beats] == [S.STOPPED] * 3
    gaps = [b.t_ns - a.t_ns for a, b in itertools.pairwise(beats)]
    assert all(NS <= g < NS + TICK for g in gaps)


def test_heartbeat_carries_step_and_op(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: any(b.op_id for b in run.sent(Heartbeat)), max_ticks=200)
    beat = next(b for b in run.sent(Heartbeat) if b.op_id)
    assert (beat.state, beat.op_id) == (S.EXECUTE, BATTERY.op_id)
    assert beat.step in (ExecStep.PICK, ExecStep.PLACE)


# ---------------------------------------------------------------- bids


def test_bid_is_a_finish_time_in_the_future(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    run.send(CallForBids(BATTERY))
    run.run(2)
    (bid,) = run.sent(Bid)
    assert bid.op_id == BATTERY.op_id
    assert bid.robot == "R2"
    # a pick and place takes seconds, not ticks nor minutes
    assert run.t_ns + NS < bid.finish_ns < run.t_ns + 15 * NS


def test_bid_declines_when_not_in_execute(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    assert agent.bid(BATTERY) == -1


def test_bid_declines_a_skill_the_robot_lacks(make_run: MakeRun) -> None:
    run = make_run(CELL, "R1")  # R1: pick_place and inspect
    agent = run.agent
    to_execute(run)
    assert agent.bid(op("u1/fasten", FA, at="F1")) == -1
    assert agent.bid(op("u1/inspect", IN, at="F1")) > run.t_ns


def test_bid_declines_a_station_out_of_reach(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")  # R2 stands at y=+0.65: F2 and the outfeed are far
    agent = run.agent
    to_execute(run)
    far = op("u1/unload", part="frame-0001", kind="frame", src="F2", dst="outfeed")
    assert agent.bid(far) == -1
    assert agent.bid(op("u1/fasten", FA, at="F2")) == -1
    assert agent.bid(op("u1/fasten", FA, at="F1")) > run.t_ns
    assert agent.bid(op("x", src="nowhere", dst="F1", kind="battery", part="b")) == -1


def test_bid_accounts_for_work_in_hand_and_declines_a_second_queued_op(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    alone = agent.bid(BATTERY)
    fasten = op("u1/fasten", FA, at="F1")
    alone_fasten = agent.bid(fasten)
    run.send(Award(BATTERY, "R2"))
    run.run(2)
    assert agent.op_id == BATTERY.op_id
    after = agent.bid(fasten)
    assert after > alone_fasten
    assert after > alone  # the battery first, then the screws
    run.send(Award(fasten, "R2"))
    run.run(1)
    assert agent.queued == (fasten.op_id,)
    assert agent.bid(op("u1/fasten2", FA, at="F1")) == -1


# ---------------------------------------------------------------- awards


def test_award_outside_execute_is_refused(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    run.send(Award(BATTERY, "R2"))
    run.run(2)
    (report,) = run.sent(OpReport)
    assert report.status is OpStatus.REFUSED
    assert "not in Execute" in report.detail
    assert not run.sent(OpStarted)


def test_award_of_a_skill_the_robot_lacks_is_refused(make_run: MakeRun) -> None:
    run = make_run(CELL, "R1")
    to_execute(run)
    run.send(Award(op("u1/fasten", FA, at="F1"), "R1"))
    run.run(2)
    (report,) = run.sent(OpReport)
    assert report.status is OpStatus.REFUSED
    assert "cannot fasten" in report.detail


def test_award_for_another_robot_is_ignored(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    run.send(Award(BATTERY, "R3"))
    run.run(3)
    assert not run.sent(OpStarted)
    assert not run.sent(OpReport)


def test_resent_award_is_ignored(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    run.send(Award(BATTERY, "R2"))
    run.send(Award(BATTERY, "R2"))
    run.step()
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: bool(run.sent(OpReport)), max_ticks=400)
    run.run(5)
    assert len(run.sent(OpStarted)) == 1
    assert [r.status for r in run.sent(OpReport)] == [OpStatus.DONE]


def test_a_report_is_resent_with_each_heartbeat_until_acknowledged(make_run: MakeRun) -> None:
    """A lossy link may eat the report or its ack: the robot repeats it until the ack comes."""
    run = make_run(CELL, "R2")
    run.acks = False
    to_execute(run)
    tray_and_unit(run.world)
    run.send(Award(BATTERY, "R2", attempt=2))
    assert run.until(lambda: bool(run.sent(OpReport)), max_ticks=400)
    first = next(t for t, m in run.log if isinstance(m, OpReport))
    run.until(lambda: sum(t > first for t, m in run.log if isinstance(m, Heartbeat)) == 3)
    reports = run.sent(OpReport)
    assert len(reports) == 4  # sent, then again with each of three heartbeats
    assert {(r.op_id, r.status, r.attempt) for r in reports} == {(BATTERY.op_id, OpStatus.DONE, 2)}
    run.send(ReportAck(BATTERY.op_id, "R2", 2))
    run.run(5 * 24)
    assert len(run.sent(Heartbeat)) >= 6
    assert len(run.sent(OpReport)) == 4  # acknowledged: no more


def test_an_award_of_work_done_gets_its_report_not_the_work_again(make_run: MakeRun) -> None:
    """Its report was lost and the supervisor gave it out again: it is done, not redone."""
    run = make_run(CELL, "R2")
    to_execute(run)
    tray_and_unit(run.world)
    run.send(Award(BATTERY, "R2"))
    assert run.until(lambda: bool(run.sent(OpReport)), max_ticks=400)
    run.run(2)
    run.send(Award(BATTERY, "R2", attempt=1))  # taken back and given out again
    run.run(3)
    assert len(run.sent(OpStarted)) == 1
    reports = run.sent(OpReport)
    assert [(r.status, r.attempt) for r in reports] == [(OpStatus.DONE, 0), (OpStatus.DONE, 1)]
    beat = run.sent(Heartbeat)[-1]
    assert beat.op_id == "" and beat.queued == ()


def test_heartbeat_lists_the_awards_in_hand(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    tray_and_unit(run.world)
    fasten = op("u1/fasten", FA, at="F1")
    run.send(Award(BATTERY, "R2"))
    run.send(Award(fasten, "R2"))
    run.step()
    since = run.t_ns
    assert run.until(lambda: any(t >= since for t, m in run.log if isinstance(m, Heartbeat)))
    beat = run.sent(Heartbeat)[-1]
    assert (beat.op_id, beat.queued) == (BATTERY.op_id, (fasten.op_id,))


def test_revoke_drops_a_queued_op_but_not_a_started_one(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    fasten = op("u1/fasten", FA, at="F1")
    run.send(Award(BATTERY, "R2"))
    run.send(Award(fasten, "R2"))
    run.run(2)
    assert agent.queued == (fasten.op_id,)
    run.send(Revoke(fasten.op_id, "R2"))
    run.send(Revoke(BATTERY.op_id, "R2"))
    assert run.until(lambda: bool(run.sent(OpReport)), max_ticks=400)
    run.run(10)
    assert [s.op_id for s in run.sent(OpStarted)] == [BATTERY.op_id]
    assert [(r.op_id, r.status) for r in run.sent(OpReport)] == [(BATTERY.op_id, OpStatus.DONE)]


def test_stop_fails_the_running_op_and_gives_back_the_queued_one(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    fasten = op("u1/fasten", FA, at="F1")
    run.send(Award(BATTERY, "R2"))
    run.send(Award(fasten, "R2"))
    run.run(20)
    run.send(Command("s1", "R2", C.STOP))
    assert run.until(lambda: agent.state is S.STOPPED)
    reports = {r.op_id: r for r in run.sent(OpReport)}
    assert reports[BATTERY.op_id].status is OpStatus.FAILED
    assert reports[BATTERY.op_id].detail == "interrupted by command Stop in Execute"
    assert reports[fasten.op_id].status is OpStatus.REFUSED
    assert agent.op_id == ""
    assert agent.queued == ()


def test_abort_freezes_the_arm_at_once(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    agent = run.agent
    world = run.world
    to_execute(run)
    tray_and_unit(world)
    run.send(Award(BATTERY, "R2"))
    run.run(20)
    run.send(Command("x", "R2", C.ABORT))
    run.step()
    frozen = world.q["R2"]
    assert run.until(lambda: agent.state is S.ABORTED)
    assert world.q["R2"] == frozen
    (report,) = run.sent(OpReport)
    assert (report.status, report.detail) == (
        OpStatus.FAILED,
        "interrupted by command Abort in Execute",
    )
