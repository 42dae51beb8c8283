"""A line as the coordinator hears it, stepped by hand: a unit finished is pegged and its
order shipped at the next step; a unit scrapped gives its order a unit back, released again
at the same step; damaged lines are counted, never raised; the heard queue is bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory import lines
from factory.coordinator import Coordinator
from factory.orders import OrderBook
from factory.view import factory_status
from tests.factory.test_coordinator import spec

S = 1_000_000_000


def line(t_s: float, kind: str, **fields: object) -> str:
    rec = {"t_ns": round(t_s * S), "kind": kind, **fields}
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


def fed(coord: Coordinator, n: int) -> list[str]:
    """The line's feeders make ``n`` of every kind (as its world would): the part ids."""
    gate = coord.gates["L1"]
    ids = []
    for feeder, kind in sorted(gate.kind_of.items()):
        for i in range(1, n + 1):
            part = f"{kind}-{i:04d}"
            gate.fed(feeder, part)
            ids.append(part)
    return ids


def test_a_scrap_is_released_again_and_the_order_ships_when_built(tmp_path: Path) -> None:
    coord = Coordinator(spec(tmp_path, screens=50), OrderBook(["phone"]))
    coord.add_order("acme", "phone", 2, due_s=100, t_ns=0)
    coord.step(0)
    assert coord.released("L1") == 2
    fed(coord, 2)
    gate = coord.gates["L1"]
    parts = ["frame-0001", "battery-0001", "board-0001", "screen-0001"]
    gate.hear(line(12, "unit_scrapped", unit="frame-0001", parts=parts, reason="defects"))
    gate.hear(line(13, "unit_shipped", unit="frame-0002", parts=[p[:-1] + "2" for p in parts]))
    coord.step(15 * S)
    (scrapped,) = [e for e in coord.events if e["kind"] == "unit_scrapped"]
    assert (scrapped["serial"], scrapped["order"], scrapped["t_ns"]) == (
        "L1:frame-0001",
        "O00001",
        12 * S,
    )
    again = [e for e in coord.events if e["kind"] == "order_released" and e["t_ns"] == 15 * S]
    assert [(e["order"], e["quantity"]) for e in again] == [("O00001", 1)]
    assert coord.released("L1") == 2 and gate.started == 1 and coord.unstarted("L1") == 1
    assert gate.drawn["frame"] == 3, "one more frame for the unit released again"
    assert coord.material.row("frame")["scrapped"] == 1
    view = factory_status(coord, 15 * S)
    assert view["lines"]["L1"]["scrapped"] == 1 and view["orders"]["O00001"]["built"] == 1
    gate.fed(next(f for f, k in gate.kind_of.items() if k == "frame"), "frame-0003")
    gate.hear(line(40, "unit_shipped", unit="frame-0003", parts=["frame-0003"]))
    coord.step(40 * S)
    (shipment,) = [e for e in coord.events if e["kind"] == "shipment"]
    assert shipment["units"] == ["L1:frame-0002", "L1:frame-0003"] and shipment["t_ns"] == 40 * S
    assert coord.orders.orders["O00001"].scrapped == 1


def test_damaged_lines_are_counted_and_the_queue_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coord = Coordinator(spec(tmp_path), OrderBook(["phone"]))
    gate = coord.gates["L1"]
    for bad in (
        '{"kind":"unit_shipped","t_ns":',  # cut off
        '{"kind":"unit_shipped","t_ns":NaN,"unit":"frame-0001","parts":[]}',
        '{"kind":"unit_shipped","t_ns":1e300,"unit":"frame-0001","parts":[]}',
        '{"kind":"unit_scrapped","t_ns":5,"unit":"frame-0001","parts":"frame-0001"}',
        '{"kind":"part_scrapped","t_ns":5,"part":7}',
    ):
        gate.hear(bad)
    gate.hear('["kind","unit_shipped"]')  # not an event of the kinds it keeps: not decoded
    gate.hear(line(1, "op_done", op="frame-0001/place"))
    assert gate.counters["bad_events"] == 5 and gate.take_heard() == []
    gate.hear(line(1, "unit_shipped", unit="a/b", parts=["a/b"]))  # odd ids: kept, then unknown
    coord.step(5 * S)
    assert not [e for e in coord.events if e["kind"] == "unit_built"]
    assert gate.counters["unknown_units"] == 1
    monkeypatch.setattr(lines, "MAX_HEARD", 3)
    for i in range(5):
        gate.hear(line(i, "part_scrapped", part=f"screen-{i:04d}"))
    assert len(gate.take_heard()) == 3 and gate.counters["heard_dropped"] == 2
