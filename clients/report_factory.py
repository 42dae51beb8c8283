"""The factory's report: ``report.html`` in a factory run's directory, from its files alone.

Every line's state, output, throughput, OEE, ledger, stock-outs and faults; every
order's progress, due time, lateness and shipment; every store's stock, what is
on order and its reorder point; the material balance; and two pictures: each
line's units built over time (scrapped units marked), and each order's progress
against its due time. Read from ``kpis.json`` (the figures), ``events.jsonl``
(the coordinator's log: when each unit was built or scrapped and for which
order) and ``factory.json`` (what was run), so an old run gets its report too
(``lightsout report RUN`` on a factory run). Rows carry ids (``line-L1``,
``order-O00001``, ``store-inbound-frame``) a test or a reader can find.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bus.errors import ConfigError
from bus.simtime import NS
from clients.report import CSS, REPORT, write_page
from clients.report_plots import WIDTH_IN, time_unit, to_svg

CAPTIONS = {
    "units": "Units built on each line over sim time (x: a unit scrapped on that line).",
    "orders": "Each order's progress (units built over its quantity) over sim time; its due "
    "time is the dashed mark, its shipment the dot.",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(str(path), "", f"not JSON: {exc}") from None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The coordinator's log; a line that is not a JSON object is one error naming it."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    for n, line in enumerate(lines, 1):
        try:
            ev = json.loads(line)
        except ValueError:
            ev = None
        if not isinstance(ev, dict) or not isinstance(ev.get("t_ns"), int):
            raise ConfigError(str(path), f"line {n}", "not an event (a JSON object with t_ns)")
        out.append(ev)
    return out


def is_factory_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a factory run (it has ``factory.json``), not a cell run."""
    return (run_dir / "factory.json").is_file()


def write_factory_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` for a factory run; return its path (``ConfigError``, one
    line, if a file is missing or damaged)."""
    kpis = _read_json(run_dir / "kpis.json")
    meta = _read_json(run_dir / "factory.json")
    events = read_events(run_dir / "events.jsonl")
    if not isinstance(kpis, dict) or not isinstance(kpis.get("lines"), dict):
        raise ConfigError(str(run_dir / "kpis.json"), "lines", "not a factory's KPIs")
    page = render_factory_report(run_dir, kpis, meta if isinstance(meta, dict) else {}, events)
    return write_page(run_dir / REPORT, page)


def render_factory_report(
    run_dir: Path, kpis: dict[str, Any], meta: dict[str, Any], events: list[dict[str, Any]]
) -> str:
    """The page as a string."""
    title = f"factory {kpis.get('factory', run_dir.name)} - seed {meta.get('seed', '?')}"
    balanced = "balances" if kpis.get("material_balanced") else "DOES NOT balance"
    chaos = f"; chaos {meta['chaos']:g}/s on every line" if meta.get("chaos") else ""
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">run <code>{_e(str(run_dir))}</code>; {kpis.get("duration_s", 0):g} s '
        f"of sim time; {len(kpis['lines'])} lines, {len(kpis.get('orders') or {})} orders, "
        f"{kpis.get('shipments', 0)} shipments; the material {balanced}{_e(chaos)}</p>",
        "<h2>Lines</h2>",
        lines_table(kpis),
        "<h2>Orders</h2>",
        orders_table(kpis),
    ]
    end_ns = round(float(kpis.get("duration_s", 0)) * NS)
    for key, fig in (
        ("units", units_figure(events, list(kpis["lines"]), end_ns)),
        ("orders", orders_figure(events, kpis, end_ns)),
    ):
        body.append(
            f'<figure id="figure-{key}">{to_svg(fig, key=key)}'
            f"<figcaption>{_e(CAPTIONS[key])}</figcaption></figure>"
        )
    body += ["<h2>Stores</h2>", stores_table(kpis), "<h2>Material</h2>", material_table(kpis)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} - lightsout report</title><style>{CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(table_id: str, head: list[str], rows: list[tuple[str, list[str]]]) -> str:
    """A table whose rows carry ids; cells are escaped here."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        f'<tr id="{_e(rid)}">' + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
        for rid, cells in rows
    )
    return f'<table id="{table_id}"><thead><tr>{th}</tr></thead>{body}</table>'


def _pct(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, float) else "-"


def _kinds(m: Any) -> str:
    return ", ".join(f"{k} {n}" for k, n in m.items()) if isinstance(m, dict) and m else "-"


def lines_table(kpis: dict[str, Any]) -> str:
    head = ["line", "state", "released", "built", "shipped", "scrapped", "units/h", "OEE"]
    head += ["ledger", "stock-outs", "faults injected / detected / recovered"]
    rows = []
    for name, ln in kpis["lines"].items():
        f = ln.get("faults") or {}
        rows.append(
            (
                f"line-{name}",
                [
                    name,
                    str(ln.get("state", "-")),
                    str(ln.get("released")),
                    str(ln.get("built")),
                    str(ln.get("units_shipped")),
                    str(ln.get("units_scrapped")),
                    f"{ln.get('throughput_per_hour') or 0:.1f}",
                    _pct(ln.get("oee")),
                    "balanced" if ln.get("ledger_balanced") else "NOT balanced",
                    _kinds(ln.get("stockouts")),
                    f"{f.get('injected', 0)} / {f.get('detected', 0)} / {f.get('recovered', 0)}",
                ],
            )
        )
    return _table("lines", head, rows)


def orders_table(kpis: dict[str, Any]) -> str:
    head = ["order", "customer", "product", "quantity", "released", "built", "scrapped"]
    head += ["progress", "due", "shipped", "shipment", "lateness"]
    rows = []
    for oid, o in (kpis.get("orders") or {}).items():
        shipped = o.get("shipped_s")
        rows.append(
            (
                f"order-{oid}",
                [
                    oid + (" (rush)" if o.get("rush") else ""),
                    str(o.get("customer")),
                    str(o.get("product")),
                    str(o.get("quantity")),
                    str(o.get("released")),
                    str(o.get("built")),
                    str(o.get("scrapped", 0)),
                    _pct(o.get("progress")),
                    f"{o.get('due_s', 0):g} s",
                    "-" if shipped is None else f"{shipped:g} s",
                    str(o.get("shipment") or "-"),
                    f"{o.get('lateness_s', 0):g} s",
                ],
            )
        )
    return _table("orders", head, rows)


def stores_table(kpis: dict[str, Any]) -> str:
    head = ["store", "part / product", "stock", "on order", "reorder point", "lots", "purchases"]
    rows = []
    for name, s in (kpis.get("stores") or {}).items():
        if s.get("role") == "finished":
            cells = [name, "finished units", _kinds(s.get("stock")), "-", "-", "-"]
            rows.append((f"store-{name}", [*cells, f"{s.get('shipped')} shipped"]))
            continue
        for kind, n in (s.get("stock") or {}).items():
            rows.append(
                (
                    f"store-{name}-{kind}",
                    [
                        name,
                        kind,
                        str(n),
                        str((s.get("on_order") or {}).get(kind, 0)),
                        str((s.get("reorder_point") or {}).get(kind, 0)),
                        str(s.get("lots_received")),
                        str(s.get("purchases")),
                    ],
                )
            )
    return _table("stores", head, rows)


def material_table(kpis: dict[str, Any]) -> str:
    cols = ("received", "in_store", "wip", "consumed", "scrapped", "shipped")
    head = ["part", "received", "in store", "WIP", "consumed", "scrapped", "shipped", "balance"]
    rows = [
        (
            f"material-{kind}",
            [kind, *(str(m.get(c)) for c in cols), "ok" if m.get("balanced") else "NOT balanced"],
        )
        for kind, m in (kpis.get("material") or {}).items()
    ]
    return _table("material", head, rows)


# ---------------------------------------------------------------- pictures


def units_figure(events: list[dict[str, Any]], lines: list[str], end_ns: int) -> Figure:
    """Cumulative units built per line over sim time (a step line each), scraps marked."""
    unit_s, unit = time_unit(end_ns)
    fig = Figure(figsize=(WIDTH_IN, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for i, line in enumerate(lines):
        colour = f"C{i % 10}"
        mine = [e for e in events if e["kind"] == "unit_built" and e.get("line") == line]
        times = [0.0] + [e["t_ns"] / NS / unit_s for e in mine] + [end_ns / NS / unit_s]
        counts = [*range(len(mine) + 1), len(mine)]
        ax.step(times, counts, where="post", color=colour, label=line, gid=f"units-{line}")
        scrapped = [
            e["t_ns"] / NS / unit_s
            for e in events
            if e["kind"] == "unit_scrapped" and e.get("line") == line
        ]
        if scrapped:
            done = [sum(1 for e in mine if e["t_ns"] / NS / unit_s <= t) for t in scrapped]
            ax.plot(scrapped, done, "x", color=colour, markersize=7, gid=f"scrapped-{line}")
    ax.set_xlim(0, end_ns / NS / unit_s or 1)
    ax.set_xlabel(f"sim time ({unit})")
    ax.set_ylabel("units built")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", ncols=min(len(lines), 6), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def orders_figure(events: list[dict[str, Any]], kpis: dict[str, Any], end_ns: int) -> Figure:
    """Each order's share built over sim time against its due time (dashed) and shipment."""
    unit_s, unit = time_unit(end_ns)
    orders = kpis.get("orders") or {}
    po_order = {e["production_order"]: e["order"] for e in events if e["kind"] == "order_released"}
    fig = Figure(figsize=(WIDTH_IN, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (oid, o) in enumerate(orders.items()):
        colour = f"C{i % 10}"
        qty = max(1, int(o.get("quantity") or 1))
        built = [
            e["t_ns"] / NS / unit_s
            for e in events
            if e["kind"] == "unit_built" and po_order.get(e.get("production_order")) == oid
        ]
        start = float(o.get("taken_s") or 0.0) / unit_s
        times = [start, *built, end_ns / NS / unit_s]
        shares = [0.0] + [(n + 1) / qty for n in range(len(built))] + [len(built) / qty]
        ax.step(times, shares, where="post", color=colour, label=oid, gid=f"order-{oid}")
        ax.axvline(float(o.get("due_s") or 0) / unit_s, color=colour, ls="--", lw=0.8)
        if o.get("shipped_s") is not None:
            ax.plot([o["shipped_s"] / unit_s], [1.0], "o", color=colour, gid=f"shipped-{oid}")
    ax.set_xlim(0, end_ns / NS / unit_s or 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel(f"sim time ({unit})")
    ax.set_ylabel("share built")
    if 0 < len(orders) <= 20:
        ax.legend(loc="lower right", ncols=min(len(orders), 5), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig
