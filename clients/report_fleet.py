"""The report's page for a cell that builds robots: fleet size beside output, and genealogy.

Read from the run's files alone: the fleet grows at every ``robot_added``
(a built robot that passed its commissioning check), the output bars count
``unit_shipped`` (products) and ``arm_commissioned`` (arms built) per bin,
and the genealogy comes from ``kpis.json``'s ``built_robots``.
"""

from __future__ import annotations

import html
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bus.simtime import NS
from clients.report_data import Run
from clients.report_plots import WIDTH_IN, time_unit

BIN_S = 300.0
"""Output is counted per 5 minutes of sim time (per minute for runs under 15 minutes)."""


def builds_robots(run: Run) -> bool:
    """Whether the run's cell builds robots (so the page shows its fleet)."""
    return isinstance(run.kpis.get("built_robots"), list)


def fleet_series(run: Run) -> tuple[list[float], list[int]]:
    """(sim seconds, fleet size) at the start and at every robot that joined the fleet."""
    start = len([r for r in (run.kpis.get("robots") or {}) if not _built(run, r)])
    times, sizes = [0.0], [start]
    for e in run.events:
        if e.kind == "robot_added":
            times.append(e.t_ns / NS)
            sizes.append(sizes[-1] + 1)
    return times, sizes


def _built(run: Run, robot: str) -> bool:
    return any(b.get("robot") == robot for b in run.kpis.get("built_robots") or [])


def output_bins(run: Run, bin_s: float) -> tuple[list[float], list[int], list[int]]:
    """Bin starts, products shipped and arms commissioned per bin."""
    n = max(1, int(-(-run.end_ns // int(bin_s * NS))))
    shipped, built = [0] * n, [0] * n
    for e in run.events:
        k = min(n - 1, int(e.t_ns / NS // bin_s))
        if e.kind == "unit_shipped":
            shipped[k] += 1
        elif e.kind == "arm_commissioned":
            built[k] += 1
    return [i * bin_s for i in range(n)], shipped, built


def fleet_figure(run: Run) -> Figure:
    """Units shipped and arms built per bin (bars) beside the fleet size (a step line)."""
    unit_s, unit = time_unit(run.end_ns)
    bin_s = BIN_S if run.end_ns >= 900 * NS else 60.0
    starts, shipped, built = output_bins(run, bin_s)
    fig = Figure(figsize=(WIDTH_IN, 3.8), layout="constrained")
    ax = fig.add_subplot()
    w = bin_s / unit_s
    xs = [s / unit_s for s in starts]
    ax.bar(xs, shipped, width=w * 0.45, align="edge", color="#6baed6", label="units shipped")
    ax.bar(
        [x + w * 0.45 for x in xs],
        built,
        width=w * 0.45,
        align="edge",
        color="#fd8d3c",
        label="arms built",
    )
    ax.set_ylabel(f"per {bin_s / 60:g} min")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max([*shipped, *built, 1]) * 1.3)
    fleet = ax.twinx()
    times, sizes = fleet_series(run)
    end = run.end_ns / NS / unit_s
    fleet.step(
        [t / unit_s for t in times] + [end],
        [*sizes, sizes[-1]],
        where="post",
        color="#54278f",
        linewidth=2.0,
        label="robots in the fleet",
    )
    fleet.set_ylabel("robots")
    fleet.yaxis.set_major_locator(MaxNLocator(integer=True))
    fleet.set_ylim(0, max(sizes) * 1.3)
    ax.set_xlim(0, end or 1)
    ax.set_xlabel(f"sim time ({unit})")
    ax.set_title("Output and fleet size", loc="left", fontweight="bold")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    lines = ax.get_legend_handles_labels()
    more = fleet.get_legend_handles_labels()
    ax.legend(
        lines[0] + more[0], lines[1] + more[1], loc="upper left", frameon=False, fontsize="small"
    )
    return fig


def genealogy_table(run: Run) -> str:
    """Every built robot: serial, where it stands, when, its parts and who did each step."""
    rows = []
    for b in run.kpis.get("built_robots") or []:
        if not isinstance(b, dict):
            continue
        parts = ", ".join(f"{_e(p)} ({_e(k)})" for p, k in b.get("parts") or [])
        steps = "<br>".join(
            f"{_e(s)}: {_e(r)} at {float(t):.1f} s" for s, r, t in b.get("ops") or []
        )
        check: dict[str, Any] = b.get("check") or {}
        joined = b.get("joined_s")
        verdict = f"passed, joined at {float(joined):.1f} s" if joined is not None else "not joined"
        evidence = (
            f"sweep {check.get('sweep_rad', '-')} rad, tool {check.get('tcp_mm', '-')} mm, "
            f"lift {check.get('lift_mm', '-')} mm"
            if check
            else "check pending"
        )
        rows.append(
            "<tr>"
            f"<td><b>{_e(b.get('serial'))}</b><br>{_e(b.get('robot'))} ({_e(b.get('model'))})</td>"
            f"<td>{_e(b.get('mount'))}</td>"
            f"<td>{float(b.get('commissioned_s', 0)):.1f} s</td>"
            f"<td>{verdict}<br><small>{_e(evidence)}</small></td>"
            f"<td><small>{parts}</small></td>"
            f"<td><small>{steps}</small></td>"
            "</tr>"
        )
    if not rows:
        return "<p>No robot was built in this run.</p>"
    head = (
        "<tr><th>serial / robot</th><th>mount</th><th>commissioned</th>"
        "<th>commissioning check</th><th>parts consumed</th><th>steps (robot, sim time)</th></tr>"
    )
    return f'<table class="genealogy">{head}{"".join(rows)}</table>'


def _e(text: object) -> str:
    return html.escape(str(text))
