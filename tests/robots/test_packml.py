"""The PackML machine: every command in every state is accepted exactly when PackML allows it."""

from __future__ import annotations

import functools
from collections import deque

import pytest

from bus.enums import ExecStep, PackMLCommand, PackMLState
from robots.errors import CommandRefused
from robots.packml import ACTING, TRANSITIONS, PackML, Place, describe, markdown_table

S, C, E = PackMLState, PackMLCommand, ExecStep

# What PackML (ISA-TR88.00.02) allows, written out independently of the table.
EXPECTED: dict[PackMLCommand, frozenset[PackMLState]] = {
    C.RESET: frozenset({S.STOPPED, S.COMPLETE}),
    C.START: frozenset({S.IDLE}),
    C.STOP: frozenset(
        {
            S.IDLE,
            S.STARTING,
            S.EXECUTE,
            S.COMPLETING,
            S.COMPLETE,
            S.RESETTING,
            S.HOLDING,
            S.HELD,
            S.UNHOLDING,
            S.SUSPENDING,
            S.SUSPENDED,
            S.UNSUSPENDING,
        }
    ),
    C.HOLD: frozenset({S.EXECUTE, S.SUSPENDED}),
    C.UNHOLD: frozenset({S.HELD}),
    C.SUSPEND: frozenset({S.EXECUTE}),
    C.UNSUSPEND: frozenset({S.SUSPENDED}),
    C.ABORT: frozenset(set(S) - {S.ABORTING, S.ABORTED}),
    C.CLEAR: frozenset({S.ABORTED}),
}

PLACES: tuple[Place, ...] = (*(s for s in S if s is not S.EXECUTE), *E)
"""Every place the machine can be in: the 16 plain states and Execute's 5 sub-states."""

Action = tuple[str, object]


def _apply(m: PackML, action: Action) -> None:
    kind, arg = action
    if kind == "cmd":
        assert isinstance(arg, PackMLCommand)
        m.command(arg)
    elif kind == "sc":
        m.state_complete()
    elif kind == "complete":
        m.complete()
    else:
        assert isinstance(arg, ExecStep)
        m.enter_step(arg)


ACTIONS: tuple[Action, ...] = (
    *(("cmd", c) for c in C),
    ("sc", None),
    ("complete", None),
    *(("step", e) for e in E),
)


@functools.cache
def _paths() -> dict[Place, tuple[Action, ...]]:
    """Shortest action sequence from Stopped to every reachable place (BFS on the real machine)."""
    paths: dict[Place, tuple[Action, ...]] = {S.STOPPED: ()}
    todo: deque[tuple[Action, ...]] = deque([()])
    while todo:
        path = todo.popleft()
        for action in ACTIONS:
            m = PackML()
            for a in path:
                _apply(m, a)
            try:
                _apply(m, action)
            except CommandRefused:
                continue
            if m.place not in paths:
                paths[m.place] = (*path, action)
                todo.append(paths[m.place])
    return paths


def machine_in(place: Place) -> PackML:
    """A fresh machine driven to ``place`` along legal transitions only."""
    m = PackML()
    for a in _paths()[place]:
        _apply(m, a)
    assert m.place == place
    return m


def _state(place: Place) -> PackMLState:
    return S.EXECUTE if isinstance(place, ExecStep) else place


def test_every_place_is_reachable_from_stopped() -> None:
    assert set(_paths()) == set(PLACES)


@pytest.mark.parametrize("cmd", list(C), ids=str)
@pytest.mark.parametrize("place", PLACES, ids=describe)
def test_command_accepted_exactly_when_packml_allows(place: Place, cmd: PackMLCommand) -> None:
    m = machine_in(place)
    legal = _state(place) in EXPECTED[cmd]
    assert m.allowed(cmd) is legal
    if legal:
        m.command(cmd)
        assert m.place != place
        return
    with pytest.raises(CommandRefused) as info:
        m.command(cmd)
    assert str(info.value) == f"{cmd.value} refused in state {describe(place)}"
    assert info.value.command == cmd.value
    assert m.place == place  # a refusal changes nothing
    assert m.refusal(cmd) == str(info.value)


@pytest.mark.parametrize("place", PLACES, ids=describe)
def test_allowed_agrees_with_the_table(place: Place) -> None:
    m = machine_in(place)
    for cmd in C:
        rows = [r for r in TRANSITIONS if r.trigger == cmd.value.lower()]
        covered = any(place in r.sources or _state(place) in r.sources for r in rows)
        assert m.allowed(cmd) is covered


def test_command_destinations() -> None:
    dests = {
        C.RESET: S.RESETTING,
        C.START: S.STARTING,
        C.STOP: S.STOPPING,
        C.HOLD: S.HOLDING,
        C.UNHOLD: S.UNHOLDING,
        C.SUSPEND: S.SUSPENDING,
        C.UNSUSPEND: S.UNSUSPENDING,
        C.ABORT: S.ABORTING,
        C.CLEAR: S.CLEARING,
    }
    for place in PLACES:
        for cmd in C:
            m = machine_in(place)
            if m.allowed(cmd):
                m.command(cmd)
                assert m.state is dests[cmd]


SC_DEST = {
    S.RESETTING: S.IDLE,
    S.STARTING: S.EXECUTE,
    S.COMPLETING: S.COMPLETE,
    S.HOLDING: S.HELD,
    S.UNHOLDING: S.EXECUTE,
    S.SUSPENDING: S.SUSPENDED,
    S.UNSUSPENDING: S.EXECUTE,
    S.STOPPING: S.STOPPED,
    S.ABORTING: S.ABORTED,
    S.CLEARING: S.STOPPED,
}


@pytest.mark.parametrize("state", sorted(SC_DEST), ids=str)
def test_acting_states_complete_to_the_next_state(state: PackMLState) -> None:
    m = machine_in(state)
    assert m.acting
    m.state_complete()
    assert m.state is SC_DEST[state]


def test_acting_set_is_the_ten_acting_states() -> None:
    assert set(SC_DEST) == ACTING


@pytest.mark.parametrize("place", [p for p in PLACES if _state(p) not in ACTING], ids=describe)
def test_state_complete_refused_in_waiting_states(place: Place) -> None:
    m = machine_in(place)
    with pytest.raises(CommandRefused, match="state complete refused in state"):
        m.state_complete()


def _to_pick() -> PackML:
    m = machine_in(E.WAITING)
    m.enter_step(E.PICK)
    return m


@pytest.mark.parametrize(
    "pause",
    [
        [C.HOLD],
        [C.SUSPEND],
        [C.SUSPEND, "sc", C.HOLD],
    ],
    ids=["hold", "suspend", "suspend-then-hold"],
)
def test_unhold_and_unsuspend_return_to_the_skill_step(pause: list[object]) -> None:
    m = _to_pick()
    m.enter_step(E.PLACE)
    for p in pause:
        if p == "sc":
            m.state_complete()
        else:
            assert isinstance(p, PackMLCommand)
            m.command(p)
    m.state_complete()
    assert m.state in (S.HELD, S.SUSPENDED)
    assert m.step is E.WAITING  # outside Execute there is no step
    m.command(C.UNHOLD if m.state is S.HELD else C.UNSUSPEND)
    m.state_complete()
    assert m.place is E.PLACE


def test_start_enters_execute_waiting() -> None:
    m = machine_in(S.STARTING)
    m.state_complete()
    assert (m.state, m.step) == (S.EXECUTE, E.WAITING)


def test_skill_steps_follow_the_table() -> None:
    m = machine_in(E.WAITING)
    with pytest.raises(CommandRefused, match=r"step place refused in state Execute \(waiting\)"):
        m.enter_step(E.PLACE)
    m.enter_step(E.PICK)
    m.enter_step(E.PLACE)
    m.enter_step(E.WAITING)
    m.enter_step(E.FASTEN)
    with pytest.raises(CommandRefused):
        m.enter_step(E.INSPECT)


def test_steps_are_refused_outside_execute() -> None:
    m = machine_in(S.IDLE)
    with pytest.raises(CommandRefused, match="step pick refused in state Idle"):
        m.enter_step(E.PICK)


def test_every_change_is_reported_with_its_reason() -> None:
    seen: list[tuple[Place, Place, str]] = []

    def record(src: Place, dst: Place, reason: str) -> None:
        seen.append((src, dst, reason))

    m = PackML(on_change=record)
    m.command(C.RESET)
    m.state_complete()
    with pytest.raises(CommandRefused):
        m.command(C.HOLD)
    assert seen == [
        (S.STOPPED, S.RESETTING, "command Reset"),
        (S.RESETTING, S.IDLE, "state complete"),
    ]


def test_table_covers_every_state_and_command() -> None:
    places = {p for row in TRANSITIONS for p in (*row.sources, row.dest)}
    assert set(S) <= places | {S.EXECUTE}
    assert {c.value.lower() for c in C} <= {row.trigger for row in TRANSITIONS}
    assert PackML.table() is TRANSITIONS


def test_markdown_table_lists_every_row() -> None:
    text = markdown_table()
    assert len(text.splitlines()) == len(TRANSITIONS) + 2
    assert "| hold | Execute, Suspended | Holding |" in text
