"""Factory files: the shipped ones load; broken ones fail at load, through the real CLI,
with one line naming the file, the key and the reason, and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.cli import main
from factory.schema import Fidelity, StoreRole, load_factory

ROOT = Path(__file__).resolve().parents[2]
CELLS = ROOT / "cells"
TWO = CELLS / "factory_2.toml"


def test_the_shipped_factories_load() -> None:
    two, eleven = load_factory(TWO), load_factory(CELLS / "factory_11.toml")
    assert [ln.name for ln in two.lines] == ["L1", "L2"]
    assert len(eleven.lines) == 11
    for spec in (two, eleven):
        assert {ln.fidelity for ln in spec.lines} == {Fidelity.PHYSICS}
        assert spec.part_kinds == ("battery", "board", "frame", "screen")
        assert {s.role for s in spec.stores} == {StoreRole.PARTS, StoreRole.FINISHED}
        assert all(ln.cell.name == "assembly" and ln.products == ("phone",) for ln in spec.lines)


def test_the_shift_factory_is_stocked_for_its_lines_at_full_rate() -> None:
    """``factory_11_events.toml``: eleven events lines, and every part kind's reorder point
    covers what the lines draw at their capacity during its supplier's lead time (a store
    buys one lot at the reorder point, so less would starve the lines every lead time)."""
    spec = load_factory(CELLS / "factory_11_events.toml")
    assert len(spec.lines) == 11
    assert {ln.fidelity for ln in spec.lines} == {Fidelity.EVENTS}
    (store,) = [s for s in spec.stores if s.role is StoreRole.PARTS]
    reorder, initial = dict(store.reorder_points), dict(store.initial)
    per_h = sum(ln.capacity_per_h for ln in spec.lines if ln.draws_from == store.name)
    for supplier in spec.suppliers:
        for kind in supplier.parts:
            drawn = per_h * supplier.lead_time_s / 3600  # one part of each kind per phone
            assert reorder[kind] > drawn, (kind, reorder[kind], drawn)
            assert initial[kind] > reorder[kind], kind


def test_check_says_what_the_factory_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factory", "check", str(TWO)]) == 0
    out = capsys.readouterr().out
    assert "ok: factory phones2: 2 lines" in out


def factory_text(tmp_path: Path) -> str:
    """``factory_2.toml`` with its cell paths made absolute, so it loads from ``tmp_path``."""
    return TWO.read_text().replace('cell = "assembly.toml"', f'cell = "{CELLS / "assembly.toml"}"')


def refused(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Check ``text`` as a factory file through the CLI; the one error line it must give."""
    path = tmp_path / "broken.toml"
    path.write_text(text)
    before = sorted(tmp_path.iterdir())
    assert main(["factory", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: "), "the error names the file"
    assert "\n" not in err, "one line"
    assert sorted(tmp_path.iterdir()) == before, "nothing written"
    return err.removeprefix(f"error: {path}: ")


L1 = '[lines.L1]\ncell = "'


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        # a line whose cell file is missing, or is not a valid cell file
        ('assembly.toml"\nfidelity', 'nope.toml"\nfidelity', "lines.L1.cell", "cannot read"),
        # a part a line needs that no supplier provides
        ('parts = ["screen"]', 'parts = ["glass"]', "lines.L1.draws_from", "part 'screen'"),
        # a store nobody fills
        (
            'store = "finished"\n',
            'store = "finished"\n[stores.spare]\nrole = "parts"\n',
            "stores.spare",
            "nobody fills this store",
        ),
        ("", '[stores.outbound]\nrole = "finished"\n', "stores.outbound", "no line delivers"),
        # bad numbers
        ("lead_time_s = 3600", "lead_time_s = nan", "suppliers.framer.lead_time_s", "finite"),
        ("lead_time_s = 3600", "lead_time_s = inf", "suppliers.framer.lead_time_s", "finite"),
        ("lead_time_s = 3600", "lead_time_s = 1e300", "suppliers.framer.lead_time_s", "at most"),
        ("lead_time_s = 3600", "lead_time_s = -5", "suppliers.framer.lead_time_s", "negative"),
        ("lot_size = 200", "lot_size = 0", "suppliers.framer.lot_size", "at least one part"),
        ("lot_size = 200", "lot_size = -3", "suppliers.framer.lot_size", "whole number"),
        ("capacity_per_h = 400", "capacity_per_h = nan", "lines.L1.capacity_per_h", "finite"),
        (
            "reorder_points = { frame = 200",
            "reorder_points = { frame = -1",
            "stores.inbound.reorder_points.frame",
            "whole number",
        ),
        # names with a slash
        ("[lines.L1]", '[lines."L1/x"]', "lines.L1/x", "a name is"),
        ('name = "phones2"', 'name = "../phones"', "factory.name", "a name is"),
        # what else goes wrong
        ('fidelity = "physics"', 'fidelity = "cartoon"', "lines.L1.fidelity", "not one of"),
        ('draws_from = "inbound"', 'draws_from = "finished"', "lines.L1.draws_from", "not parts"),
        ('role = "finished"', 'role = "finished"\ncolour = 3', "stores.finished.colour", "unknown"),
        (
            'products = ["phone"]',
            'products = ["tablet"]',
            "customers.retail.products[0]",
            "no line makes",
        ),
    ],
)
def test_a_bad_factory_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str, reason: str
) -> None:
    text = factory_text(tmp_path)
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    else:
        text += new
    err = refused(tmp_path, text, capsys)
    assert err.startswith(f"{key}: "), err
    assert reason in err, err


def test_an_invalid_cell_file_names_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "badcell.toml"
    bad.write_text((CELLS / "assembly.toml").read_text().replace("mass = 0.05", "mass = -1", 1))
    text = factory_text(tmp_path).replace(str(CELLS / "assembly.toml"), str(bad), 1)
    err = refused(tmp_path, text, capsys)
    assert err.startswith(f"lines.L1.cell: {bad}: parts.frame.mass: must be positive"), err


def test_a_missing_factory_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["factory", "check", str(tmp_path / "none.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err
