"""``lightsout factory audit``: a real factory run audited from its files, then the same run's
files damaged, each damage caught by the check it breaks.

The run is the two lines of ``test_run.low_screens`` at events fidelity: L1's store holds
one screen, so L1 runs out and waits for lots; one order is due before the lines could have
built it. Everything the audit says is recounted from the event logs, so each test below
edits a log the way a bookkeeping error would and expects the failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from clients.cli import main
from factory.audit import audit_factory
from tests.factory.test_run import low_screens

ORDERS = ["--order", "retail:phone:2:60:rush", "--order", "retail:phone:14:90"]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("audit")
    path = low_screens(tmp)
    text = path.read_text().replace(
        "capacity_per_h = 400", 'capacity_per_h = 400\nfidelity = "events"'
    )
    path.write_text(text)
    argv = ["factory", "run", str(path), "--duration", "240", "--seed", "1", *ORDERS]
    assert main([*argv, "--runs-dir", str(tmp / "runs"), "--name", "a"]) == 0
    return tmp / "runs" / "a"


def copy(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    return dst


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))


def checks(run: Path) -> dict[str, bool]:
    return {c.name.split()[0] + " " + c.name.split()[1]: c.ok for c in audit_factory(run)[0]}


def test_the_real_run_passes_and_its_late_order_is_explained(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["factory", "audit", "--run", str(out)]) == 0
    text = capsys.readouterr().out
    assert "material balances" in text and "FAIL" not in text
    _checks, verdicts = audit_factory(out)
    by = {v.order: v for v in verdicts}
    assert by["O00001"].verdict == "on time"  # the rush order goes first
    late = by["O00002"]
    assert late.verdict == "late" and late.shipped_s is not None
    assert late.shipped_s > late.due_s and late.explained
    assert any(w.startswith("stock-outs: screen on L1") for w in late.why), late.why


def test_a_unit_its_line_never_shipped_fails_the_shipments_and_the_material(
    out: Path, tmp_path: Path
) -> None:
    run = copy(out, tmp_path)
    log = run / "lines" / "L2" / "events.jsonl"
    events = lines_of(log)
    shipped = [e for e in events if e["kind"] == "unit_shipped"]
    events.remove(shipped[0])
    write(log, events)
    got = checks(run)
    assert got == {"material balances": False, "every shipment": False, "every order": True}


def test_a_serial_shipped_twice_fails(out: Path, tmp_path: Path) -> None:
    run = copy(out, tmp_path)
    events = lines_of(run / "events.jsonl")
    a, b = [e for e in events if e["kind"] == "shipment"]
    b["units"] = [*b["units"][:-1], a["units"][0]]
    write(run / "events.jsonl", events)
    c = next(c for c in audit_factory(run)[0] if c.name.startswith("every shipment"))
    assert not c.ok and f"{a['units'][0]} shipped twice" in c.detail


def test_a_late_order_with_no_evidence_is_unexplained(out: Path, tmp_path: Path) -> None:
    """The order of 14 given a due time at its last unit and its shipment held back 50 s, and
    L1's stock-outs taken out of the log: nothing in its window held it back then (no
    stock-out, no fault, and the lines built all it and the rush order needed by its due
    time), so the audit fails."""
    run = copy(out, tmp_path)
    events = [e for e in lines_of(run / "events.jsonl") if e["kind"] != "stockout"]
    ship = next(e for e in events if e["kind"] == "shipment" and e["order"] == "O00002")
    order = next(e for e in events if e["kind"] == "order_added" and e["order"] == "O00002")
    order["due_ns"] = ship["t_ns"]
    ship["t_ns"] += 50_000_000_000
    write(run / "events.jsonl", events)
    _checks, verdicts = audit_factory(run)
    v = next(v for v in verdicts if v.order == "O00002")
    assert v.verdict == "late" and not v.explained, v.why
    assert main(["factory", "audit", "--run", str(run)]) == 1


def test_parts_that_vanish_from_a_store_fail_the_material(out: Path, tmp_path: Path) -> None:
    run = copy(out, tmp_path)
    k = json.loads((run / "kpis.json").read_text())
    k["stores"]["b"]["stock"]["frame"] -= 3
    (run / "kpis.json").write_text(json.dumps(k))
    c = next(c for c in audit_factory(run)[0] if c.name.startswith("material"))
    assert not c.ok and "frame: received" in c.detail and "accounted for" in c.detail


def test_not_a_factory_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factory", "audit", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kpis.json: missing" in err[0]


@pytest.mark.parametrize("damage", ["not json", '{"lines": {}}', "[1, 2]"])
def test_damaged_results_are_one_line(
    out: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy(out, tmp_path)
    (run / "kpis.json").write_text(damage)
    assert main(["factory", "audit", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run}"), err
