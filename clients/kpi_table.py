"""The KPI summary as a rich table: what a headless run prints at its end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _maybe_pct(x: object) -> str:
    return _pct(x) if isinstance(x, int | float) and not isinstance(x, bool) else "-"


def _maybe_s(x: object) -> str:
    return f"{x:.1f} s" if isinstance(x, int | float) and not isinstance(x, bool) else "-"


def _reliability_rows(kpis: dict[str, Any]) -> list[tuple[str, str]]:
    """OEE, MTBF, MTTR and the faults (a ``kpis.json`` from before them shows ``-``)."""
    oee = kpis.get("oee")
    oee = oee if isinstance(oee, dict) else {}
    factors = " x ".join(_maybe_pct(oee.get(k)) for k in ("availability", "performance", "quality"))
    faults = kpis.get("faults")
    faults = faults if isinstance(faults, list) else []
    found = sum(1 for f in faults if isinstance(f, dict) and f.get("detected_at_s") is not None)
    fixed = sum(1 for f in faults if isinstance(f, dict) and f.get("recovered_at_s") is not None)
    q = kpis.get("quality")
    q = q if isinstance(q, dict) else {}
    worst = _worst_robot(q)
    inspected = (
        f"{q.get('inspected', '-')} / {q.get('good', '-')} ({_maybe_pct(q.get('quality'))})"
        + (f"; lowest {worst}" if worst else "")
    )
    return [
        ("OEE (availability x performance x quality)", f"{_maybe_pct(oee.get('oee'))} ({factors})"),
        ("units inspected / good (quality)", inspected),
        (
            "failures / MTBF / MTTR",
            f"{kpis.get('failures', '-')} / {_maybe_s(kpis.get('mtbf_s'))}"
            f" / {_maybe_s(kpis.get('mttr_s'))}",
        ),
        ("faults injected / detected / recovered", f"{len(faults)} / {found} / {fixed}"),
    ]


def _worst_robot(q: dict[str, Any]) -> str:
    """The robot with the lowest quality below 100%, as "R2 16.7%" ("" if none is below)."""
    robots = q.get("robots")
    rated = [
        (t["quality"], name)
        for name, t in (robots.items() if isinstance(robots, dict) else ())
        if isinstance(t, dict) and isinstance(t.get("quality"), int | float) and t["quality"] < 1
    ]
    if not rated:
        return ""
    quality, name = min(rated)
    return f"{name} {_pct(quality)}"


def kpi_tables(kpis: dict[str, Any]) -> list[Table]:
    """The cell summary and the per-robot table."""
    cell = Table(title=f"{kpis.get('cell', 'cell')} - seed {kpis.get('seed')}", show_header=False)
    cell.add_column("KPI", style="bold")
    cell.add_column("value", justify="right")
    ct = kpis["cycle_time_s"]
    led = kpis["ledger"]
    rows = [
        ("sim time", f"{kpis['duration_s']:.0f} s"),
        ("units completed", str(kpis["units_completed"])),
        ("units scrapped", str(kpis["units_scrapped"])),
        ("units in progress", str(kpis.get("units_in_progress", 0))),
        ("throughput", f"{kpis['throughput_per_hour']:.1f} units/h"),
        (
            "cycle time (mean / min / max)",
            "-"
            if ct["mean"] is None
            else f"{ct['mean']:.1f} / {ct['min']:.1f} / {ct['max']:.1f} s",
        ),
        (
            "parts created / shipped / scrapped / WIP",
            f"{led['created']} / {led['shipped']} / {led['scrapped']} / {led['wip']}",
        ),
        ("ledger balanced", "yes" if kpis["ledger_balanced"] else "[red]NO[/red]"),
        *_reliability_rows(kpis),
    ]
    for k, v in rows:
        cell.add_row(k, v)
    robots = Table(title="robots")
    for col in (
        "robot",
        "state",
        "utilisation",
        "availability",
        "OEE",
        "busy",
        "starved",
        "blocked",
        "ops done",
        "failed",
    ):
        robots.add_column(col, justify="left" if col in ("robot", "state") else "right")
    for name, r in kpis["robots"].items():
        robots.add_row(
            name,
            r["state"],
            _pct(r["utilisation"]),
            _maybe_pct(r.get("availability")),
            _maybe_pct((r.get("oee") or {}).get("oee")),
            f"{r['busy_s']:.0f} s",
            f"{r['starved_s']:.0f} s",
            f"{r['blocked_s']:.0f} s",
            str(r["ops_done"]),
            str(r["ops_failed"]),
        )
    return [cell, robots]


def print_kpis(kpis: dict[str, Any], console: Console | None = None) -> None:
    """Print the KPI tables."""
    console = console or Console()
    for t in kpi_tables(kpis):
        console.print(t)
