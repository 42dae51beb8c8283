"""Stores, lots and purchases; the material balance against counts kept apart from it."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from factory.schema import SupplierSpec, load_factory
from factory.stores import (
    FinishedStore,
    Material,
    MaterialError,
    PartsStore,
    State,
    open_stores,
    scrap,
)

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
ACME = SupplierSpec("acme", ("screw", "nut"), 10, 60.0, "in")


def store(points: dict[str, int] | None = None) -> tuple[PartsStore, Material]:
    m = Material()
    return PartsStore("in", [ACME], reorder_points=points or {}, material=m), m


def test_parts_come_first_in_first_out_by_lot() -> None:
    s, _m = store()
    a = s.put("screw", 2, 0)
    b = s.put("screw", 1, 5 * S)
    assert (a.lot, b.lot) == ("acme-screw-00000", "acme-screw-00001")
    assert [s.draw("screw", 0) for _ in range(3)] == [a.lot, a.lot, b.lot]
    assert s.draw("screw", 0) is None and s.stockouts["screw"] == 1


def test_the_reorder_point_purchases_a_lot_due_after_the_lead_time() -> None:
    s, m = store({"screw": 4})
    s.put("screw", 6, 0)
    assert s.reorder(0) == []
    for _ in range(2):
        s.draw("screw", S)
    (po,) = s.reorder(7 * S)
    assert (po.supplier, po.kind, po.size, po.due_ns) == ("acme", "screw", 10, 67 * S)
    assert s.reorder(8 * S) == [], "what is on order counts: one purchase, not one per call"
    assert s.receive(66 * S) == [] and s.next_due_ns() == 67 * S
    (lot,) = s.receive(67 * S)
    assert (lot.size, lot.received_ns, s.stock("screw")) == (10, 67 * S, 14)
    assert m.row("screw")["received"] == 16 and m.balanced("screw")


def test_expedite_and_delay_move_the_due_time() -> None:
    s, _m = store({"nut": 0})
    (po,) = s.reorder(0)
    assert s.delay(po.po, 100 * S) and s.next_due_ns() == 100 * S
    assert s.expedite(po.po, 30 * S) and s.next_due_ns() == 30 * S
    assert not s.expedite("PO-none", 0)
    assert [lot.kind for lot in s.receive(30 * S)] == ["nut"]


def test_a_move_out_of_an_empty_state_is_refused() -> None:
    _s, m = store()
    with pytest.raises(MaterialError, match="screw: 1 from wip but only 0"):
        scrap(m, ["screw"])


def test_the_factory_files_opening_stock_is_received_at_zero() -> None:
    spec = load_factory(ROOT / "cells" / "factory_2.toml")
    m = Material()
    stores = open_stores(spec, m)
    assert list(stores) == ["inbound"]
    assert {k: stores["inbound"].stock(k) for k in spec.part_kinds} == dict.fromkeys(
        spec.part_kinds, 600
    )
    assert {lot.supplier for lot in stores["inbound"].received} == {
        "framer",
        "cells_co",
        "glassworks",
    }


@pytest.mark.parametrize("seed", range(5))
def test_the_material_balance_holds_against_independent_counts(seed: int) -> None:
    """Random draws, builds, scraps, shipments and purchases: after every move, each kind's
    counts equal those of a per-part tally kept here, and they balance."""
    rng = random.Random(seed)
    s, m = store({"screw": 5, "nut": 3})
    fin = FinishedStore("out", material=m)
    s.put("screw", 8, 0)
    s.put("nut", 4, 0)
    where: dict[int, tuple[str, str]] = {}  # part -> (kind, state), the tally kept apart
    received: Counter[str] = Counter({"screw": 8, "nut": 4})
    stocked: Counter[str] = Counter({"screw": 8, "nut": 4})
    units: dict[str, list[int]] = {}
    ids = iter(range(1_000_000))
    reached: set[str] = set()
    for step in range(400):
        now = step * S
        for lot in s.receive(now):
            received[lot.kind] += lot.size
            stocked[lot.kind] += lot.size
        s.reorder(now)
        act = rng.choice(["draw", "draw", "draw", "build", "scrap", "ship"])
        wip = [p for p, (_k, st) in where.items() if st == "wip"]
        if act == "draw":
            kind = rng.choice(["screw", "nut"])
            if s.draw(kind, now) is not None:
                where[next(ids)] = (kind, "wip")
                stocked[kind] -= 1
        elif act == "build" and len(wip) >= 2:
            inside = rng.sample(wip, 2)
            serial = f"U{step}"
            fin.put(serial, "widget", [where[p][0] for p in inside])
            for p in inside:
                where[p] = (where[p][0], "consumed")
            units[serial] = inside
        elif act == "scrap" and wip:
            p = rng.choice(wip)
            scrap(m, [where[p][0]])
            where[p] = (where[p][0], "scrapped")
        elif act == "ship" and units:
            serial = rng.choice(sorted(units))
            fin.ship([serial])
            for p in units.pop(serial):
                where[p] = (where[p][0], "shipped")
        for kind in ("screw", "nut"):
            tally = Counter(st for k, st in where.values() if k == kind)
            assert m.row(kind) == {
                "received": received[kind],
                "in_store": stocked[kind],
                "wip": tally["wip"],
                "consumed": tally["consumed"],
                "scrapped": tally["scrapped"],
                "shipped": tally["shipped"],
            }, (step, kind)
            assert s.stock(kind) == stocked[kind]
            assert m.balanced(kind)
            reached.update(st for st, n in m.row(kind).items() if n)
    assert reached == {"received", *State}, "every state was reached"


def test_parts_given_back_keep_their_lots_first_in_first_out() -> None:
    s, m = store()
    a, b = s.put("screw", 1, 0), s.put("screw", 2, 0)
    drawn = [s.draw("screw", 0) for _ in range(3)]
    assert drawn == [a.lot, b.lot, b.lot] and s.stock("screw") == 0
    for lot in reversed(drawn):  # newest first, as a line side gives back
        assert lot is not None
        s.give_back("screw", lot)
    assert [s.draw("screw", 0) for _ in range(3)] == drawn
    assert m.row("screw")["wip"] == 3 and m.balanced("screw")
