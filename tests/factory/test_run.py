"""``lightsout factory run``: two real lines under one coordinator, through the CLI.

The factory is ``factory_2.toml`` with few screens in store, so the run has a
stock-out, a purchase on the reorder point and its lot arriving after the lead
time. What the coordinator says (``kpis.json``, its ``events.jsonl``) is checked
against the lines' own event logs: pull (a line starts only units released to
it), the material balance, the genealogy and the byte-for-byte reproducibility.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from clients.cli import main
from factory.genealogy import DB_NAME, Genealogy

ROOT = Path(__file__).resolve().parents[2]
CELLS = ROOT / "cells"
DURATION = "60"
ORDERS = ["--order", "retail:phone:2:50:rush", "--order", "retail:phone:3:70"]


def low_screens(tmp_path: Path) -> Path:
    """Two lines, each drawing from a store of its own: L1's has one screen, a reorder point
    of 1 and lots of 4 due 20 s after purchase; L2's has plenty."""
    cell = CELLS / "assembly.toml"
    stock = "{ frame = 50, battery = 50, board = 50, screen = %d }"
    text = f"""
[factory]
name = "low"
[stores.a]
role = "parts"
initial = {stock % 1}
reorder_points = {{ screen = 1 }}
[stores.b]
role = "parts"
initial = {stock % 50}
[stores.finished]
role = "finished"
[suppliers.bits_a]
parts = ["frame", "battery", "board"]
lot_size = 50
lead_time_s = 600
store = "a"
[suppliers.glass]
parts = ["screen"]
lot_size = 4
lead_time_s = 20
store = "a"
[suppliers.all_b]
parts = ["frame", "battery", "board", "screen"]
lot_size = 50
lead_time_s = 600
store = "b"
[customers.retail]
products = ["phone"]
store = "finished"
[lines.L1]
cell = "{cell}"
capacity_per_h = 400
draws_from = "a"
delivers_to = "finished"
[lines.L2]
cell = "{cell}"
capacity_per_h = 400
draws_from = "b"
delivers_to = "finished"
"""
    path = tmp_path / "low.toml"
    path.write_text(text)
    return path


def run(tmp_path: Path, name: str, *more: str) -> Path:
    argv = ["factory", "run", str(low_screens(tmp_path)), "--duration", DURATION, *ORDERS, *more]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs"), "--name", name]) == 0
    return tmp_path / "runs" / name


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("factory"), "f")


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def kpis(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "kpis.json").read_text())
    return data


def test_a_line_starts_only_the_units_released_to_it(out: Path) -> None:
    events = jsonl(out / "events.jsonl")
    released: Counter[str] = Counter()
    for e in events:
        if e["kind"] == "order_released":
            released[e["line"]] += e["quantity"]
        elif e["kind"] == "order_withdrawn":
            released[e["line"]] -= e["quantity"]
    assert sum(released.values()) == 5 and len(released) == 2
    for line, n in released.items():
        assert kpis(out)["lines"][line]["released"] == n
        started = [
            e for e in jsonl(out / "lines" / line / "events.jsonl") if e["kind"] == "unit_started"
        ]
        assert len(started) <= n, line
        assert kpis(out)["lines"][line]["built_unreleased"] == 0
    rush = next(e for e in events if e["kind"] == "order_released")
    assert (rush["order"], rush["line"]) == ("O00001", "L1") and rush["reason"].startswith("rush")


def test_a_stock_out_moves_work_to_a_line_that_can_be_served(out: Path) -> None:
    """Both orders are shared out over both lines; L1's store has one screen for the three
    units released to L1: two are withdrawn at once and released to L2, whose store has
    screens; L1 builds the third."""
    events = jsonl(out / "events.jsonl")
    at0 = [e for e in events if e["t_ns"] == 0]
    short = next(e for e in at0 if e["kind"] == "stockout")
    assert (short["line"], short["part_kind"], short["short"]) == ("L1", "screen", 2)
    gone = next(e for e in at0 if e["kind"] == "order_withdrawn")
    assert (gone["line"], gone["quantity"]) == ("L1", 2) and "screen" in gone["reason"]
    releases = [
        (e["order"], e["line"], e["quantity"]) for e in at0 if e["kind"] == "order_released"
    ]
    assert releases == [
        ("O00001", "L1", 1),
        ("O00001", "L2", 1),
        ("O00002", "L1", 2),
        ("O00002", "L2", 1),
        ("O00002", "L2", 2),
    ]
    kinds = [e["kind"] for e in at0]
    assert (
        kinds.index("stockout")
        < kinds.index("order_withdrawn")
        < len(kinds) - 1 - kinds[::-1].index("order_released")
    ), "withdrawn, then released again, in the same step"
    rush = kpis(out)["orders"]["O00001"]
    assert rush["built"] == 2 and rush["shipment"] is not None


def test_the_reorder_point_buys_a_lot_that_arrives_after_the_lead_time(out: Path) -> None:
    events = jsonl(out / "events.jsonl")
    buy = next(e for e in events if e["kind"] == "purchase")
    assert (buy["part_kind"], buy["size"], buy["t_ns"], buy["due_ns"], buy["store"]) == (
        "screen",
        4,
        0,
        20 * 10**9,
        "a",
    )
    got = next(e for e in events if e["kind"] == "lot_received" and e["t_ns"] > 0)
    assert got["t_ns"] == buy["due_ns"] and got["supplier"] == "glass"
    assert kpis(out)["lines"]["L1"]["stockouts"]["screen"] >= 1


def test_the_material_balances_against_the_lines_own_logs(out: Path) -> None:
    """received (the lots) = in store + WIP + consumed + scrapped + shipped, with every term
    but the store's stock counted here from the event logs."""
    k = kpis(out)
    events = jsonl(out / "events.jsonl")
    delivered = {s for e in events if e["kind"] == "shipment" for s in e["units"]}
    received: Counter[str] = Counter()
    for e in events:
        if e["kind"] == "lot_received":
            received[e["part_kind"]] += e["size"]
    counts = {s: Counter[str]() for s in ("wip", "consumed", "scrapped", "shipped")}
    for line in ("L1", "L2"):
        log = jsonl(out / "lines" / line / "events.jsonl")
        kind = {e["part"]: e["part_kind"] for e in log if e["kind"] == "part_created"}
        inside: set[str] = set()
        for e in log:
            if e["kind"] == "unit_shipped":
                state = "shipped" if f"{line}:{e['unit']}" in delivered else "consumed"
                for p in e["parts"]:
                    counts[state][kind[p]] += 1
                    inside.add(p)
            elif e["kind"] in ("unit_scrapped", "part_scrapped"):
                for p in e.get("parts", [e.get("part")]):
                    if p in kind and p not in inside:
                        counts["scrapped"][kind[p]] += 1
                        inside.add(p)
        for p, kd in kind.items():
            if p not in inside:
                counts["wip"][kd] += 1
        for kd, n in k["lines"][line]["line_side"].items():
            counts["wip"][kd] += n
    for kd, row in k["material"].items():
        stock = sum(st["stock"].get(kd, 0) for st in k["stores"].values())
        assert row["received"] == received[kd], kd
        assert {s: row[s] for s in counts} == {s: counts[s][kd] for s in counts}, kd
        assert received[kd] == stock + sum(counts[s][kd] for s in counts), kd
    assert k["material_balanced"] and k["material"]["screen"]["received"] > 3


def test_orders_ship_when_complete_and_trace_names_the_order(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    k = kpis(out)
    rush = k["orders"]["O00001"]
    assert rush["built"] == 2 and rush["shipment"] == "S00001"
    shipment = next(e for e in jsonl(out / "events.jsonl") if e["kind"] == "shipment")
    assert shipment["order"] == "O00001" and len(shipment["units"]) == 2
    assert rush["lateness_s"] == pytest.approx(max(0.0, shipment["t_ns"] / 1e9 - 50), abs=1e-3)
    serial = shipment["units"][0]
    with Genealogy.open(out / DB_NAME) as g:
        t = g.trace(serial)
        assert t is not None and (t.order_id, t.shipment) == ("O00001", "S00001")
        lots = {lot for _p, _k, lot, _s in t.parts}
        assert all(lots) and len(lots) == 4
        for lot in lots:
            assert serial in {u.serial for u in g.recall(lot)}
    assert main(["trace", serial, "--run", str(out)]) == 0
    assert "O00001" in capsys.readouterr().out
    meta = json.loads((out / "factory.json").read_text())
    assert meta["duration_s"] == float(DURATION) and [o["quantity"] for o in meta["orders"]] == [
        2,
        3,
    ]


def test_the_same_factory_seed_and_orders_give_the_same_logs(out: Path, tmp_path: Path) -> None:
    """Run again: the coordinator's log and every line's are the same byte for byte. (With
    ``--processes`` they are too, checked by hand: ten more processes cost the suite ~10 s.)"""
    again = run(tmp_path, "g")
    for rel in ("events.jsonl", "lines/L1/events.jsonl", "lines/L2/events.jsonl"):
        assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ([], "without an order"),
        (["--order", "retail:phone:x:10"], "--order: retail:phone:x:10: QUANTITY"),
        (["--order", "nobody:phone:1:10"], "--order: nobody: unknown customer"),
        (["--order", "retail:phone:0:10"], "--order: quantity"),
        (["--order", "retail:phone:1:10@soon"], "--order: retail:phone:1:10@soon: QUANTITY"),
        (["--order", "retail:phone:1:10@inf"], "--order: retail:phone:1:10@inf: AT_S from 0"),
        ([*ORDERS, "--faults", "L9=x.toml"], "--faults: L9=x.toml: LINE=SCENARIO, LINE one of L1"),
        ([*ORDERS, "--faults", "L1=/nonexistent.toml"], "/nonexistent.toml: cannot read"),
        ([*ORDERS, "--endpoint", "tcp://127.0.0.1:7000"], "tcp control socket needs --keys"),
        ([*ORDERS, "--endpoint", "tcp://127.0.0.1:99999", "--keys", "k"], "port below 65532"),
        ([*ORDERS, "--endpoint", "inproc://f", "--keys", "k"], "ipc://DIR or tcp://HOST:PORT"),
        ([*ORDERS, "--keys", "k"], "--keys is for a tcp --endpoint only"),
        (
            [*ORDERS, "--hosts", "--console", "--endpoint", "tcp://127.0.0.1:7000", "--keys", "k"],
            "--console asks the coordinator over a private ipc socket",
        ),
    ],
)
def test_a_bad_order_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    argv = ["factory", "run", str(CELLS / "factory_2.toml"), "--duration", "10", *extra]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_lines_at_events_fidelity_draw_from_the_stores_too(tmp_path: Path) -> None:
    """Both lines on the discrete-event world: the same coordinator, the same checks."""
    path = low_screens(tmp_path)
    text = path.read_text().replace(
        "capacity_per_h = 400", 'fidelity = "events"\ncapacity_per_h = 400'
    )
    path.write_text(text)
    argv = ["factory", "run", str(path), "--duration", DURATION, *ORDERS, "--name", "e"]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 0
    out = tmp_path / "runs" / "e"
    k = kpis(out)
    assert k["material_balanced"] and k["orders"]["O00001"]["shipment"] is not None
    for line in ("L1", "L2"):
        cell = json.loads((out / "lines" / line / "kpis.json").read_text())
        assert cell["sim"]["fidelity"] == "events" and cell["units_completed"] >= 1
    kinds = [e["kind"] for e in jsonl(out / "events.jsonl")]
    assert "stockout" in kinds and "order_withdrawn" in kinds


def test_an_events_line_without_a_calibration_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.toml"  # the assembly cell with no calibration beside it
    bare.write_text((CELLS / "assembly.toml").read_text())
    path = low_screens(tmp_path)
    text = path.read_text().replace(str(CELLS / "assembly.toml"), str(bare))
    path.write_text(text.replace("[lines.L2]\n", '[lines.L2]\nfidelity = "events"\n'))
    argv = ["factory", "run", str(path), "--duration", "10", *ORDERS]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: lines.L2.fidelity: ") and "\n" not in err, err
    assert "calib" in err
    assert not (tmp_path / "runs").exists()


def test_a_bad_factory_file_is_refused_at_run_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = low_screens(tmp_path)
    path.write_text(path.read_text().replace('store = "b"', 'store = "nowhere"'))
    argv = ["factory", "run", str(path), "--duration", "10", *ORDERS]
    assert main([*argv, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: suppliers.all_b.store: unknown store 'nowhere'"), err
    assert not (tmp_path / "runs").exists()
