"""A unit scrapped in a line is released again: the coordinator hears the scrap from the
line while it runs, logs it, gives the unit back to its order and releases it by pull, so
the order is still delivered, and the scrapped parts count in the material balance.

Line L1's R3 screwdriver wears (``worn_tool.toml``): the units it fastens fail their torque
audit and are scrapped until it is maintained. Everything is checked against the line's own
event log.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clients.cli import main
from tests.factory.kit import events_factory, jsonl, kpis

HERE = Path(__file__).resolve().parent
QUANTITY = 6


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("factory-scrap")
    argv = ["factory", "run", str(events_factory(tmp)), "--duration", "120"]
    argv += ["--order", f"retail:phone:{QUANTITY}:100"]
    argv += ["--faults", f"L1={HERE / 'worn_tool.toml'}", "--runs-dir", str(tmp), "--name", "s"]
    assert main(argv) == 0
    return tmp / "s"


def test_each_scrapped_unit_is_logged_and_released_again(out: Path) -> None:
    line = jsonl(out / "lines" / "L1" / "events.jsonl")
    scrapped = [e for e in line if e["kind"] == "unit_scrapped"]
    assert len(scrapped) >= 1 and all(e["reason"].startswith("defects") for e in scrapped)
    events = jsonl(out / "events.jsonl")
    seen = [e for e in events if e["kind"] == "unit_scrapped"]
    assert [(e["serial"], e["t_ns"]) for e in seen] == [
        (f"L1:{e['unit']}", e["t_ns"]) for e in scrapped
    ]
    for e in seen:
        assert e["order"] == "O00001" and e["action"] == "one more unit of O00001 to release"
        again = [r for r in events if r["kind"] == "order_released" and r["t_ns"] >= e["t_ns"]]
        assert again, f"{e['serial']} scrapped and nothing released after it"
    released = Counter[str]()
    for e in events:
        if e["kind"] == "order_released":
            released[e["order"]] += e["quantity"]
        elif e["kind"] == "order_withdrawn":
            released["O00001"] -= e["quantity"]
    assert released["O00001"] == QUANTITY + len(seen)


def test_the_order_is_still_delivered_without_a_scrapped_unit(out: Path) -> None:
    k = kpis(out)
    order = k["orders"]["O00001"]
    assert order["built"] == QUANTITY and order["shipment"] == "S00001"
    assert order["scrapped"] == k["lines"]["L1"]["units_scrapped"] >= 1
    (shipment,) = [e for e in jsonl(out / "events.jsonl") if e["kind"] == "shipment"]
    scrapped = {e["serial"] for e in jsonl(out / "events.jsonl") if e["kind"] == "unit_scrapped"}
    assert len(shipment["units"]) == QUANTITY and not scrapped & set(shipment["units"])


def test_scrap_consumes_material_and_the_factory_balances(out: Path) -> None:
    line = jsonl(out / "lines" / "L1" / "events.jsonl")
    kind = {e["part"]: e["part_kind"] for e in line if e["kind"] == "part_created"}
    lost = Counter[str]()
    for e in line:
        if e["kind"] == "unit_scrapped":
            lost.update(kind[p] for p in e["parts"])
        elif e["kind"] == "part_scrapped":
            lost[kind[e["part"]]] += 1
    k = kpis(out)
    assert {kd: row["scrapped"] for kd, row in k["material"].items()} == {
        kd: lost[kd] for kd in k["material"]
    }
    assert k["material_balanced"] and lost["frame"] >= 1
