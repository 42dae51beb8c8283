"""``report.html`` of a finished run: KPIs, OEE, a PackML Gantt chart, throughput and part flow.

``write_report(run_dir)`` reads the run's ``kpis.json`` and ``events.jsonl``
and writes one self-contained page beside them: no scripts, no external
assets, the figures inlined as SVG, so it can be mailed, archived with the
run, or opened on a machine with no network. Every number taken from
``kpis.json`` carries ``data-kpi`` (its path in the file) and ``data-value``
(its JSON value), so a test, or a script, can check the page against the file.
A recorded run (``RUN_DIR/bag``) also gets a picture of the cell drawn from
the bag alone (``clients.report_cell``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bus.errors import ConfigError
from bus.simtime import NS
from clients.report_autonomy import (
    bottleneck_table,
    diagnosis_table,
    maintenance_section,
    optimization_table,
    quality_table,
)
from clients.report_data import Run, fault_marks, has_figures, load_run, outages
from clients.report_fleet import builds_robots, fleet_figure, genealogy_table
from clients.report_plots import figures, to_svg

REPORT = "report.html"
BAG = "bag"
"""Where ``lightsout run --record`` puts a run's bag; the report draws the cell from it."""
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
    "cell": "The cell at three sim times, drawn from the run's bag alone: each arm's links "
    "(a line per URDF joint, from the tf tree; a ring at its base), belts, fixtures, trays "
    "and every live part (the scene markers), from above (top) and in perspective (bottom).",
}
"""What each figure shows, under it."""
FLEET_CAPTION = (
    "Units shipped and arms built per interval of sim time (bars), beside the number of "
    "robots in the fleet (line): each arm that passes its commissioning check joins it."
)

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
    return write_page(run_dir / REPORT, render(run))


def write_page(out: Path, page: str) -> Path:
    """Write ``page`` to ``out`` whole or not at all (a temporary file renamed over it), or
    one clear error; return ``out``."""
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
    if builds_robots(run):
        body.append("<h2>Built robots</h2>")
        body.append(
            f'<figure id="figure-fleet">{to_svg(fleet_figure(run), key="fleet")}'
            f"<figcaption>{_e(FLEET_CAPTION)}</figcaption></figure>"
        )
        body.append(genealogy_table(run))
    bag = run.path / BAG
    if (bag / "metadata.yaml").is_file():
        from clients.report_cell import cell_figure, read_snapshots

        fig = cell_figure(read_snapshots(bag))
        body.append("<h2>The cell, from its bag</h2>")
        body.append(
            f'<figure id="figure-cell">{to_svg(fig, key="cell")}'
            f"<figcaption>{_e(CAPTIONS['cell'])}</figcaption></figure>"
        )
    body.append("<h2>Faults</h2>")
    body.append(_fault_table(run))
    body += ["<h2>Quality</h2>", quality_table(run)]
    body += ["<h2>Diagnoses</h2>", diagnosis_table(run)]
    body += ["<h2>Maintenance</h2>", maintenance_section(run)]
    body += ["<h2>Self-optimization</h2>", optimization_table(run), "<h2>Bottleneck</h2>"]
    body.append(bottleneck_table(run))
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
    """The value at a dotted ``path`` (a number indexes an array), None if it is not there."""
    cur: Any = kpis
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def _kpi_cell(kpis: dict[str, Any], path: str, text: str | None = None, unit: str = "") -> str:
    """A cell showing ``kpis.json``'s value at ``path``, tagged with the path and the raw value."""
    v = _get(kpis, path)
    if v is None:
        return f'<td data-kpi="{_e(path)}" data-value="null">{_e(text or "-")}</td>'
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


def _pct_of(kpis: dict[str, Any], path: str) -> str | None:
    """``kpis.json``'s ratio at ``path`` as a percentage (None: show the default)."""
    v = _get(kpis, path)
    return _pct(float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _secs_of(kpis: dict[str, Any], path: str, none: str = "-") -> str:
    v = _get(kpis, path)
    return _secs(float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else none


OLD_RUN = (
    '<p class="src" id="no-figures">This run\'s <code>kpis.json</code> has no availability, '
    "MTBF, MTTR, OEE or fault list: it was recorded before the supervisor computed them.</p>"
)


def _oee_table(run: Run) -> str:
    k = run.kpis
    ideal = _get(k, "oee.ideal_cycle_s")
    stations = _get(k, "oee.stations")
    per_unit = (
        f"{ideal:g} s / {stations} = {ideal / stations:.2f} s per unit"
        if isinstance(ideal, int | float) and isinstance(stations, int) and stations > 0
        else None
    )
    failures = _get(k, "failures")
    mtbf = _secs_of(k, "mtbf_s") + (" (no failures)" if failures == 0 else "")
    mttr = _secs_of(k, "mttr_s", "- (no repair finished)" if failures else "-")
    rows = [
        (
            "OEE",
            _kpi_cell(k, "oee.oee", _pct_of(k, "oee.oee")).replace("<td ", '<td class="big" ', 1),
        ),
        ("availability", _kpi_cell(k, "oee.availability", _pct_of(k, "oee.availability"))),
        ("performance", _kpi_cell(k, "oee.performance", _pct_of(k, "oee.performance"))),
        ("quality", _kpi_cell(k, "oee.quality", _pct_of(k, "oee.quality"))),
        ("ideal cycle time", _kpi_cell(k, "oee.ideal_cycle_s", per_unit)),
        ("actual production time", _kpi_cell(k, "oee.production_s", unit="s")),
        ("failures", _kpi_cell(k, "failures")),
        ("MTBF", _kpi_cell(k, "mtbf_s", mtbf)),
        ("MTTR", _kpi_cell(k, "mttr_s", mttr)),
        ("time down (any failure)", _kpi_cell(k, "down_s", unit="s")),
    ]
    head = '<thead><tr><th colspan="2">OEE (ISO 22400-2)</th></tr></thead>'
    note = "" if has_figures(run) else OLD_RUN
    return f'<div><table id="oee">{head}{_rows(rows)}</table>{note}</div>'


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
        "down",
        "ops done",
        "ops failed",
        "failures",
        "MTBF",
        "MTTR",
        "OEE",
    )
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for r in run.robots:
        p = f"robots.{r}"
        state = _get(k, f"{p}.state")
        cls = ' class="bad"' if state in ("Aborted", "Aborting") else ""
        rows.append(
            "<tr>"
            f"<td>{_e(r)}</td>"
            + _kpi_cell(k, f"{p}.state").replace("<td ", f"<td{cls} ", 1)
            + _kpi_cell(k, f"{p}.utilisation", _pct_of(k, f"{p}.utilisation"))
            + _kpi_cell(k, f"{p}.availability", _pct_of(k, f"{p}.availability"))
            + _kpi_cell(k, f"{p}.busy_s", unit="s")
            + _kpi_cell(k, f"{p}.starved_s", unit="s")
            + _kpi_cell(k, f"{p}.blocked_s", unit="s")
            + _kpi_cell(k, f"{p}.down_s", unit="s")
            + _kpi_cell(k, f"{p}.ops_done")
            + _kpi_cell(k, f"{p}.ops_failed")
            + _kpi_cell(k, f"{p}.failures")
            + _kpi_cell(k, f"{p}.mtbf_s", _secs_of(k, f"{p}.mtbf_s"))
            + _kpi_cell(k, f"{p}.mttr_s", _secs_of(k, f"{p}.mttr_s"))
            + _kpi_cell(k, f"{p}.oee.oee", _pct_of(k, f"{p}.oee.oee"))
            + "</tr>"
        )
    return f'<table id="robots"><thead><tr>{head}</tr></thead>{"".join(rows)}</table>'


def _fault_list(run: Run) -> str:
    """Every injected fault with its detection and recovery (``kpis.json`` ``faults``)."""
    k = run.kpis
    faults = k.get("faults")
    if not isinstance(faults, list):
        return ""
    if not faults:
        return '<p id="fault-list">No fault was injected.</p>'
    cols = ("at", "kind", "target", "detected", "after", "by", "recovered", "after", "by")
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for i, f in enumerate(faults[:MAX_FAULT_ROWS]):
        p = f"faults.{i}"
        never = "never" if isinstance(f, dict) and f.get("permanent") else None
        rows.append(
            "<tr>"
            + _kpi_cell(k, f"{p}.at_s", unit="s")
            + _kpi_cell(k, f"{p}.kind")
            + _kpi_cell(k, f"{p}.target")
            + _kpi_cell(k, f"{p}.detected_at_s", unit="s")
            + _kpi_cell(k, f"{p}.detection_s", unit="s")
            + _kpi_cell(k, f"{p}.detected_by")
            + _kpi_cell(
                k,
                f"{p}.recovered_at_s",
                None if _get(k, f"{p}.recovered_at_s") is not None else never,
                unit="s",
            )
            + _kpi_cell(k, f"{p}.recovery_s", unit="s")
            + _kpi_cell(k, f"{p}.recovered_by")
            + "</tr>"
        )
    more = (
        f"<p>... and {len(faults) - MAX_FAULT_ROWS} more.</p>"
        if len(faults) > MAX_FAULT_ROWS
        else ""
    )
    return (
        "<h3>Injected faults: detection and recovery (sim time)</h3>"
        f'<table id="fault-list"><thead><tr>{head}</tr></thead>{"".join(rows)}</table>{more}'
    )


def _kind_table(run: Run) -> str:
    """Per fault kind: how many, found and fixed how fast, and what they cost (``by_fault_kind``)."""
    k = run.kpis
    kinds = k.get("by_fault_kind")
    if not isinstance(kinds, dict) or not kinds:
        return ""
    cols = (
        "kind",
        "scope",
        "count",
        "detected",
        "recovered",
        "detection mean",
        "detection max",
        "recovery mean",
        "recovery max",
        "downtime",
        "availability lost",
        "OEE lost",
    )
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for kind in sorted(kinds):
        p = f"by_fault_kind.{kind}"
        rows.append(
            f"<tr><td>{_e(kind)}</td>"
            + _kpi_cell(k, f"{p}.scope")
            + _kpi_cell(k, f"{p}.count")
            + _kpi_cell(k, f"{p}.detected")
            + _kpi_cell(k, f"{p}.recovered")
            + _kpi_cell(k, f"{p}.detection_s.mean", unit="s")
            + _kpi_cell(k, f"{p}.detection_s.max", unit="s")
            + _kpi_cell(k, f"{p}.recovery_s.mean", unit="s")
            + _kpi_cell(k, f"{p}.recovery_s.max", unit="s")
            + _kpi_cell(k, f"{p}.downtime_s", unit="s")
            + _kpi_cell(k, f"{p}.availability_lost", _pct_of(k, f"{p}.availability_lost"))
            + _kpi_cell(k, f"{p}.oee_lost", _pct_of(k, f"{p}.oee_lost"))
            + "</tr>"
        )
    return (
        "<h3>By fault kind</h3>"
        f'<table id="fault-kinds"><thead><tr>{head}</tr></thead>{"".join(rows)}</table>'
    )


def _fault_table(run: Run) -> str:
    marks = fault_marks(run)
    listed = _kind_table(run) + _fault_list(run)
    if not marks:
        return listed + (
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
        f"{listed}<h3>Fault events and outages</h3>"
        f'<div class="grid"><table id="faults">{head}{"".join(rows)}</table>'
        f'<table id="outages">{dhead}{down}</table></div>{more}'
    )


def _definitions() -> str:
    return """<details><summary>How the figures are computed</summary>
<p>Every figure is the supervisor's, from <code>kpis.json</code>; <code>docs/faults.md</code> ("KPIs") has the details.</p>
<ul>
<li><b>Time buckets</b> (ISO 22400-2): Execute is production time; Stopped, Resetting, Idle and Starting are setup; Hold, Suspend, Stop and Complete states are delay; Aborting, Aborted, Clearing, a lost robot, and any state while a failure is open (until the robot is back in Execute) are down time. The planned time is the whole run.</li>
<li><b>Availability</b>: production time over the run, per robot; the cell's is the mean over robots.</li>
<li><b>Performance</b>: ideal time x output / production time. A robot's output is its operations done, each worth the fastest time any robot did that step in; the cell's is its units shipped, worth the fastest unit cycle shared by the fixtures that work at once.</li>
<li><b>Quality</b> (ISO 22400-2, good over produced): units that passed their first inspection / units inspected, for the cell, for each station, and for each robot over the units it worked on (a unit rejected only for other robots' steps is good work of this one); a reworked unit is not good. Before any inspection: operations done / (done + failed) for a robot; good units / (good + scrapped) for the cell. <b>OEE</b> = availability x performance x quality.</li>
<li><b>Failures</b>: a robot's outages (an injected crash or robot fault, an abort, a lost robot, a Hold caused by a fault) from the fault until it is back in Execute; the cell's are all of them and its own (a crashed supervisor, a jammed belt, a blind sensor, while they last). <b>MTBF</b> = (run time - time down) / failures (the run time when nothing failed); <b>MTTR</b> = mean time of the finished repairs.</li>
<li><b>Faults</b>: detection is the first event that shows the cell noticed the fault, recovery the first that shows it got over it; <b>availability lost</b> and <b>OEE lost</b> value each kind's downtime at the run's own performance and quality.</li>
</ul></details>"""
