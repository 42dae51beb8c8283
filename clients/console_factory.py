"""The factory at a glance in the terminal: lines, orders and stores, live.

``lightsout factory run ... --console`` shows it while the factory runs. The
view is the coordinator's own (``factory.view.factory_status``), handed over
after every step; ``render_factory`` turns one into a rich renderable and does
no I/O, so a test renders a real run's view into a recording ``Console``, and
``lightsout factory status`` prints the same tables from a running factory's
control socket. ``FactoryConsole`` keeps the newest view and lets ``rich.live``
redraw it at a few frames a second on its own thread: the lines never wait for
the screen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from clients.console_model import share_bar

STATE_STYLE = {"working": "green", "idle": "dim", "starved": "bold red"}
"""Colour of a line's state (``factory.view.line_state``)."""
MAX_ORDER_ROWS = 12
"""Orders shown on the console (open ones first, most urgent first); the rest are counted."""
FPS = 4.0


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _kinds(m: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {n}" for k, n in m.items()) or "-"


def header(view: Mapping[str, Any]) -> Text:
    """One line: the factory, its sim time, how many orders are open and shipped."""
    t = Text(no_wrap=True, overflow="ellipsis", end="")
    t.append(" lightsout factory ", style="bold reverse")
    t.append(f" {view.get('factory', '?')}  ", style="bold")
    t.append(f"sim {view.get('t_s', 0):.0f} s  ")
    t.append(f"orders {view.get('orders_open', 0)} open of {view.get('orders_total', 0)}  ")
    t.append(f"shipments {view.get('shipments', 0)}  ")
    stockouts = view.get("stockouts", 0)
    t.append(f"stock-outs {stockouts}", style="bold red" if stockouts else "green")
    return t


def lines_table(view: Mapping[str, Any]) -> Table:
    """Every line: state, what it was released and built, its throughput, OEE and the parts
    waiting at its line side."""
    table = Table(title="lines", title_justify="left", expand=False)
    for col in ("line", "state", "released", "built", "scrapped", "units/h", "OEE", "waiting"):
        table.add_column(col, justify="left" if col in ("line", "state") else "right")
    for name, ln in _d(view.get("lines")).items():
        state = str(ln.get("state", "?"))
        if ln.get("starved_of"):
            state += f" ({', '.join(ln['starved_of'])})"
        table.add_row(
            name,
            Text(state, style=STATE_STYLE.get(str(ln.get("state")), "")),
            str(ln.get("released", "-")),
            str(ln.get("built", "-")),
            str(ln.get("scrapped", "-")),
            f"{ln.get('throughput_per_hour') or 0:.0f}",
            share_bar(ln.get("oee") if isinstance(ln.get("oee"), float) else None),
            str(sum(n for n in _d(ln.get("line_side")).values() if isinstance(n, int))),
        )
    return table


def _urgency(item: tuple[str, dict[str, Any]]) -> tuple[bool, bool, float, str]:
    oid, o = item
    return (o.get("shipped_s") is not None, not o.get("rush"), o.get("due_s") or 0.0, oid)


def orders_table(view: Mapping[str, Any], *, limit: int | None = MAX_ORDER_ROWS) -> Table:
    """Orders (open ones first, rush then earliest due): progress, due, lateness, shipment."""
    orders = sorted(_d(view.get("orders")).items(), key=_urgency)
    shown = orders if limit is None else orders[:limit]
    more = len(orders) - len(shown)
    title = "orders" + (f" ({more} more not shown)" if more > 0 else "")
    table = Table(title=title, title_justify="left")
    for col in ("order", "customer", "qty", "progress", "due", "late", "shipped"):
        table.add_column(col, justify="left" if col in ("order", "customer") else "right")
    for oid, o in shown:
        late = o.get("lateness_s") or 0
        shipped = o.get("shipped_s")
        table.add_row(
            oid + (" rush" if o.get("rush") else ""),
            f"{o.get('customer', '?')} ({o.get('product', '?')})",
            str(o.get("quantity", "-")),
            share_bar(o.get("progress") if isinstance(o.get("progress"), float) else None),
            f"{o.get('due_s', 0):g} s",
            Text(f"{late:g} s", style="bold red" if late > 0 else "green"),
            "-" if shipped is None else f"{shipped:.0f} s ({o.get('shipment')})",
        )
    return table


def stores_table(view: Mapping[str, Any]) -> Table:
    """Every store: per part kind its stock, what is on order and the reorder point; a
    finished store's units waiting and shipped."""
    table = Table(title="stores", title_justify="left")
    for col in ("store", "part", "stock", "on order", "reorder at"):
        table.add_column(col, justify="left" if col in ("store", "part") else "right")
    for name, s in _d(view.get("stores")).items():
        if s.get("role") == "finished":
            table.add_row(
                name, "finished units", _kinds(_d(s.get("stock"))), f"{s.get('shipped')} shipped"
            )
            continue
        stock, on_order, point = (
            _d(s.get("stock")),
            _d(s.get("on_order")),
            _d(s.get("reorder_point")),
        )
        for i, kind in enumerate(stock):
            low = stock[kind] + on_order.get(kind, 0) <= point.get(kind, 0)
            table.add_row(
                name if i == 0 else "",
                kind,
                Text(str(stock[kind]), style="bold red" if stock[kind] == 0 else ""),
                str(on_order.get(kind, 0)),
                Text(str(point.get(kind, 0)), style="yellow" if low else ""),
            )
    return table


def render_factory(view: Mapping[str, Any] | None) -> RenderableType:
    """The whole factory view: header, lines, orders, stores."""
    if not view:
        return Text("waiting for the factory's first step ...", style="dim")
    return Group(header(view), lines_table(view), orders_table(view), stores_table(view))


class FactoryConsole:
    """The newest view of a running factory, redrawn by ``rich.live`` on its own thread."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._view: Mapping[str, Any] | None = None
        self._lock = threading.Lock()

    def update(self, view: Mapping[str, Any]) -> None:
        """A new view (``run_factory``'s ``on_step``): kept, drawn at the next frame."""
        with self._lock:
            self._view = view

    def renderable(self) -> RenderableType:
        with self._lock:
            view = self._view
        return render_factory(view)

    @contextmanager
    def live(self) -> Iterator[FactoryConsole]:
        """Show the view until the block ends (then the last frame stays on screen)."""
        with Live(
            get_renderable=self.renderable,
            console=self.console,
            refresh_per_second=FPS,
            transient=False,
        ):
            yield self
