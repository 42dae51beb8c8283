"""``report.html`` of a finished run: KPIs, OEE, a PackML Gantt chart, throughput and part flow.

``write_report(run_dir)`` reads the run's ``kpis.json`` and ``events.jsonl``
and writes one self-contained page beside them: no scripts, no external
assets, the figures inlined as SVG, so it can be mailed, archived with the
run, or opened on a machine with no network. Every number taken from
``kpis.json`` carries ``data-kpi`` (its path in the file) and ``data-value``
(its JSON value), so a test, or a script, can check the page against the file.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bus.errors import ConfigError
from clients.report_data import (
    NS,
    Run,
    availability_of,
    cell_reliability,
    fault_marks,
    load_run,
    oee,
    outages,
    reliability,
)
from clients.report_plots import figures, to_svg

REPORT = "report.html"
MAX_FAULT_ROWS = 500
"""Faults listed in the table (all are drawn)."""

CAPTIONS = {
    "gantt": "Each robot's PackML state over sim time (top bar) and its operations (thin bar: "
    "dark done, red failed). Red lines and triangles mark faults; red shading is time down "
    "until the robot is back in Execute.",
    "throughput": "Units shipped per interval of sim time (bars) and in total (curve); the "
    "dotted line is the run's average throughput.",
    "flow": "Parts created, shipped and scrapped so far, and the work in progress between "
    "them (created = shipped + scrapped + WIP at every moment).",
}
"""What each figure shows, under it."""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
       color: #222; margin: 0 auto; max-width: 1180px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
.sub { color: #666; margin: 0 0 12px; }
.grid { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #bbb; background: #fafafa; }
td.k { color: #555; }
.src { color: #888; font-size: 12px; }
.bad { color: #b00; font-weight: 600; }
.big { font-size: 20px; font-weight: 600; }
svg.figure { width: 100%; height: auto; display: block; }
figure { margin: 0 0 18px; }
figcaption { color: #555; font-size: 13px; margin: 2px 0 0 8px; }
details { margin-top: 24px; color: #444; }
"""


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from the run's files; return its path.

    Raises ``ConfigError`` (one line: file, line, reason) when the directory
    or a file is missing or malformed.
    """
    run = load_run(run_dir)
    page = render(run)
    out = run_dir / REPORT
    tmp = out.with_suffix(".html.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise ConfigError(str(out), "", f"cannot write: {exc.strerror or exc}") from None
    return out


def render(run: Run) -> str:
    """The page as a string."""
    k = run.kpis
    title = f"{k.get('cell', run.path.name)} - seed {k.get('seed', '?')}"
    figs = figures(run)
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">run <code>{_e(str(run.path))}</code>; '
        f"{run.end_ns / NS:g} s of sim time; {len(run.events)} events</p>",
        '<div class="grid">',
        _cell_table(run),
        _oee_table(run),
        "</div>",
        "<h2>Robots</h2>",
        _robot_table(run),
    ]
    body.append("<h2>Timeline</h2>")
    for key, fig in figs.items():
        body.append(
            f'<figure id="figure-{key}">{to_svg(fig, key=key)}'
            f"<figcaption>{_e(CAPTIONS[key])}</figcaption></figure>"
        )
    body.append("<h2>Faults</h2>")
    body.append(_fault_table(run))
    body.append(_definitions())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} - lightsout report</title><style>{CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ---------------------------------------------------------------- tables


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _get(kpis: dict[str, Any], path: str) -> Any:
    cur: Any = kpis
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _kpi_cell(kpis: dict[str, Any], path: str, text: str | None = None, unit: str = "") -> str:
    """A cell showing ``kpis.json``'s value at ``path``, tagged with the path and the raw value."""
    v = _get(kpis, path)
    if v is None:
        return f'<td data-kpi="{_e(path)}" data-value="null">-</td>'
    shown = text if text is not None else _num(v) + (f" {unit}" if unit else "")
    raw = json.dumps(v, sort_keys=True)
    return f'<td data-kpi="{_e(path)}" data-value="{_e(raw)}">{_e(shown)}</td>'


def _num(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    return "".join(f'<tr><td class="k">{_e(k)}</td>{cell}</tr>' for k, cell in rows)


def _cell_table(run: Run) -> str:
    k = run.kpis
    balanced = _get(k, "ledger_balanced")
    bal_text = "yes" if balanced else ("NO" if balanced is False else "-")
    rows = [
        ("sim time", _kpi_cell(k, "duration_s", unit="s")),
        ("units completed (shipped)", _kpi_cell(k, "units_completed")),
        ("units scrapped", _kpi_cell(k, "units_scrapped")),
        ("units in progress", _kpi_cell(k, "units_in_progress")),
        ("throughput", _kpi_cell(k, "throughput_per_hour", unit="units/h")),
        ("cycle time, mean", _kpi_cell(k, "cycle_time_s.mean", unit="s")),
        ("cycle time, min", _kpi_cell(k, "cycle_time_s.min", unit="s")),
        ("cycle time, max", _kpi_cell(k, "cycle_time_s.max", unit="s")),
        ("parts created", _kpi_cell(k, "ledger.created")),
        ("parts shipped", _kpi_cell(k, "ledger.shipped")),
        ("parts scrapped", _kpi_cell(k, "ledger.scrapped")),
        ("parts in progress", _kpi_cell(k, "ledger.wip")),
        ("ledger balanced", _kpi_cell(k, "ledger_balanced", bal_text)),
    ]
    return (
        f'<table id="kpis"><thead><tr><th colspan="2">Cell</th></tr></thead>{_rows(rows)}</table>'
    )


def _oee_table(run: Run) -> str:
    o = oee(run)
    rel = cell_reliability(run)

    def cell(name: str, value: float | None, text: str) -> str:
        src = "kpis.json" if name in o.from_kpis else "computed"
        val = "null" if value is None else json.dumps(round(value, 6))
        return (
            f'<td data-oee="{name}" data-value="{val}">{_e(text)} '
            f'<span class="src">({src})</span></td>'
        )

    ideal = (
        "-"
        if o.ideal_cycle_s is None
        else f"{o.ideal_cycle_s:g} s / {o.stations} = {o.ideal_cycle_s / o.stations:.2f} s per unit"
    )
    mtbf = f"{rel.mtbf_s:.1f} s" + (" (no failures)" if rel.failures == 0 else "")
    mttr = _secs(rel.mttr_s)
    if rel.failures and rel.mttr_s is None:
        mttr = "- (no repair finished)"

    def src(name: str) -> str:
        return ' <span class="src">(kpis.json)</span>' if name in rel.from_kpis else ""

    rows = [
        ("OEE", cell("oee", o.oee, _pct(o.oee)).replace("<td ", '<td class="big" ', 1)),
        ("availability", cell("availability", o.availability, _pct(o.availability))),
        ("performance", cell("performance", o.performance, _pct(o.performance))),
        ("quality", cell("quality", o.quality, _pct(o.quality))),
        ("ideal cycle time", f"<td>{_e(ideal)}</td>"),
        ("actual production time", f"<td>{o.production_s:.1f} s</td>"),
        (
            "failures",
            f'<td data-oee="failures" data-value="{rel.failures}">{rel.failures}'
            f"{src('failures')}</td>",
        ),
        (
            "MTBF",
            f'<td data-oee="mtbf_s" data-value="{rel.mtbf_s:.6g}">{_e(mtbf)}{src("mtbf_s")}</td>',
        ),
        ("MTTR", f'<td data-oee="mttr_s">{_e(mttr)}{src("mttr_s")}</td>'),
        ("time down (any robot)", f"<td>{rel.down_s:.1f} s</td>"),
    ]
    head = '<thead><tr><th colspan="2">OEE (ISO 22400-2)</th></tr></thead>'
    return f'<table id="oee">{head}{_rows(rows)}</table>'


def _robot_table(run: Run) -> str:
    k = run.kpis
    cols = (
        "robot",
        "state at end",
        "utilisation",
        "availability",
        "busy",
        "starved",
        "blocked",
        "ops done",
        "ops failed",
        "failures",
        "MTBF",
        "MTTR",
    )
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for r in run.robots:
        p = f"robots.{r}"
        util = _get(k, f"{p}.utilisation")
        rel = reliability(run, r)
        state = _get(k, f"{p}.state")
        cls = ' class="bad"' if state in ("Aborted", "Aborting") else ""
        rows.append(
            "<tr>"
            f"<td>{_e(r)}</td>"
            + _kpi_cell(k, f"{p}.state").replace("<td ", f"<td{cls} ", 1)
            + _kpi_cell(
                k, f"{p}.utilisation", _pct(util) if isinstance(util, float | int) else None
            )
            + f"<td>{_pct(availability_of(run, r))}</td>"
            + _kpi_cell(k, f"{p}.busy_s", unit="s")
            + _kpi_cell(k, f"{p}.starved_s", unit="s")
            + _kpi_cell(k, f"{p}.blocked_s", unit="s")
            + _kpi_cell(k, f"{p}.ops_done")
            + _kpi_cell(k, f"{p}.ops_failed")
            + f"<td>{rel.failures}</td>"
            + f"<td>{rel.mtbf_s:.1f} s</td>"
            + f"<td>{_secs(rel.mttr_s)}</td>"
            "</tr>"
        )
    return f'<table id="robots"><thead><tr>{head}</tr></thead>{"".join(rows)}</table>'


def _fault_table(run: Run) -> str:
    marks = fault_marks(run)
    if not marks:
        return (
            '<p id="faults">No faults: no fault event, failed operation, lost robot or abort.</p>'
        )
    outs = outages(run)
    rows = []
    for m in marks[:MAX_FAULT_ROWS]:
        rows.append(
            f"<tr><td>{m.t_ns / NS:.3f} s</td><td>{_e(m.robot or 'cell')}</td>"
            f"<td>{_e(m.kind)}</td><td>{_e(m.detail)}</td></tr>"
        )
    more = (
        f"<p>... and {len(marks) - MAX_FAULT_ROWS} more.</p>" if len(marks) > MAX_FAULT_ROWS else ""
    )
    down = "".join(
        f"<tr><td>{o.start_ns / NS:.3f} s</td><td>{_e(o.robot or 'cell')}</td>"
        f"<td>{_e(o.cause)}</td><td>{o.ttr_ns / NS:.1f} s"
        f"{'' if o.repaired else ' (not repaired by the end)'}</td></tr>"
        for o in outs
    )
    head = "<thead><tr><th>sim time</th><th>robot</th><th>event</th><th>detail</th></tr></thead>"
    dhead = (
        "<thead><tr><th>from</th><th>robot</th><th>cause</th><th>time to repair</th></tr></thead>"
    )
    return (
        f'<div class="grid"><table id="faults">{head}{"".join(rows)}</table>'
        f'<table id="outages">{dhead}{down}</table></div>{more}'
    )


def _definitions() -> str:
    return """<details><summary>How the figures are computed</summary>
<ul>
<li><b>Availability</b>: each robot's time in Execute over the run's planned time (the whole run), averaged over robots (state times as in <code>kpis.json</code>).</li>
<li><b>Performance</b>: ideal cycle time x units shipped / actual production time. The ideal cycle time is the fastest observed unit cycle (start in a fixture to ship) shared by the fixtures that work at once; the actual production time is the run's length times availability.</li>
<li><b>Quality</b>: good units / (good + scrapped units). <b>OEE</b> = availability x performance x quality.</li>
<li><b>Failures</b>: a fault event naming a robot, a lost robot, an entry into Aborting or Aborted, or a Hold caused by a fault; the events of one failure count once. The <b>repair</b> lasts until the robot is back in Execute. <b>MTBF</b> = (run time - time down) / failures (the run time when nothing failed); <b>MTTR</b> = mean time of the finished repairs.</li>
<li>Figures that <code>kpis.json</code> already holds are shown as they are and marked so.</li>
</ul></details>"""
