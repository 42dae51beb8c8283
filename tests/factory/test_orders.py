"""Orders: release pulls by room and availability, rush and due order, pegging, withdrawal,
shipping and lateness; bad orders are one clear error."""

from __future__ import annotations

import dataclasses

import pytest

from bus.errors import ConfigError
from factory.orders import LineView, OrderBook, plan_releases, window

S = 1_000_000_000
HORIZON = 600.0  # s: a 360 units/h line may hold 60 released units


def lines(book: OrderBook, *, down: tuple[str, ...] = ()) -> list[LineView]:
    return [LineView(n, ("phone",), 360.0, n not in down, book.open_units(n)) for n in ("L1", "L2")]


def book() -> OrderBook:
    return OrderBook(["phone"])


def release(b: OrderBook, now: int = 0, down: tuple[str, ...] = ()) -> None:
    b.release(plan_releases(list(b.orders.values()), lines(b, down=down), horizon_s=HORIZON), now)


def test_an_order_is_shared_out_evenly_as_far_as_room_allows() -> None:
    b = book()
    b.add("acme", "phone", 7, due_s=3600, now_ns=0)
    release(b)
    assert [(p.line, p.quantity) for p in b.production] == [("L1", 4), ("L2", 3)]
    b.add("acme", "phone", 100, due_s=3600, now_ns=0)
    release(b)
    assert [(p.line, p.quantity) for p in b.production[2:]] == [("L2", 50), ("L1", 50)]
    b.add("acme", "phone", 20, due_s=3600, now_ns=0)
    release(b)
    assert [(p.line, p.quantity) for p in b.production[4:]] == [("L2", 7), ("L1", 6)]
    assert b.orders["O00003"].unreleased == 7, "no room left: the rest waits"


def test_release_pulls_only_the_room_each_line_has() -> None:
    b = book()
    b.add("acme", "phone", 150, due_s=3600, now_ns=0)
    release(b)
    assert window(360.0, HORIZON) == 60
    assert [(p.line, p.quantity) for p in b.production] == [("L1", 60), ("L2", 60)]
    assert b.orders["O00001"].unreleased == 30
    release(b)
    assert len(b.production) == 2, "no room, nothing more released"
    for i in range(10):
        b.built("L2", "phone", f"L2:u{i}")
    release(b, 5 * S)
    assert [(p.line, p.quantity) for p in b.production[2:]] == [("L2", 10)]


def test_rush_then_earliest_due_go_first() -> None:
    b = book()
    b.add("a", "phone", 100, due_s=900, now_ns=0)
    b.add("b", "phone", 100, due_s=300, now_ns=0)
    b.add("c", "phone", 100, due_s=5000, now_ns=0, rush=True)
    release(b)
    assert [(p.order_id, p.line, p.quantity) for p in b.production] == [
        ("O00003", "L1", 50),
        ("O00003", "L2", 50),
        ("O00002", "L1", 10),
        ("O00002", "L2", 10),
    ]
    b.rush("O00001")
    for p in list(b.production):
        for i in range(p.quantity):
            b.built(p.line, "phone", f"{p.po_id}-{i}")
    release(b)
    assert b.production[4].order_id == "O00001", "a rushed order jumps the queue"


def test_a_line_down_gets_nothing_and_its_open_work_is_released_elsewhere() -> None:
    b = book()
    b.add("acme", "phone", 50, due_s=3600, now_ns=0)
    release(b, down=("L2",))
    assert [(p.line, p.quantity) for p in b.production] == [("L1", 50)]
    b.built("L1", "phone", "L1:u1")
    assert b.withdraw("L1") == 49 and b.orders["O00001"].unreleased == 49
    release(b, S, down=("L1",))
    assert [(p.line, p.quantity) for p in b.production[1:]] == [("L2", 49)]


def test_units_are_pegged_and_an_unreleased_unit_is_counted() -> None:
    b = book()
    b.add("acme", "phone", 2, due_s=10, now_ns=0)
    release(b, down=("L2",))
    assert b.built("L1", "phone", "L1:a") is not None
    assert b.built("L1", "phone", "L1:b") is not None
    assert b.built("L1", "phone", "L1:c") is None
    assert b.unreleased_units == {"L1": ["L1:c"]}
    (o,) = b.complete()
    sh = b.ship(o.order_id, 25 * S)
    assert sh.serials == ("L1:a", "L1:b") and o.shipment == sh.shipment
    assert o.lateness_s(99 * S) == 15.0 and b.complete() == []


def test_an_open_order_is_late_from_its_due_time() -> None:
    b = book()
    o = b.add("acme", "phone", 1, due_s=10, now_ns=0)
    assert o.lateness_s(5 * S) == 0 and o.lateness_s(12 * S) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"product": "tablet"}, "product"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"due_s": float("nan")}, "due"),
        ({"due_s": 1e300}, "due"),
        ({"due_s": -1.0}, "due"),
        ({"customer": "a/b"}, "customer"),
        ({"order_id": "../x"}, "order"),
    ],
)
def test_a_bad_order_is_one_clear_error(kwargs: dict[str, object], key: str) -> None:
    args: dict[str, object] = {"customer": "acme", "product": "phone", "quantity": 3}
    args.update(kwargs)
    opts: dict[str, object] = {"due_s": 60.0, "order_id": ""}
    for k in ("due_s", "order_id"):
        if k in args:
            opts[k] = args.pop(k)
    with pytest.raises(ConfigError) as info:
        book().add(**args, now_ns=0, **opts)  # type: ignore[arg-type]
    assert info.value.key == key and "\n" not in str(info.value)


def test_withdraw_takes_back_at_most_its_limit_newest_first() -> None:
    b = book()
    b.add("a", "phone", 10, due_s=100, now_ns=0)
    b.add("b", "phone", 10, due_s=200, now_ns=0)
    release(b, down=("L2",))
    assert [(p.order_id, p.quantity) for p in b.production] == [("O00001", 10), ("O00002", 10)]
    assert b.withdraw("L1", 12) == 12
    assert (b.orders["O00001"].unreleased, b.orders["O00002"].unreleased) == (2, 10)
    assert b.open_units("L1") == 8


def test_a_unit_built_before_an_order_was_released_does_not_serve_it() -> None:
    b = book()
    b.add("a", "phone", 1, due_s=900, now_ns=0)
    release(b, down=("L2",))
    b.add("b", "phone", 1, due_s=10, now_ns=0, rush=True)
    release(b, 50 * S, down=("L2",))
    first = b.built("L1", "phone", "L1:u1", 30 * S)
    assert first is not None and first.order_id == "O00001", "the rush order was not out yet"
    second = b.built("L1", "phone", "L1:u2", 60 * S)
    assert second is not None and second.order_id == "O00002"


def test_of_two_lines_with_the_same_room_the_less_busy_gets_the_unit() -> None:
    """A unit scrapped on L1 and given back to its order: L1 still works on two, L2 on none,
    both with the same room; the unit goes to L2 (by name alone it would go to L1)."""
    book = OrderBook(["phone"])
    book.add("acme", "phone", 1, due_s=100, now_ns=0)
    busy = LineView("L1", ("phone",), 360.0, True, 0, in_work=2)
    idle = LineView("L2", ("phone",), 360.0, True, 0, in_work=0)
    (d,) = plan_releases(list(book.orders.values()), [busy, idle], horizon_s=120)
    assert (d.line, d.quantity) == ("L2", 1)
    (d,) = plan_releases(
        list(book.orders.values()), [busy, dataclasses.replace(idle, in_work=2)], horizon_s=120
    )
    assert d.line == "L1"
