"""The coordinator stepped by hand (no line runs): a late supplier lot is found late at its
promised time and expedited from another supplier; every step balances the material."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigError
from factory.coordinator import Arrival, Coordinator
from factory.orders import OrderBook
from factory.schema import load_factory
from factory.supply import LateLot, load_supply

CELL = Path(__file__).resolve().parents[2] / "cells" / "assembly.toml"
S = 1_000_000_000


def spec(tmp_path: Path, screens: int = 2) -> Any:
    path = tmp_path / "f.toml"
    path.write_text(
        f"""
[factory]
name = "late"
[stores.a]
role = "parts"
initial = {{ frame = 50, battery = 50, board = 50, screen = {screens} }}
reorder_points = {{ screen = 2 }}
[stores.done]
role = "finished"
[suppliers.bits]
parts = ["frame", "battery", "board"]
lot_size = 50
lead_time_s = 600
store = "a"
[suppliers.glass]
parts = ["screen"]
lot_size = 4
lead_time_s = 20
store = "a"
[suppliers.glass_fast]
parts = ["screen"]
lot_size = 3
lead_time_s = 10
store = "a"
[customers.acme]
products = ["phone"]
store = "done"
[lines.L1]
cell = "{CELL}"
capacity_per_h = 400
draws_from = "a"
delivers_to = "done"
"""
    )
    return load_factory(path)


def test_a_late_lot_is_expedited_from_another_supplier(tmp_path: Path) -> None:
    f = spec(tmp_path)
    book = OrderBook(["phone"])
    book.add("acme", "phone", 3, due_s=300, now_ns=0)
    c = Coordinator(f, book, late=(LateLot("glass", 1, 60.0),))
    for t in range(0, 100, 5):
        c.step(t * S)
        assert all(c.material.balanced(k) for k in c.material.kinds()), t
    ev = [(e["t_ns"] // S, e["kind"], e.get("supplier"), e.get("reason")) for e in c.events]
    buys = [e for e in ev if e[1] == "purchase"]
    assert buys[0] == (0, "purchase", "glass", "reorder point")
    assert (20, "lot_late", "glass", None) in ev, "found late at its promised time"
    assert (20, "purchase", "glass_fast", "expedite: PO-a-00001 late") in buys
    got = [(e[0], e[2]) for e in ev if e[1] == "lot_received" and e[0] > 0]
    assert got[:2] == [(30, "glass_fast"), (80, "glass")], "the fast lot first, the late one late"
    late = next(e for e in c.events if e["kind"] == "lot_late")
    assert late["action"] == "bought from glass_fast" and late["promised_ns"] == 20 * S
    assert next(e for e in ev if e[1] == "stockout")[0] == 0, "the line was starved meanwhile"


def test_a_lot_on_time_is_not_expedited(tmp_path: Path) -> None:
    f = spec(tmp_path)
    book = OrderBook(["phone"])
    book.add("acme", "phone", 3, due_s=300, now_ns=0)
    c = Coordinator(f, book)
    for t in range(0, 40, 5):
        c.step(t * S)
    kinds = [e["kind"] for e in c.events]
    assert "lot_late" not in kinds
    assert {e["supplier"] for e in c.events if e["kind"] == "purchase"} == {"glass"}


def test_a_bad_supply_file_is_one_line(tmp_path: Path) -> None:
    f = spec(tmp_path)
    path = tmp_path / "s.toml"
    for text, key in (
        ('[[late]]\nsupplier = "nobody"\npurchase = 1\nby_s = 5', "late[0].supplier"),
        ('[[late]]\nsupplier = "glass"\npurchase = 0\nby_s = 5', "late[0].purchase"),
        ('[[late]]\nsupplier = "glass"\npurchase = 1\nby_s = nan', "late[0].by_s"),
        ('[[late]]\nsupplier = "glass"\npurchase = 1\nby_s = 5\nwhy = 1', "late[0].why"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_supply(path, f)
        assert info.value.key == key and str(info.value).startswith(str(path))
    path.write_text('[[late]]\nsupplier = "glass"\npurchase = 2\nby_s = 5')
    assert load_supply(path, f) == (LateLot("glass", 2, 5.0),)


def test_a_rush_order_takes_the_place_of_unstarted_units(tmp_path: Path) -> None:
    """A normal order fills L1's room; a rush order comes in at 10 s: at that step unstarted
    units of the normal order are withdrawn and the rush order is released in their place."""
    f = spec(tmp_path, screens=50)
    arrivals = [
        Arrival(0, "acme", "phone", 30, 3600.0),
        Arrival(8 * S, "acme", "phone", 5, 120.0, rush=True),
    ]
    c = Coordinator(f, OrderBook(["phone"]), arrivals=arrivals)
    for t in range(0, 20, 5):
        c.step(t * S)
    ev = [e for e in c.events if e["kind"] in ("order_added", "order_released", "order_withdrawn")]
    got = [(e["t_ns"] // S, e["kind"], e.get("order"), e.get("quantity")) for e in ev]
    assert got == [
        (0, "order_added", "O00001", 30),
        (0, "order_released", "O00001", 14),
        (10, "order_added", "O00002", 5),
        (10, "order_withdrawn", None, 5),
        (10, "order_released", "O00002", 5),
    ]
    gone = next(e for e in ev if e["kind"] == "order_withdrawn")
    assert gone["reason"] == "room for rush order O00002" and gone["line"] == "L1"
    assert c.orders.orders["O00001"].unreleased == 30 - 14 + 5
    assert c.released("L1") == 14
