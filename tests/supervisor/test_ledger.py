"""The ledger invariant: created = shipped + scrapped + WIP, whatever happens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.errors import LedgerError
from supervisor.ledger import Ledger

actions = st.lists(
    st.tuples(
        st.sampled_from(["create", "move", "ship", "scrap"]),
        st.integers(0, 12),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_invariant_holds_under_any_sequence(script: list[tuple[str, int, str]]) -> None:
    led = Ledger()
    for action, n, where in script:
        part = f"p{n}"
        try:
            if action == "create":
                led.create(part, "frame", where)
            elif action == "move":
                led.move(part, where)
            elif action == "ship":
                led.ship(part)
            else:
                led.scrap(part)
        except LedgerError:
            pass
        assert led.check()
        assert led.wip == len(led.live)
        assert sum(led.by_location().values()) == led.wip


def test_a_part_is_never_created_twice() -> None:
    led = Ledger()
    led.create("p", "frame", "x")
    led.ship("p")
    with pytest.raises(LedgerError, match="created twice"):
        led.create("p", "frame", "x")


def test_a_shipped_part_cannot_move() -> None:
    led = Ledger()
    led.create("p", "frame", "x")
    led.scrap("p")
    with pytest.raises(LedgerError, match="not in the cell"):
        led.move("p", "y")
    assert led.location("p") == "scrap"
