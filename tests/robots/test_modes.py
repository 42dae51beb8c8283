"""PackML unit modes: the mode table walked through the real machine, and an agent in
Maintenance that takes no production work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.enums import PackMLCommand, PackMLState, UnitMode
from bus.messages import (
    Award,
    Bid,
    CallForBids,
    Command,
    CommandReply,
    Heartbeat,
    ModeChanged,
    OpReport,
    RobotAct,
    SetMode,
)
from robots.errors import CommandRefused
from robots.packml import MODE_CHANGES, MODE_STATES, ModeChange, PackML, mode_markdown_table
from tests.kit.cells import MakeRun, assembly_cell, op, runs, to_execute

S, C, M = PackMLState, PackMLCommand, UnitMode
CELL = assembly_cell()
BATTERY = op(
    "u1/place_battery",
    part="battery-0001",
    kind="battery",
    src="battery_tray",
    dst="F1",
    onto_unit=True,
    offset=(-0.035, 0.0, 0.0),
)

ROUTES: dict[PackMLState, tuple[PackMLCommand | str, ...]] = {
    S.STOPPED: (),
    S.RESETTING: (C.RESET,),
    S.IDLE: (C.RESET, "sc"),
    S.STARTING: (C.RESET, "sc", C.START),
    S.EXECUTE: (C.RESET, "sc", C.START, "sc"),
    S.HOLDING: (C.RESET, "sc", C.START, "sc", C.HOLD),
    S.HELD: (C.RESET, "sc", C.START, "sc", C.HOLD, "sc"),
    S.SUSPENDED: (C.RESET, "sc", C.START, "sc", C.SUSPEND, "sc"),
    S.STOPPING: (C.RESET, "sc", C.STOP),
    S.ABORTING: (C.ABORT,),
    S.ABORTED: (C.ABORT, "sc"),
    S.CLEARING: (C.ABORT, "sc", C.CLEAR),
    S.COMPLETING: (C.RESET, "sc", C.START, "sc", "complete"),
    S.COMPLETE: (C.RESET, "sc", C.START, "sc", "complete", "sc"),
}
"""How to bring a fresh machine to each state, by its real commands and completions."""


def machine_in(state: PackMLState, changes: list[tuple[UnitMode, UnitMode, str]]) -> PackML:
    m = PackML(on_mode=lambda src, dst, why: changes.append((src, dst, why)))
    for step in ROUTES[state]:
        if step == "sc":
            m.state_complete()
        elif step == "complete":
            m.complete()
        else:
            assert isinstance(step, PackMLCommand)
            m.command(step)
    assert m.state is state
    return m


@pytest.mark.parametrize("state", sorted(ROUTES, key=lambda s: s.value))
@pytest.mark.parametrize("row", MODE_CHANGES, ids=lambda r: f"{r.src.value}-{r.dst.value}")
def test_a_mode_changes_only_in_the_states_the_table_allows(
    state: PackMLState, row: ModeChange
) -> None:
    changes: list[tuple[UnitMode, UnitMode, str]] = []
    m = machine_in(state, changes)
    if row.src is not M.PRODUCTION:
        m._mode = row.src  # the table's row starts in its own mode
    if state in row.states:
        m.set_mode(row.dst, reason="test")
        assert m.mode is row.dst and m.state is state, "a mode change moves no state"
        assert changes == [(row.src, row.dst, "test")]
    else:
        with pytest.raises(CommandRefused, match=f"mode {row.dst.value} refused in state"):
            m.set_mode(row.dst)
        assert m.mode is row.src and not changes


def test_the_mode_states_are_the_wait_states_where_nothing_moves() -> None:
    assert {S.STOPPED, S.IDLE, S.HELD, S.COMPLETE, S.ABORTED} == MODE_STATES
    assert {(r.src, r.dst) for r in MODE_CHANGES} == {
        (a, b) for a in UnitMode for b in UnitMode if a is not b
    }
    table = mode_markdown_table()
    assert "| Production | Maintenance | Stopped, Idle, Complete, Held, Aborted |" in table


def test_the_same_mode_again_is_no_change_in_any_state() -> None:
    changes: list[tuple[UnitMode, UnitMode, str]] = []
    m = machine_in(S.EXECUTE, changes)
    m.set_mode(M.PRODUCTION)
    assert m.mode is M.PRODUCTION and not changes


@pytest.fixture
def make_run() -> Iterator[MakeRun]:
    with runs() as make:
        yield make


def test_an_agent_in_maintenance_declines_bids_and_refuses_awards(make_run: MakeRun) -> None:
    run = make_run(CELL, "R2")
    to_execute(run)
    run.send(SetMode("m1", "R2", M.MAINTENANCE))
    run.step()
    reply = run.sent(CommandReply)[-1]
    assert (reply.cmd_id, reply.accepted) == ("m1", False), "not in Execute"
    assert "mode Maintenance refused in state Execute" in reply.reason
    run.send(Command("stop", "R2", C.STOP))
    assert run.until(lambda: run.agent.state is S.STOPPED)
    run.send(SetMode("m2", "R2", M.MAINTENANCE))
    act = run.step()
    assert isinstance(act, RobotAct) and act.mode is M.MAINTENANCE
    assert run.sent(CommandReply)[-1].accepted
    assert [(c.src, c.dst) for c in run.sent(ModeChanged)] == [(M.PRODUCTION, M.MAINTENANCE)]
    # in Maintenance a robot may be reset and started (to test it), but takes no work
    run.send(Command("reset", "R2", C.RESET))
    assert run.until(lambda: run.agent.state is S.IDLE)
    run.send(Command("start", "R2", C.START))
    assert run.until(lambda: run.agent.state is S.EXECUTE)
    run.send(CallForBids(BATTERY))
    run.step()
    assert run.sent(Bid)[-1].finish_ns == -1
    run.send(Award(BATTERY, "R2"))
    run.step()
    report = run.sent(OpReport)[-1]
    assert report.status.value == "refused" and "in mode Maintenance" in report.detail
    assert run.until(
        lambda: bool(run.sent(Heartbeat)) and run.sent(Heartbeat)[-1].mode is M.MAINTENANCE
    )


def test_a_mode_command_sent_twice_is_applied_once(make_run: MakeRun) -> None:
    run = make_run(CELL, "R3")
    run.step()
    run.send(SetMode("m1", "R3", M.MANUAL))
    run.step()
    run.send(SetMode("m1", "R3", M.MANUAL))
    run.step()
    assert len(run.sent(ModeChanged)) == 1
    assert [r.accepted for r in run.sent(CommandReply)] == [True, True]
    run.send(SetMode("m3", "R3", M.PRODUCTION))
    run.step()
    assert run.agent.packml.mode is M.PRODUCTION


def test_the_protocol_page_shows_the_mode_table_as_the_code_has_it() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    assert mode_markdown_table() in text
