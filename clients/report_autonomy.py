"""The report's autonomy sections: the cell's diagnoses with their evidence, its maintenances
(each with the drift chart that triggered it, over the robot's timeline), and its bottleneck.

All read only the run's files (``events.jsonl`` for the diagnoses, ``kpis.json`` for the
bottleneck), so a report of any finished run shows what the supervisor concluded and why.
"""

from __future__ import annotations

import html
from typing import Any

from matplotlib.figure import Figure

from bus.simtime import NS
from clients.report_data import Run, state_spans

FAULT = "#d62728"


def _e(text: object) -> str:
    return html.escape(str(text))


def diagnosis_table(run: Run) -> str:
    """Every ``diagnosis`` event: when, what, the cause, and the statistic that crossed."""
    rows = []
    for ev in run.events:
        if ev.kind != "diagnosis":
            continue
        d = ev.data
        evidence: dict[str, Any] = d.get("evidence") or {}
        stat = (
            f"{evidence.get('method', '?')} {evidence.get('statistic', '?')} &gt; "
            f"{evidence.get('threshold', '?')} after {evidence.get('samples', '?')} samples; "
            f"baseline {evidence.get('baseline_mean', '?')} &plusmn; "
            f"{evidence.get('baseline_sigma', '?')}, recent {evidence.get('recent_mean', '?')}"
        )
        defects = d.get("defects")
        if isinstance(defects, dict) and defects:
            parts = [f"{k}: {_e(v)}" for k, v in sorted(defects.items())]
            stat += "; defects " + "; ".join(parts)
        rows.append(
            f"<tr><td>{ev.t_ns / NS:.1f} s</td><td>{_e(d.get('target', ''))}</td>"
            f"<td>{_e(d.get('component', ''))}</td><td>{_e(d.get('cause', ''))}</td>"
            f"<td><small>{_e(d.get('quantity', ''))}: {stat}</small></td></tr>"
        )
    if not rows:
        return '<p id="diagnoses">No diagnosis: every series stayed within its baseline.</p>'
    head = "<tr><th>at</th><th>target</th><th>component</th><th>cause</th><th>evidence</th></tr>"
    return f'<table id="diagnoses"><thead>{head}</thead>{"".join(rows)}</table>'


def bottleneck_table(run: Run) -> str:
    """The throughput bound of each resource, the binding one marked, and the run's share."""
    b: dict[str, Any] = run.kpis.get("bottleneck") or {}
    resources: dict[str, Any] = b.get("resources_per_hour") or {}
    if not resources:
        return '<p id="bottleneck">No bottleneck analysis in this run\'s kpis.json.</p>'
    binding = b.get("binding", "")
    rows = [
        f"<tr><td>{'<b>' if k == binding else ''}{_e(k)}{'</b>' if k == binding else ''}</td>"
        f'<td class="v">{float(v):.1f}</td></tr>'
        for k, v in sorted(resources.items(), key=lambda kv: float(kv[1]))
    ]
    ratio = b.get("throughput_over_bound")
    share = f"{float(ratio):.2f}" if ratio is not None else "not known"
    missing = ", ".join(b.get("missing_times") or []) or "none"
    return (
        '<table id="bottleneck"><thead><tr><th>resource</th><th>units/h at most</th></tr>'
        f"</thead>{''.join(rows)}</table>"
        f"<p>binding: <b>{_e(binding or 'not known')}</b>; the run's throughput "
        f"{_e(b.get('throughput_per_hour'))} units/h is {share} of the bound; "
        f"operations with no learned time: {_e(missing)}.</p>"
    )


def optimization_table(run: Run) -> str:
    """Every change self-optimization made (``allocation_changed``, ``station_yielded``,
    ``speed_tuned``): when, what, why, on what evidence; or that it was off, or changed
    nothing."""
    rows = []
    for ev in run.events:
        if ev.kind not in ("allocation_changed", "station_yielded", "speed_tuned"):
            continue
        d = ev.data
        if ev.kind == "allocation_changed":
            what = f"{d.get('step', '')}: {d.get('src') or '-'} &rarr; {d.get('dst', '')}"
        elif ev.kind == "station_yielded":
            what = f"{d.get('station', '')}: {d.get('to', '')} before {d.get('op', '')}"
        else:
            what = f"{d.get('robot', '')} speed scale {d.get('src')} &rarr; {d.get('dst')}"
        rows.append(
            f"<tr><td>{ev.t_ns / NS:.1f} s</td><td>{_e(ev.kind)}</td><td>{what}</td>"
            f"<td>{_e(d.get('reason', ''))}<br><small>{_e(d.get('evidence', {}))}</small></td></tr>"
        )
    opt: dict[str, Any] = run.kpis.get("optimize") or {}
    if not rows:
        why = "it was off" if opt and not opt.get("enabled", True) else "nothing learned asked it"
        return f'<p id="optimization">No change by self-optimization: {why}.</p>'
    head = "<tr><th>at</th><th>change</th><th>what</th><th>reason and evidence</th></tr>"
    return f'<table id="optimization"><thead>{head}</thead>{"".join(rows)}</table>'


# ---------------------------------------------------------------- maintenance

MAINT_COLOUR = "#e6a800"
"""The shade of a robot's time out for maintenance (taken out to back in Production)."""


def maintenance_windows(run: Run) -> list[dict[str, Any]]:
    """Every maintenance of the log: robot, cause, component, the diagnosis's time, evidence and
    recent values, and when it was started, begun (in Maintenance) and done (-1: not reached)."""
    out: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for ev in run.events:
        d, robot = ev.data, str(ev.data.get("robot", ""))
        if ev.kind == "maintenance_started":
            w = {
                "robot": robot,
                "cause": str(d.get("cause", "")),
                "component": str(d.get("component", "")),
                "quantity": str(d.get("quantity", "")),
                "evidence": dict(d.get("evidence") or {}),
                "recent": [float(x) for x in d.get("recent") or [] if isinstance(x, int | float)],
                "diagnosed_ns": int(d.get("diagnosed_ns", ev.t_ns)),
                "started_ns": ev.t_ns,
                "begun_ns": -1,
                "done_ns": -1,
            }
            open_[robot] = w
            out.append(w)
        elif ev.kind == "maintenance_begun" and robot in open_:
            open_[robot]["begun_ns"] = ev.t_ns
        elif ev.kind in ("maintenance_done", "maintenance_cancelled") and robot in open_:
            open_.pop(robot)["done_ns"] = ev.t_ns
    return out


def maintenance_figure(run: Run, w: dict[str, Any]) -> Figure:
    """One maintenance: the drift chart of the diagnosis that triggered it (its last values
    against the learned baseline), over the robot's PackML timeline with the time out shaded."""
    from clients.report_plots import STATE_COLOURS, UNKNOWN_COLOUR, WIDTH_IN

    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    chart, line = fig.subplots(2, 1, height_ratios=(2.2, 1.0))
    ev = w["evidence"]
    recent: list[float] = w["recent"]
    xs = list(range(1, len(recent) + 1))
    chart.plot(xs, recent, marker="o", color=FAULT, linewidth=1.2, label=w["quantity"] or "value")
    mean, sigma = float(ev.get("baseline_mean", 0.0)), float(ev.get("baseline_sigma", 0.0))
    if sigma > 0 and xs:
        chart.axhline(mean, color="#31a354", linewidth=1.2, label="baseline mean")
        chart.fill_between(
            [0.5, len(xs) + 0.5],
            mean - 3 * sigma,
            mean + 3 * sigma,
            color="#31a354",
            alpha=0.12,
            label="baseline +- 3 sigma",
        )
    chart.set_xlim(0.5, max(len(xs), 1) + 0.5)
    chart.set_xlabel("the series' last samples before the diagnosis")
    chart.set_title(
        f"{w['robot']} {w['component']}: {w['cause']} diagnosed at {w['diagnosed_ns'] / NS:.1f} s"
        f" ({ev.get('method', '?')} {ev.get('statistic', '?')} > {ev.get('threshold', '?')})",
        loc="left",
        fontweight="bold",
        fontsize="medium",
    )
    chart.legend(fontsize="small", frameon=False, loc="upper left")
    end_s = max(run.end_ns / NS, 1.0)
    for s in state_spans(run).get(w["robot"], []):
        colour = STATE_COLOURS.get(s.label, UNKNOWN_COLOUR)
        line.barh(0, (s.end_ns - s.start_ns) / NS, left=s.start_ns / NS, color=colour, height=0.5)
    done = w["done_ns"] if w["done_ns"] >= 0 else run.end_ns
    line.axvspan(w["started_ns"] / NS, done / NS, color=MAINT_COLOUR, alpha=0.35, label="out")
    if w["begun_ns"] >= 0:
        line.axvline(w["begun_ns"] / NS, color=MAINT_COLOUR, linewidth=2, label="in Maintenance")
    line.axvline(w["diagnosed_ns"] / NS, color=FAULT, linestyle="--", label="diagnosis")
    line.set_xlim(0, end_s)
    line.set_yticks([0], [w["robot"]])
    line.set_xlabel("sim time (s)")
    line.legend(fontsize="small", frameon=False, loc="upper right", ncol=3)
    return fig


def maintenance_section(run: Run) -> str:
    """A table of every maintenance and, for each, its drift chart over the robot's timeline."""
    from clients.report_plots import to_svg

    windows = maintenance_windows(run)
    if not windows:
        return '<p id="maintenance">No maintenance: no robot was taken out.</p>'
    rows, figs = [], []
    for i, w in enumerate(windows):
        begun = f"{w['begun_ns'] / NS:.1f} s" if w["begun_ns"] >= 0 else "-"
        done = f"{w['done_ns'] / NS:.1f} s" if w["done_ns"] >= 0 else "not by the end"
        rows.append(
            f"<tr><td>{_e(w['robot'])}</td><td>{_e(w['cause'])}</td><td>{_e(w['component'])}</td>"
            f"<td>{w['diagnosed_ns'] / NS:.1f} s</td><td>{w['started_ns'] / NS:.1f} s</td>"
            f"<td>{begun}</td><td>{done}</td></tr>"
        )
        svg = to_svg(maintenance_figure(run, w), key=f"maintenance-{i}")
        figs.append(f'<figure id="figure-maintenance-{i}">{svg}</figure>')
    head = (
        "<tr><th>robot</th><th>cause</th><th>component</th><th>diagnosed</th>"
        "<th>taken out</th><th>in Maintenance</th><th>back in Production</th></tr>"
    )
    return f'<table id="maintenance"><thead>{head}</thead>{"".join(rows)}</table>' + "".join(figs)


def quality_table(run: Run) -> str:
    """Units inspected and good, for the cell, each robot and each station, with the defects
    named (``kpis.json`` ``quality``, ``supervisor.quality``)."""
    q: dict[str, Any] = run.kpis.get("quality") or {}
    if not q.get("inspected"):
        return (
            '<p id="quality">No unit was inspected in this run (or its kpis.json predates it).</p>'
        )

    def row(name: str, t: dict[str, Any]) -> str:
        quality = t.get("quality")
        pct = f"{100 * float(quality):.1f}%" if isinstance(quality, int | float) else "-"
        bad = ' class="bad"' if isinstance(quality, int | float) and quality < 1 else ""
        defects = ", ".join(f"{s} x{n}" for s, n in sorted((t.get("defects") or {}).items()))
        return (
            f'<tr><td>{_e(name)}</td><td class="v">{_e(t.get("inspected", 0))}</td>'
            f'<td class="v">{_e(t.get("good", 0))}</td><td{bad}>{pct}</td>'
            f"<td><small>{_e(defects or '-')}</small></td></tr>"
        )

    rows = [row("cell", q)]
    rows += [row(r, t) for r, t in sorted((q.get("robots") or {}).items())]
    rows += [row(f"station {s}", t) for s, t in sorted((q.get("stations") or {}).items())]
    head = (
        "<tr><th></th><th>inspected</th><th>good</th><th>quality</th>"
        "<th>defects (own steps, by step)</th></tr>"
    )
    return (
        f'<table id="quality"><thead>{head}</thead>{"".join(rows)}</table>'
        f"<p>reworked (failed first, passed later): {_e(q.get('reworked', 0))}; "
        f"scrapped for defects: {_e(q.get('scrapped_for_defects', 0))}.</p>"
    )
