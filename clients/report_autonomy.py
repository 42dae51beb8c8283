"""The report's autonomy sections: the cell's diagnoses with their evidence, and its bottleneck.

Both read only the run's files (``events.jsonl`` for the diagnoses, ``kpis.json`` for the
bottleneck), so a report of any finished run shows what the supervisor concluded and why.
"""

from __future__ import annotations

import html
from typing import Any

from bus.simtime import NS
from clients.report_data import Run


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
