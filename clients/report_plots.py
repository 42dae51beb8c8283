"""The report's pictures: a PackML Gantt chart, the throughput curve and the part flow.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, so no
global figure registry and no GUI backend; rasters go through Agg) and
rendered to SVG with text kept as text, so the page is small, sharp at any
zoom and searchable. Fault markers carry ids (``gid``) that survive into the
SVG: a test, or a reader's browser, can find them.
"""

from __future__ import annotations

import io
import re

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from bus.simtime import NS
from bus.timebuckets import LOST
from clients.report_autonomy import MAINT_COLOUR, maintenance_windows
from clients.report_data import (
    Mark,
    Outage,
    Run,
    Series,
    Span,
    fault_marks,
    op_spans,
    outages,
    part_flow,
    shipped_times,
    state_spans,
    throughput_bins,
)

STATE_COLOURS = {
    "Stopped": "#8c8c8c",
    "Resetting": "#c6dbef",
    "Idle": "#6baed6",
    "Starting": "#a1d99b",
    "Execute": "#31a354",
    "Completing": "#d9f0a3",
    "Complete": "#78c679",
    "Holding": "#fdd0a2",
    "Held": "#fd8d3c",
    "Unholding": "#fdae6b",
    "Suspending": "#dadaeb",
    "Suspended": "#9e9ac8",
    "Unsuspending": "#bcbddc",
    "Stopping": "#d9d9d9",
    "Aborting": "#fb6a4a",
    "Aborted": "#cb181d",
    "Clearing": "#fcbba1",
    LOST: "#525252",
}
"""PackML state colours: greens produce, blues wait, oranges hold, purples suspend, reds abort."""
UNKNOWN_COLOUR = "#ffffff"
FAULT_COLOUR = "#d62728"
OP_COLOUR = "#34495e"
RASTER_BARS = 3000
"""Above this many bars the Gantt's bars are drawn as an image inside the SVG (text, faults
and maintenance stay vectors): a long run's bars are thinner than a pixel, and a path each
would make a page of tens of megabytes that takes minutes to write."""
WIDTH_IN = 11.0
"""Figure width in inches; the page scales the SVG to its column."""

TITLES = {
    "gantt": "PackML state of each robot",
    "throughput": "Throughput",
    "flow": "Part flow",
}
"""Figure titles (also the page's figure headings)."""


def time_unit(end_ns: int) -> tuple[float, str]:
    """Seconds per axis unit and its name: s up to 15 min, min up to 5 h, then h."""
    end_s = end_ns / NS
    if end_s <= 900:
        return 1.0, "s"
    if end_s <= 5 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _x(t_ns: int, unit_s: float) -> float:
    return t_ns / NS / unit_s


# ---------------------------------------------------------------- Gantt


def gantt_figure(run: Run) -> Figure:
    """Each robot's PackML state over sim time, its operations, and every fault in red.

    One row per robot: the state bar on top, a thin bar of operations under
    it (dark when done, red when failed). A fault naming a robot is a red
    line with a triangle on its row; one naming no robot (a conveyor, the
    supervisor) a dashed red line across all rows, named in a ``cell`` lane
    on top; an outage (fault to back in Execute) is shaded red in its lane.
    """
    robots = run.robots
    states = state_spans(run)
    ops = op_spans(run)
    marks = fault_marks(run)
    outs = outages(run)
    unit_s, unit = time_unit(run.end_ns)
    lanes = list(robots)
    if any(m.robot not in robots for m in marks) or any(o.robot not in robots for o in outs):
        lanes.insert(0, "")  # a lane of its own for faults of the cell, above the robots
    rows = max(1, len(lanes))
    fig = Figure(figsize=(WIDTH_IN, 1.6 + 0.62 * rows), layout="constrained")
    ax = fig.add_subplot()
    y_of = {r: rows - 1 - i for i, r in enumerate(lanes)}
    seen_states: list[str] = []
    bars: dict[tuple[float, float, str, float], list[Span]] = {}
    for robot in robots:
        y = y_of[robot]
        for s in states.get(robot, []):
            if s.label not in seen_states:
                seen_states.append(s.label)
            colour = STATE_COLOURS.get(s.label, UNKNOWN_COLOUR)
            bars.setdefault((y + 0.02, 0.4, colour, 1.0), []).append(s)
        for s in ops.get(robot, []):
            colour = FAULT_COLOUR if s.label == "failed" else OP_COLOUR
            alpha = 1.0 if s.label != "running" else 0.5
            bars.setdefault((y - 0.3, 0.22, colour, alpha), []).append(s)
    raster = sum(map(len, bars.values())) > RASTER_BARS
    for (y0, h, colour, alpha), spans in bars.items():
        _bars(ax, spans, y0, h, colour, unit_s, alpha=alpha, rasterized=raster)
    for i, o in enumerate(outs):
        _outage(ax, o, i, y_of, rows, unit_s)
    maints = [w for w in maintenance_windows(run) if w["robot"] in y_of]
    for i, w in enumerate(maints):
        x0 = _x(w["started_ns"], unit_s)
        x1 = _x(w["done_ns"] if w["done_ns"] >= 0 else run.end_ns, unit_s)
        patch = Rectangle(
            (x0, y_of[w["robot"]] - 0.45),
            max(x1 - x0, 0.0),
            0.95,
            facecolor="none",
            edgecolor=MAINT_COLOUR,
            hatch="//",
            linewidth=1.2,
            zorder=0.7,
        )
        patch.set_gid(f"maintenance-{i}")
        ax.add_patch(patch)
    for i, m in enumerate(marks):
        _mark(ax, m, i, y_of, rows, unit_s)
    ax.set_yticks([y_of[r] for r in lanes], [r or "cell" for r in lanes])
    ax.set_ylim(-0.6, rows - 0.4)
    ax.set_xlim(0, _x(run.end_ns, unit_s) or 1)
    ax.set_xlabel(f"sim time ({unit})")
    ax.set_title(TITLES["gantt"], loc="left", fontweight="bold")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    order = [s for s in STATE_COLOURS if s in seen_states] + [
        s for s in seen_states if s not in STATE_COLOURS
    ]
    handles: list[Artist] = [
        Patch(facecolor=STATE_COLOURS.get(s, UNKNOWN_COLOUR), edgecolor="#555555", label=s)
        for s in order
    ]
    handles.append(Patch(facecolor=OP_COLOUR, label="operation"))
    if any(s.label == "failed" for v in ops.values() for s in v):
        handles.append(Patch(facecolor=FAULT_COLOUR, label="failed operation"))
    if marks:
        handles.append(
            Line2D(
                [],
                [],
                color=FAULT_COLOUR,
                marker="v",
                linewidth=1.6,
                label=f"fault event ({len(marks)})",
            )
        )
    if outs:
        handles.append(Patch(facecolor=FAULT_COLOUR, alpha=0.15, label="down (to Execute)"))
    if maints:
        handles.append(
            Patch(facecolor="none", edgecolor=MAINT_COLOUR, hatch="//", label="maintenance")
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 8),
        frameon=False,
        fontsize="small",
    )
    return fig


def _bars(
    ax: Axes,
    spans: list[Span],
    y0: float,
    h: float,
    colour: str,
    unit_s: float,
    *,
    alpha: float,
    rasterized: bool,
) -> None:
    """The spans of one lane in one colour: one collection, not a patch each (a day's run
    has some 100,000 of them)."""
    ranges = [
        (_x(s.start_ns, unit_s), _x(s.end_ns, unit_s) - _x(s.start_ns, unit_s)) for s in spans
    ]
    ax.broken_barh(
        ranges,
        (y0, h),
        facecolors=colour,
        edgecolors="none",
        alpha=alpha,
        linewidth=0,
        rasterized=rasterized,
    )


def _mark(ax: Axes, m: Mark, i: int, y_of: dict[str, int], rows: int, unit_s: float) -> None:
    x = _x(m.t_ns, unit_s)
    gid = f"fault-{i}"
    if m.robot and m.robot in y_of:
        y = y_of[m.robot]
        (line,) = ax.plot([x, x], [y - 0.42, y + 0.46], color=FAULT_COLOUR, linewidth=1.6)
        (tri,) = ax.plot([x], [y + 0.5], marker="v", color=FAULT_COLOUR, markersize=7)
        line.set_gid(gid)
        tri.set_gid(f"{gid}-marker")
    else:
        line = ax.axvline(x, color=FAULT_COLOUR, linewidth=1.4, linestyle="--")
        line.set_gid(gid)
        ax.annotate(
            m.detail or m.kind,
            (x, y_of[""]),
            xytext=(4, 0),
            textcoords="offset points",
            color=FAULT_COLOUR,
            fontsize="small",
            va="center",
        )


def _outage(ax: Axes, o: Outage, i: int, y_of: dict[str, int], rows: int, unit_s: float) -> None:
    x0 = _x(o.start_ns, unit_s)
    w = max(_x(o.end_ns, unit_s) - x0, 0.0)
    y0, h = y_of[o.robot if o.robot in y_of else ""] - 0.45, 0.95
    patch = Rectangle(
        (x0, y0), w, h, facecolor=FAULT_COLOUR, alpha=0.15, edgecolor="none", zorder=0.6
    )
    patch.set_gid(f"outage-{i}")
    ax.add_patch(patch)


# ---------------------------------------------------------------- throughput


def throughput_figure(run: Run, *, bin_s: float | None = None) -> Figure:
    """Units shipped per ``bin_s`` of sim time (bars) and in total (a step curve).

    Bins are 5 minutes of sim time, or 1 minute for a run shorter than 15
    minutes, where 5-minute bars would be one or two blocks saying nothing.

    A last bin cut short by the end of the run is drawn lighter and says so:
    its count is not comparable with the full ones. The dotted line is the
    run's average throughput from ``kpis.json``, so the picture and the
    table agree.
    """
    unit_s, unit = time_unit(run.end_ns)
    if bin_s is None:
        bin_s = 300.0 if run.end_ns >= 900 * NS else 60.0
    starts, counts = throughput_bins(run, bin_s)
    end_s = run.end_ns / NS
    fig = Figure(figsize=(WIDTH_IN, 5.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.2))
    for s, c in zip(starts, counts, strict=True):
        last = s == starts[-1]
        width = (end_s - s if last else bin_s) if end_s > s else bin_s
        partial = width < bin_s * 0.95
        bar = top.bar(
            s / unit_s,
            c,
            width=width / unit_s,
            align="edge",
            color="#6baed6" if not partial else "#c6dbef",
            edgecolor="#2171b5",
            linewidth=0.8,
        )
        bar.patches[0].set_gid(f"bin-{int(s)}")
        label = f"{c}" + (f" (in {width / 60:.3g} of {bin_s / 60:g} min)" if partial else "")
        top.annotate(
            label,
            (s / unit_s + width / unit_s / 2, c),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="small",
        )
    top.set_ylabel(f"units / {bin_s / 60:g} min")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylim(0, max([*counts, 1]) * 1.25)
    top.set_title(TITLES["throughput"], loc="left", fontweight="bold")
    top.grid(axis="y", color="#dddddd", linewidth=0.6)
    top.set_axisbelow(True)
    times = shipped_times(run)
    xs = [0.0, *(_x(t, unit_s) for t in times), end_s / unit_s]
    ys = [*range(len(times) + 1), len(times)]
    bottom.step(xs, ys, where="post", color="#08519c", linewidth=1.8, label="units shipped")
    rate = run.kpis.get("throughput_per_hour")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
        bottom.plot(
            [0, end_s / unit_s],
            [0, rate * end_s / 3600],
            color="#555555",
            linestyle=":",
            linewidth=1.2,
            label=f"average {rate:g} units/h",
        )
    bottom.set_ylabel("units shipped (total)")
    bottom.set_xlabel(f"sim time ({unit})")
    bottom.set_xlim(0, end_s / unit_s or 1)
    bottom.set_ylim(0, max(len(times), 1) * 1.1)
    bottom.grid(color="#dddddd", linewidth=0.6)
    bottom.legend(loc="upper left", frameon=False, fontsize="small")
    return fig


# ---------------------------------------------------------------- part flow


FLOW_STYLE = {
    "wip": ("#fd8d3c", "work in progress"),
    "created": ("#2171b5", "created"),
    "shipped": ("#238b45", "shipped"),
    "scrapped": ("#cb181d", "scrapped"),
}
"""Line colours and labels, in drawing order (WIP, filled, at the back)."""


def flow_figure(run: Run) -> Figure:
    """Parts created, shipped and scrapped (totals) and work in progress, over sim time."""
    unit_s, unit = time_unit(run.end_ns)
    flow: Series = part_flow(run)
    end = run.end_ns / NS / unit_s
    xs = [t / NS / unit_s for t in flow.t_ns] + [end]
    fig = Figure(figsize=(WIDTH_IN, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for key, (colour, label) in FLOW_STYLE.items():
        ys = [*flow.columns[key], flow.columns[key][-1]]
        last = ys[-1]
        if key == "wip":
            ax.fill_between(xs, ys, step="post", color=colour, alpha=0.18, linewidth=0)
        (line,) = ax.step(
            xs, ys, where="post", color=colour, linewidth=1.8, label=f"{label} ({last})"
        )
        line.set_gid(f"flow-{key}")
    ax.set_xlim(0, end or 1)
    ax.set_ylim(0, max([*flow.columns["created"], 1]) * 1.08)
    ax.set_xlabel(f"sim time ({unit})")
    ax.set_ylabel("parts")
    ax.set_title(TITLES["flow"], loc="left", fontweight="bold")
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return fig


# ---------------------------------------------------------------- rendering


def figures(run: Run) -> dict[str, Figure]:
    """Every figure of the report, by key (``gantt``, ``throughput``, ``flow``)."""
    return {
        "gantt": gantt_figure(run),
        "throughput": throughput_figure(run),
        "flow": flow_figure(run),
    }


_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_SIZE = re.compile(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"')


def to_svg(fig: Figure, *, key: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML.

    Text stays text (``svg.fonttype: none``); ids are salted per figure so
    several inlined figures never share one; the date is left out so the same
    run gives the same page. The fixed size goes, the viewBox stays, so the
    page can scale it.
    """
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"lightsout-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = _PROLOGUE.sub("", buf.getvalue(), count=1)
    text = _SIZE.sub(r"\1", text, count=1)
    return text.replace("<svg ", f'<svg class="figure" id="fig-{key}" role="img" ', 1)


def to_png(fig: Figure, path: str, *, dpi: int = 110) -> None:
    """Write the figure as a PNG (for a look at it outside the page)."""
    fig.savefig(path, format="png", dpi=dpi)
