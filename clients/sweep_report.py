"""A sweep's results: ``sweep.csv`` (one row per run), ``report.md`` and ``sweep.png``.

The report gives, per variant, each main KPI's distribution over the seeds
(n, mean, sd, min, median, max) and the 95% t interval of its mean, then, for
every variant after the first, the difference of its means from the first's
with Welch's 95% interval (``clients.stats``): what a study is for is telling
whether a change of layout, speed or policy moved a KPI beyond the noise the
seeds make. The picture shows each KPI's runs as points per variant with the
mean and its interval beside them, so a skewed or split distribution is seen,
not only summarized.

Failed runs are listed and left out of every figure (the report says how
many); KPIs a run did not reach (a cycle time with no unit shipped, an OEE
with nothing to rate) are left out of that KPI's figures only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from clients.stats import LEVEL, Difference, Summary, difference, summarize
from clients.sweep import COLUMNS, KPIS

matplotlib.use("Agg")

UNITS = {
    "units": "units shipped",
    "throughput_per_hour": "units / h",
    "cycle_time_s": "s",
    "oee": "share",
    "availability": "share",
    "utilisation": "share (mean of robots)",
}
"""What each KPI of ``clients.sweep.KPIS`` is measured in."""
TITLES = {
    "units": "units",
    "throughput_per_hour": "throughput",
    "cycle_time_s": "mean cycle time",
    "oee": "OEE",
    "availability": "availability",
    "utilisation": "utilisation",
}


def write_table(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """``sweep.csv``: the columns of ``COLUMNS``, then every robot's utilisation, then the rest."""
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    robots = [k for k in extra if k.startswith("utilisation_")]
    fields = [*COLUMNS, *robots, *(k for k in extra if k not in robots)]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in fields})
    return path


def _cell(v: Any) -> Any:
    return "" if v is None else v


def values(rows: Sequence[dict[str, Any]], variant: str, kpi: str) -> list[float]:
    """The KPI over a variant's finished runs (``nan`` where a run has none)."""
    out = []
    for r in rows:
        if r.get("variant") != variant or r.get("status") != "ok":
            continue
        v = r.get(kpi)
        out.append(math.nan if v is None or v == "" else float(v))
    return out


def summaries(
    rows: Sequence[dict[str, Any]], variants: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Summary]]:
    """variant id -> KPI -> its summary."""
    return {vid: {k: summarize(values(rows, vid, k)) for k in KPIS} for vid, _ in variants}


def write_report(
    rows: Sequence[dict[str, Any]],
    out: Path,
    *,
    variants: Sequence[tuple[str, str]],
    title: str,
    command: str,
    wall_s: float,
) -> tuple[Path, Path]:
    """``report.md`` and ``sweep.png`` in ``out``; ``variants`` is (id, label) in order."""
    stats = summaries(rows, variants)
    png = out / "sweep.png"
    _picture(rows, variants, stats, png)
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [
        f"# Sweep: {title}",
        "",
        f"`{command}`" if command else "",
        "",
        f"{len(rows)} runs ({len(rows) - len(failed)} finished, {len(failed)} failed) "
        f"in {wall_s:.0f} s of wall time. Every figure is over the finished runs; "
        f"intervals are {LEVEL:.0%} Student-t intervals of the mean (Welch's for differences).",
        "",
        "| variant | settings |",
        "|---|---|",
        *(f"| {vid} | {label} |" for vid, label in variants),
        "",
        "![the KPIs of every run](sweep.png)",
        "",
    ]
    for vid, label in variants:
        lines += [f"## {vid}: {label}", "", _summary_table(stats[vid]), ""]
    if len(variants) > 1:
        base_id, base_label = variants[0]
        lines += [
            f"## Compared with {base_id} ({base_label})",
            "",
            "Difference of means (variant minus " + base_id + f") with its {LEVEL:.0%} interval; "
            "**bold** where the interval excludes zero.",
            "",
            _compare_table(stats, variants),
            "",
        ]
    if failed:
        lines += ["## Failed runs", "", "| variant | seed | error |", "|---|---|---|"]
        lines += [f"| {r['variant']} | {r['seed']} | {r.get('error', '')} |" for r in failed]
        lines.append("")
    md = out / "report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return md, png


def _fmt(v: float, kpi: str) -> str:
    if math.isnan(v):
        return "-"
    if kpi in ("oee", "availability", "utilisation"):
        return f"{v:.4f}"
    return f"{v:.2f}"


def _summary_table(stats: dict[str, Summary]) -> str:
    rows = [
        f"| KPI | unit | n | mean | {LEVEL:.0%} CI | sd | min | median | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in KPIS:
        s = stats[k]
        ci = f"[{_fmt(s.lo, k)}, {_fmt(s.hi, k)}]"
        rows.append(
            f"| {TITLES[k]} | {UNITS[k]} | {s.n} | {_fmt(s.mean, k)} | {ci} | {_fmt(s.sd, k)} "
            f"| {_fmt(s.minimum, k)} | {_fmt(s.median, k)} | {_fmt(s.maximum, k)} |"
        )
    return "\n".join(rows)


def comparisons(
    stats: dict[str, dict[str, Summary]], variants: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Difference]]:
    """variant id -> KPI -> its difference from the first variant (every variant after it)."""
    base = stats[variants[0][0]]
    return {vid: {k: difference(base[k], stats[vid][k]) for k in KPIS} for vid, _ in variants[1:]}


def _compare_table(
    stats: dict[str, dict[str, Summary]], variants: Sequence[tuple[str, str]]
) -> str:
    diffs = comparisons(stats, variants)
    head = "| variant | " + " | ".join(f"{TITLES[k]} ({UNITS[k]})" for k in KPIS) + " |"
    rows = [head, "|---|" + "---|" * len(KPIS)]
    for vid, _ in variants[1:]:
        cells = []
        for k in KPIS:
            d = diffs[vid][k]
            text = f"{_fmt(d.diff, k)} [{_fmt(d.lo, k)}, {_fmt(d.hi, k)}]"
            cells.append(f"**{text}**" if d.significant else text)
        rows.append(f"| {vid} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _picture(
    rows: Sequence[dict[str, Any]],
    variants: Sequence[tuple[str, str]],
    stats: dict[str, dict[str, Summary]],
    path: Path,
) -> None:
    """One panel per KPI: every run as a point, per variant, with the mean and its interval."""
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).flat
    for ax, k in zip(axes, KPIS, strict=True):
        for i, (vid, _) in enumerate(variants):
            ys = [y for y in values(rows, vid, k) if not math.isnan(y)]
            # a deterministic spread of the points across their column, so equal values show
            xs = [i - 0.35 + 0.3 * ((j * 0.618) % 1) for j in range(len(ys))]
            ax.scatter(xs, ys, s=9, alpha=0.5, color=f"C{i % 10}", linewidths=0)
            s = stats[vid][k]
            if s.n:
                err = [[s.mean - s.lo], [s.hi - s.mean]] if s.n > 1 else None
                ax.errorbar([i + 0.2], [s.mean], yerr=err, fmt="o", color="black", capsize=4)
        if not any(stats[vid][k].n for vid, _ in variants):
            ax.text(0.5, 0.5, "no run reached it", transform=ax.transAxes, ha="center")
        ax.set_title(f"{TITLES[k]} ({UNITS[k]})", fontsize=10)
        ax.set_xticks(range(len(variants)), [vid for vid, _ in variants])
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"each run (points) and the mean with its {LEVEL:.0%} interval (black)")
    fig.savefig(path, dpi=90)
