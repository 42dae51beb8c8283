"""The factory at a glance: every line's state and output, the orders' progress, the stores.

One read-only view of the coordinator, built at a step (every line stopped
there), serves everything that shows a running factory: the control socket's
``status`` answer (``factory.control``), the live console
(``clients.console_factory``) and, at the end, the orders and stores of
``kpis.json`` (``factory.run.factory_kpis``), which the report reads. So the
console, ``status``, the KPIs and the report say the same of the same run.

A line's ``state``: ``starved`` (its store could not give it what its released
units need, at the last step), ``working`` (units released to it are not built
yet), ``idle`` (nothing released to it: a pull line waits for orders). Its
output is what the coordinator heard of it (``factory.lines``): units built
and scrapped; its OEE the line's own, from the last KPI snapshot its
supervisor sent (None before the first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from factory.orders import CustomerOrder, OrderBook

if TYPE_CHECKING:
    from factory.coordinator import Coordinator

NS = 1_000_000_000
MAX_STATUS_ORDERS = 200
"""Orders a ``status`` lists (every open one first, then the newest shipped): an answer
stays well under a message's size limit however long the factory runs."""


def line_state(starved: bool, unbuilt: int) -> str:
    """``starved``, ``working`` or ``idle`` (module docstring)."""
    if starved:
        return "starved"
    return "working" if unbuilt > 0 else "idle"


def lines_view(coord: Coordinator, t_ns: int) -> dict[str, dict[str, Any]]:
    """Every line now: state, units released, built, scrapped, throughput, OEE, line side."""
    out = {}
    for ln in coord.spec.lines:
        gate = coord.gates[ln.name]
        released = coord.released(ln.name)
        built = len(gate.finished)
        kpis = gate.kpis
        oee = (kpis.get("oee") or {}).get("oee") if isinstance(kpis.get("oee"), dict) else None
        out[ln.name] = {
            "state": line_state(bool(coord.starved[ln.name]), released - built),
            "cell": ln.cell.name,
            "fidelity": str(ln.fidelity),
            "released": released,
            "unstarted": coord.unstarted(ln.name),
            "built": built,
            "scrapped": gate.scrapped[gate.base],
            "throughput_per_hour": round(built * 3600 * NS / t_ns, 1) if t_ns > 0 else 0.0,
            "oee": oee if isinstance(oee, float) else None,
            "faults": len(kpis.get("faults") or ()),
            "line_side": {k: len(q) for k, q in sorted(gate.side.items())},
            "starved_of": sorted(coord.starved[ln.name]),
        }
    return out


def order_row(o: CustomerOrder, now_ns: int) -> dict[str, Any]:
    """One customer order: what was asked, how far it has come, when it is due and shipped."""
    return {
        "customer": o.customer,
        "product": o.product,
        "quantity": o.quantity,
        "released": o.released,
        "built": o.built,
        "scrapped": o.scrapped,
        "progress": round(o.built / o.quantity, 4),
        "due_s": o.due_ns / NS,
        "taken_s": o.created_ns / NS,
        "shipped_s": None if o.shipped_ns is None else o.shipped_ns / NS,
        "shipment": o.shipment,
        "lateness_s": round(o.lateness_s(now_ns), 3),
        "rush": o.rush,
    }


def orders_view(book: OrderBook, now_ns: int, *, limit: int | None = None) -> dict[str, Any]:
    """Every order (or, with ``limit``, the open ones first and then the newest shipped)."""
    orders = list(book.orders.values())
    if limit is not None and len(orders) > limit:
        open_ = [o for o in orders if o.shipped_ns is None]
        done = [o for o in orders if o.shipped_ns is not None]
        orders = (open_ + done[::-1])[:limit]
        orders.sort(key=lambda o: o.order_id)
    return {o.order_id: order_row(o, now_ns) for o in orders}


def stores_view(coord: Coordinator) -> dict[str, dict[str, Any]]:
    """Every store: a parts store's stock, what is on order and the reorder point per kind,
    its lots and purchases; a finished store's units waiting per product, and shipped."""
    out: dict[str, dict[str, Any]] = {}
    for name, s in coord.stores.items():
        out[name] = {
            "role": "parts",
            "stock": {k: s.stock(k) for k in sorted(s.supplier)},
            "on_order": {k: s.on_order(k) for k in sorted(s.supplier)},
            "reorder_point": {k: s.reorder_points.get(k, 0) for k in sorted(s.supplier)},
            "lots_received": len(s.received),
            "purchases": len(s.purchases),
        }
    for name, f in coord.finished.items():
        products = sorted({p for p, _k in f.units.values()})
        stock = {p: f.count(p) for p in products}
        out[name] = {"role": "finished", "stock": stock, "shipped": f.shipped}
    return out


def factory_status(coord: Coordinator, t_ns: int) -> dict[str, Any]:
    """The whole view at sim time ``t_ns`` (a step): what ``status`` answers, the console
    shows."""
    book = coord.orders
    return {
        "factory": coord.spec.name,
        "t_s": t_ns / NS,
        "lines": lines_view(coord, t_ns),
        "orders": orders_view(book, t_ns, limit=MAX_STATUS_ORDERS),
        "orders_total": len(book.orders),
        "orders_open": sum(o.shipped_ns is None for o in book.orders.values()),
        "shipments": len(book.shipments),
        "stores": stores_view(coord),
        "stockouts": sum(coord.stockouts.values()),
    }
