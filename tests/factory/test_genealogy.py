"""The genealogy store built from a real cell run: ``recall`` checked against the event log
on its own terms, ``trace`` against the run's operations, both through the CLI."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.enums import WorldEventKind
from cells.launch import RunOptions, run_cell
from clients.cli import main
from factory.genealogy import DB_NAME, Genealogy, read_line_run
from tests.kit.supervisor import BATTERY_OP, World, battery_dropped, lying

LOT = 3
"""Parts per lot in these tests: small, so a short run draws from many lots."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cell: CellSpec) -> Path:
    """A real 80 s run of the assembly cell (one process, seed 3)."""
    out = tmp_path_factory.mktemp("line") / "L1"
    run_cell(cell, out, RunOptions(seed=3, duration_s=80.0))
    return out


def events(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def fifo_lots(run: Path) -> dict[str, str]:
    """Each part's lot: parts of a kind fill lots of ``LOT`` in the order they were made."""
    seen: dict[str, int] = defaultdict(int)
    lots = {}
    for ev in events(run):
        if ev["kind"] == "part_created":
            kind = ev["part_kind"]
            lots[ev["part"]] = f"{kind}-lot{seen[kind] // LOT:03d}"
            seen[kind] += 1
    return lots


@pytest.fixture(scope="module")
def factory_run(run: Path, tmp_path_factory: pytest.TempPathFactory, cell: CellSpec) -> Path:
    """A factory run directory holding the genealogy of line L1 (the run above)."""
    out = tmp_path_factory.mktemp("factory")
    lots = fifo_lots(run)
    products = {r.base: r.product for r in cell.recipes}
    with Genealogy.create(out / DB_NAME) as g:
        g.add_lots(sorted({(lot, "acme", lot.split("-")[0], LOT, 0) for lot in lots.values()}))
        g.add_line("L1", read_line_run(run, products=products), lots)
    return out


def holders(run: Path) -> dict[str, set[str]]:
    """From the event log alone: lot -> every unit holding one of its parts.

    A shipped unit holds the parts its ``unit_shipped`` line lists; any other
    unit holds its base part and every part whose last move put it into the unit.
    """
    lots = fifo_lots(run)
    last: dict[str, str] = {}
    done: dict[str, list[str]] = {}
    started = []
    for ev in events(run):
        if ev["kind"] == "part_moved":
            last[ev["part"]] = ev["dst"]
        elif ev["kind"] in ("unit_shipped", "unit_scrapped"):
            done[ev["unit"]] = ev["parts"]
        elif ev["kind"] == "unit_started":
            started.append(ev["unit"])
    out: dict[str, set[str]] = defaultdict(set)
    for unit in started:
        inside = done.get(unit) or [unit, *(p for p, d in last.items() if d == f"unit:{unit}")]
        for part in inside:
            out[lots[part]].add(f"L1:{unit}")
    return out


def test_recall_lists_exactly_the_units_holding_a_lot(factory_run: Path, run: Path) -> None:
    expected = holders(run)
    shipped = {e["unit"] for e in events(run) if e["kind"] == "unit_shipped"}
    assert len(shipped) >= 4 and any("battery" in lot for lot in expected)
    with Genealogy.open(factory_run / DB_NAME) as g:
        for lot in sorted(set(fifo_lots(run).values())):
            got = {u.serial for u in g.recall(lot)}
            assert got == expected.get(lot, set()), lot
            for u in g.recall(lot):
                assert (u.status == "shipped") == (u.serial.removeprefix("L1:") in shipped)


def test_recall_through_the_cli(
    factory_run: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lot = "screen-lot000"
    assert main(["recall", lot, "--run", str(factory_run), "-q"]) == 0
    listed = capsys.readouterr().out.split()
    assert set(listed) == holders(run)[lot] and len(listed) == LOT


def test_trace_names_the_fixture_robots_and_lots(
    factory_run: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = events(run)
    unit = next(e for e in log if e["kind"] == "unit_shipped")
    serial = f"L1:{unit['unit']}"
    with Genealogy.open(factory_run / DB_NAME) as g:
        t = g.trace(serial)
    assert t is not None and t.status == "shipped" and t.ended_ns == unit["t_ns"]
    start = next(e for e in log if e["kind"] == "unit_started" and e["unit"] == unit["unit"])
    assert t.fixture == start["fixture"] and t.product == "phone"
    done = [
        (e["op"].split("/")[1], e["robot"], e["t_ns"])
        for e in log
        if e["kind"] == "op_done" and e["op"].startswith(unit["unit"] + "/")
    ]
    assert sorted((o.op, o.robot, o.done_ns) for o in t.ops) == sorted(done)
    assert all(o.started_ns <= o.done_ns for o in t.ops)
    lots = fifo_lots(run)
    assert {(p, lot) for p, _k, lot, _s in t.parts} == {(f"L1:{p}", lots[p]) for p in unit["parts"]}
    assert main(["trace", serial, "--run", str(factory_run)]) == 0
    out = capsys.readouterr().out
    assert serial in out and "acme" in out and start["fixture"] in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["trace", "L1:nope-0001"], "no unit with serial 'L1:nope-0001'"),
        (["recall", "no-such-lot"], "no lot 'no-such-lot' was received"),
    ],
)
def test_unknown_serials_and_lots_are_one_line(
    factory_run: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main([*argv, "--run", str(factory_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err


def test_a_run_without_a_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recall", "x", "--run", str(tmp_path)]) == 2
    assert "no genealogy database" in capsys.readouterr().err
    (tmp_path / DB_NAME).write_text("not sqlite at all, " * 100)
    assert main(["trace", "x", "--run", str(tmp_path)]) == 2
    assert "not a genealogy database" in capsys.readouterr().err


def test_a_step_settled_by_a_part_that_landed_counts_for_the_robot_that_carried_it(
    tmp_path: Path,
) -> None:
    """A dropped part that lands on its spot is settled with no robot (``op_settled``,
    ``robot: ""``): the genealogy reads it from the real supervisor's log and names the
    robot that carried it, not a damaged log."""
    w = World(out_dir=tmp_path)
    spot = lying("battery-0001", -0.033, 0.281, 0.1605)
    battery_dropped(
        w, rest=w.event(WorldEventKind.ATTACHED, "battery-0001", "unit:frame-0001", pose=spot)
    )
    for _ in range(20):
        w.step()
    w.sup.close()
    (settled,) = w.log("op_settled")
    assert (settled["op"], settled["robot"], settled["how"]) == (BATTERY_OP, "", "landed")
    rec = read_line_run(tmp_path, products={"frame": "phone"})
    (unit,) = rec.units
    steps = {o.op: o.robot for o in unit.ops}
    assert steps["place_battery"] == "R2"  # it started it, dropped it, and it landed
