"""Customer orders, production orders and their release to lines: a small ISA-95 slice, pure.

A customer order asks for a quantity of a product by a due time. The
coordinator never pushes work at a line: ``plan_releases`` pulls, giving a
line a production order only for the room it has (its capacity hint over
the release horizon, less what it was released and has not built), and only
while it is available (not down, not starved); an order is shared out evenly
among the lines that can take it. Rush orders go first, then the earliest due
(EDD), then the oldest. A finished unit is pegged to the open
production order of its line and product whose customer order comes first
(the units of a line are alike); one that matches none was not released, and
the line that built it is counted for it (pull broken). When a line is
starved or down, what it was released and has not started goes back to its
orders (``withdraw``), to be released to another line. An order whose every
unit is built is packed and shipped; its lateness is its shipping time past
its due time.

``plan_releases`` is a function of read-only views, so it is tested alone;
``OrderBook`` owns the orders and applies its decisions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from bus.errors import ConfigError
from bus.security import SAFE_NAME, SAFE_NAME_RULE

S = 1_000_000_000
MAX_QUANTITY = 10_000_000
"""The most units one order may ask for."""
MAX_DUE_S = 365 * 24 * 3600.0
"""An order is due within a year of sim time."""


@dataclasses.dataclass(slots=True)
class CustomerOrder:
    """What a customer asked for, and how far it has come."""

    order_id: str
    customer: str
    product: str
    quantity: int
    due_ns: int
    created_ns: int
    rush: bool = False
    released: int = 0
    """Units released to lines (production orders), less any withdrawn or scrapped (those
    are released again)."""
    built: int = 0
    scrapped: int = 0
    """Units of it scrapped on a line (each released again)."""
    shipped_ns: int | None = None
    shipment: str | None = None

    @property
    def unreleased(self) -> int:
        """Units not yet released to any line."""
        return self.quantity - self.released

    def lateness_s(self, now_ns: int) -> float:
        """Seconds past due: at shipping if shipped, else now; 0 if on time."""
        end = self.shipped_ns if self.shipped_ns is not None else now_ns
        return max(0, end - self.due_ns) / S


@dataclasses.dataclass(slots=True)
class ProductionOrder:
    """Units of one customer order released to one line."""

    po_id: str
    order_id: str
    line: str
    product: str
    quantity: int
    released_ns: int
    serials: list[str] = dataclasses.field(default_factory=list)
    withdrawn: int = 0
    scrapped: int = 0
    """Units of it scrapped on the line (given back to the customer order)."""

    @property
    def open(self) -> int:
        """Units released and neither built, withdrawn nor scrapped."""
        return self.quantity - len(self.serials) - self.withdrawn - self.scrapped


@dataclasses.dataclass(frozen=True, slots=True)
class LineView:
    """What release needs of a line: what it makes, its capacity, whether it may take work."""

    name: str
    products: tuple[str, ...]
    capacity_per_h: float
    available: bool
    open_units: int
    """Units released to it and not yet begun (its room is its window less these)."""
    in_work: int = 0
    """Units begun and not yet finished: of two lines with the same room, the less busy one
    is given work first (a unit scrapped on a busy line is built again on an idle one)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Release:
    """A decision: release ``quantity`` units of an order to a line, and why."""

    order_id: str
    line: str
    quantity: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Shipment:
    """An order's units packed and shipped."""

    shipment: str
    order_id: str
    customer: str
    serials: tuple[str, ...]
    shipped_ns: int


def window(capacity_per_h: float, horizon_s: float) -> int:
    """Units a line may hold released at once: its capacity over the horizon, at least one."""
    return max(1, math.ceil(capacity_per_h * horizon_s / 3600.0))


def priority(o: CustomerOrder) -> tuple[bool, int, int, str]:
    """Release order: rush first, then earliest due, then oldest, then id."""
    return (not o.rush, o.due_ns, o.created_ns, o.order_id)


def plan_releases(
    orders: Sequence[CustomerOrder], lines: Sequence[LineView], *, horizon_s: float
) -> list[Release]:
    """What to release now: each order in priority, shared out among the available lines
    making its product that have room, evenly as far as their room allows (so an order is
    built on as many lines as can take it, and sooner), most room first, then the least busy
    (fewest units in work), then by name. Pure."""
    room = {
        ln.name: window(ln.capacity_per_h, horizon_s) - ln.open_units
        for ln in lines
        if ln.available
    }
    makes = {ln.name: ln.products for ln in lines}
    busy = {ln.name: ln.in_work for ln in lines}
    out = []
    for o in sorted(orders, key=priority):
        left = o.unreleased
        given: dict[str, int] = {}
        before = dict(room)
        while left > 0:
            able = sorted(
                (n for n, r in room.items() if r > 0 and o.product in makes[n]),
                key=lambda n: (-room[n], busy[n], n),
            )
            if not able:
                break
            share = max(1, left // len(able))
            for name in able:  # every round gives at least one unit: it ends
                n = min(share, room[name], left)
                if n <= 0:
                    break
                given[name] = given.get(name, 0) + n
                room[name] -= n
                left -= n
        why = "rush" if o.rush else f"due {o.due_ns / S:g} s"
        for name, n in given.items():
            out.append(Release(o.order_id, name, n, f"{why}; room {before[name]} on {name}"))
    return out


class OrderBook:
    """Every customer and production order of a factory run, and their shipments."""

    def __init__(self, products: Sequence[str], *, source: str = "order") -> None:
        self.products = frozenset(products)
        self.source = source
        self.orders: dict[str, CustomerOrder] = {}
        self.production: list[ProductionOrder] = []
        self.shipments: list[Shipment] = []
        self.unreleased_units: dict[str, list[str]] = {}
        """Per line: units built that no production order asked for (pull broken)."""

    def add(
        self,
        customer: str,
        product: str,
        quantity: int,
        *,
        due_s: float,
        now_ns: int,
        rush: bool = False,
        order_id: str = "",
    ) -> CustomerOrder:
        """Take a customer order, or one ``ConfigError`` naming the field and the reason."""
        oid = order_id or f"O{len(self.orders) + 1:05d}"
        for key, value in (("order", oid), ("customer", customer)):
            if not SAFE_NAME.match(value):
                raise ConfigError(self.source, key, f"{value[:80]!r}: {SAFE_NAME_RULE}")
        if oid in self.orders:
            raise ConfigError(self.source, "order", f"{oid!r} exists already")
        if product not in self.products:
            known = ", ".join(sorted(self.products))
            raise ConfigError(self.source, "product", f"{product!r}: no line makes it ({known})")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ConfigError(self.source, "quantity", f"expected a whole number, got {quantity!r}")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ConfigError(self.source, "quantity", f"from 1 to {MAX_QUANTITY}, got {quantity}")
        if not (math.isfinite(due_s) and 0 <= due_s <= MAX_DUE_S):
            raise ConfigError(self.source, "due", f"from 0 to {MAX_DUE_S:g} s, got {due_s}")
        o = CustomerOrder(oid, customer, product, quantity, round(due_s * S), now_ns, rush)
        self.orders[oid] = o
        return o

    def rush(self, order_id: str) -> None:
        """Make an order a rush order: it goes to the head of release."""
        self.orders[order_id].rush = True

    def open_units(self, line: str) -> int:
        """Units released to ``line`` and not yet built or withdrawn."""
        return sum(p.open for p in self.production if p.line == line)

    def release(self, decisions: Sequence[Release], now_ns: int) -> list[ProductionOrder]:
        """Apply ``plan_releases``' decisions: one production order each."""
        made = []
        for d in decisions:
            o = self.orders[d.order_id]
            n = min(d.quantity, o.unreleased)
            if n <= 0:
                continue
            po = ProductionOrder(
                f"P{len(self.production) + 1:05d}", o.order_id, d.line, o.product, n, now_ns
            )
            o.released += n
            self.production.append(po)
            made.append(po)
        return made

    def withdraw(self, line: str, limit: int | None = None, *, spare_rush: bool = False) -> int:
        """Take back up to ``limit`` (default: all) of the units ``line`` was released and has
        not built, newest production orders first (it went down or is starved; with
        ``spare_rush``, only from orders that are not rush, to make room for one): the units
        return to their orders, to be released again. Returns how many."""
        total = 0
        for p in reversed(self.production):
            if p.line != line or p.open <= 0:
                continue
            if spare_rush and self.orders[p.order_id].rush:
                continue
            n = p.open if limit is None else min(p.open, limit - total)
            if n <= 0:
                break
            p.withdrawn += n
            self.orders[p.order_id].released -= n
            total += n
        return total

    def _pegged(self, line: str, product: str, t_ns: int | None) -> ProductionOrder | None:
        """The open production order of ``product`` on ``line`` (released by ``t_ns``, if
        given) whose customer order comes first: the units of a line are alike, so the most
        urgent order takes the next one finished (or loses the next one scrapped)."""
        able = [
            p
            for p in self.production
            if p.line == line
            and p.product == product
            and p.open > 0
            and (t_ns is None or p.released_ns <= t_ns)
        ]
        return min(able, key=lambda p: (priority(self.orders[p.order_id]), p.po_id), default=None)

    def built(
        self, line: str, product: str, serial: str, t_ns: int | None = None
    ) -> ProductionOrder | None:
        """A unit of ``product`` finished on ``line``: peg it to its production order
        (``_pegged``), or count it as built without a release (returns None). With ``t_ns``,
        only orders released by then count."""
        p = self._pegged(line, product, t_ns)
        if p is None:
            self.unreleased_units.setdefault(line, []).append(serial)
            return None
        p.serials.append(serial)
        self.orders[p.order_id].built += 1
        return p

    def scrapped(self, line: str, product: str, t_ns: int | None = None) -> ProductionOrder | None:
        """A unit of ``product`` was scrapped on ``line``: its production order (``_pegged``)
        gives the unit back to its customer order, to be released again; None if no order
        was waiting for it (built without a release)."""
        p = self._pegged(line, product, t_ns)
        if p is None:
            return None
        p.scrapped += 1
        o = self.orders[p.order_id]
        o.released -= 1
        o.scrapped += 1
        return p

    def complete(self) -> list[CustomerOrder]:
        """Orders whose every unit is built and which are not shipped yet, in priority."""
        done = [o for o in self.orders.values() if o.shipped_ns is None and o.built >= o.quantity]
        return sorted(done, key=priority)

    def ship(self, order_id: str, now_ns: int) -> Shipment:
        """Pack and ship a complete order: the shipment names its units."""
        o = self.orders[order_id]
        serials = tuple(s for p in self.production if p.order_id == order_id for s in p.serials)
        sh = Shipment(f"S{len(self.shipments) + 1:05d}", order_id, o.customer, serials, now_ns)
        o.shipped_ns, o.shipment = now_ns, sh.shipment
        self.shipments.append(sh)
        return sh
