"""The KPI tables a headless run prints: OEE, MTBF, MTTR and the faults too."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from clients.kpi_table import kpi_tables
from tests.clients.runkit import fault_kpis, old_kpis


def text_of(kpis: dict[str, Any]) -> str:
    console = Console(record=True, width=200)
    for table in kpi_tables(kpis):
        console.print(table)
    return console.export_text()


def line_of(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if label in line)


def test_the_cell_table_shows_oee_reliability_and_faults() -> None:
    kpis = fault_kpis()
    text = text_of(kpis)
    oee = kpis["oee"]
    assert f"{100 * oee['oee']:.1f}%" in line_of(text, "OEE")
    assert f"{100 * oee['availability']:.1f}% x" in line_of(text, "OEE")
    assert f"2 / {kpis['mtbf_s']:.1f} s / {kpis['mttr_s']:.1f} s" in line_of(text, "MTBF")
    assert "1 / 1 / 1" in line_of(text, "faults injected")
    r2 = kpis["robots"]["R2"]
    assert f"{100 * r2['availability']:.1f}%" in line_of(text, "R2")


def test_a_run_from_before_the_figures_prints_dashes() -> None:
    text = text_of(old_kpis())
    assert "- (- x - x -)" in line_of(text, "OEE")
    assert "- / - / -" in line_of(text, "MTBF")
    assert "0 / 0 / 0" in line_of(text, "faults injected")
