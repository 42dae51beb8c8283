"""The factory coordinator: at each step, purchases arrive, orders are released, lines are fed.

Every line's feeders draw from a store (``sim.feeders.FeedGate``): a feeder
makes a part only when its line has one of that kind at the line side, and
each part it makes takes the lot of the oldest there. The coordinator fills
the line side at fixed steps of sim time (``EPOCH_S``), every line stopped at
the same step (``factory.run``), so what it decides depends only on where the
lines are at that step, and a factory run is as reproducible as a cell run.

At each step, in this order: what the lines said of their units since the last
step is taken (``factory.lines``: a unit finished is pegged to its order, and an
order complete is shipped; a unit scrapped gives its production order one unit
back, which is released again below, and scrapped parts are replaced at the
line side); purchases due arrive as lots; orders are released
to lines by pull (``factory.orders.plan_releases``: a line starved at the last
step takes nothing new); each line is given, from its store, one base part
per released unit and the other parts its released units need plus ``SPARE``
of each (a dropped part is replaced; parts of units taken back go back to the
store, into their lots); what a store cannot give for the released units is a
stock-out, logged, and the line is starved. A starved line keeps only the
unstarted units the parts it got can make: the rest are withdrawn and
released to lines that can be served, in the same step. Then every kind at
or below its reorder point is purchased. Everything decided is an event of
the factory's own log (``events.jsonl``, kinds in ``KINDS``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from factory.lines import Heard, LineGate
from factory.orders import CustomerOrder, LineView, OrderBook, plan_releases, priority
from factory.schema import FactorySpec, LineSpec
from factory.stores import FinishedStore, Material, PartsStore, Purchase, open_stores, scrap
from factory.supply import LateLot

EPOCH_S = 5.0
"""Sim seconds between two coordinator steps."""
HORIZON_S = 120.0
"""A line is released at most its capacity over this many sim seconds ahead."""
SPARE = 2
"""Parts of each kind a line holds beyond what its released units need (drops, scrap)."""
NS = 1_000_000_000

KINDS = (
    "order_added",
    "order_released",
    "lot_received",
    "purchase",
    "lot_late",
    "stockout",
    "order_withdrawn",
    "unit_built",
    "unit_scrapped",
    "shipment",
    "run_end",
)
"""The kinds of line in a factory run's ``events.jsonl`` (``docs/factory.md``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Arrival:
    """A customer order that comes in at a sim time (``factory run --order ...@AT``)."""

    at_ns: int
    customer: str
    product: str
    quantity: int
    due_s: float
    rush: bool = False


def per_unit(line: LineSpec) -> dict[str, int]:
    """Parts of each kind one unit of the line's (first) recipe takes from its feeders."""
    recipe = line.cell.recipe
    fed = {f.part for f in line.cell.feeders}
    out = collections.Counter(op.part for op in recipe.ops if op.part in fed)
    out[recipe.base] = 1  # the base part is moved more than once, but is one part
    return dict(out)


class Coordinator:
    """Owns the factory's stores, orders and material; steps at the lines' common times."""

    def __init__(
        self,
        spec: FactorySpec,
        orders: OrderBook,
        *,
        late: tuple[LateLot, ...] = (),
        arrivals: Sequence[Arrival] = (),
    ) -> None:
        self.spec = spec
        self.orders = orders
        self.arrivals = sorted(arrivals, key=lambda a: a.at_ns)
        """Orders still to come, in arrival order (a stable sort keeps the given order)."""
        self.late = {(x.supplier, x.purchase): round(x.by_s * NS) for x in late}
        """The supply faults: (supplier, its n-th purchase) -> how late it comes."""
        self.bought: collections.Counter[str] = collections.Counter()
        """Purchases made so far, per supplier."""
        self.material = Material()
        self.stores: dict[str, PartsStore] = open_stores(spec, self.material)
        self.finished = {
            s.name: FinishedStore(s.name, material=self.material)
            for s in spec.stores
            if s.role.value == "finished"
        }
        self.gates = {ln.name: LineGate(ln) for ln in spec.lines}
        self.need = {ln.name: per_unit(ln) for ln in spec.lines}
        self.starved: dict[str, set[str]] = {ln.name: set() for ln in spec.lines}
        self.stockouts: collections.Counter[str] = collections.Counter()
        """Per ``line/kind``: the steps at which the store could not give the line enough."""
        self.events: list[dict[str, Any]] = []
        self.added: list[dict[str, Any]] = []
        """Every order taken at a step (``add_order``'s arguments), in order: a coordinator
        restarted from its journal takes those the control socket gave again
        (``factory.hub``)."""
        self._logged: set[tuple[str, str]] = set()
        """The (line, kind) stock-outs logged in this step (each once a step)."""
        for store in self.stores.values():
            for lot in store.received:
                self._log(
                    0,
                    "lot_received",
                    lot=lot.lot,
                    supplier=lot.supplier,
                    part_kind=lot.kind,
                    size=lot.size,
                    store=store.name,
                )
        for o in orders.orders.values():
            self._log(
                o.created_ns,
                "order_added",
                order=o.order_id,
                customer=o.customer,
                product=o.product,
                quantity=o.quantity,
                due_ns=o.due_ns,
                rush=o.rush,
            )

    def add_order(
        self,
        customer: str,
        product: str,
        quantity: int,
        *,
        due_s: float,
        t_ns: int,
        rush: bool = False,
    ) -> CustomerOrder:
        """Take a customer order at ``t_ns`` (a step) and log it; ``ConfigError`` if bad."""
        o = self.orders.add(customer, product, quantity, due_s=due_s, now_ns=t_ns, rush=rush)
        self.added.append(
            {"customer": customer, "product": product, "quantity": quantity, "due_s": due_s}
            | {"t_ns": t_ns, "rush": rush}
        )
        self._log(
            t_ns,
            "order_added",
            order=o.order_id,
            customer=o.customer,
            product=o.product,
            quantity=o.quantity,
            due_ns=o.due_ns,
            rush=o.rush,
        )
        return o

    def _log(self, t_ns: int, kind: str, **fields: Any) -> None:
        self.events.append({"t_ns": t_ns, "kind": kind, **fields})

    def released(self, line: str) -> int:
        """Units released to ``line`` to be built (less any withdrawn or scrapped)."""
        return sum(
            p.quantity - p.withdrawn - p.scrapped for p in self.orders.production if p.line == line
        )

    def unstarted(self, line: str) -> int:
        """Units released to ``line`` that it has not begun."""
        return self.released(line) - self.gates[line].started

    def step(self, t_ns: int) -> None:
        """One coordinator step at sim time ``t_ns`` (every line stopped there)."""
        self.hear()
        while self.arrivals and self.arrivals[0].at_ns <= t_ns:
            a = self.arrivals.pop(0)
            self.add_order(a.customer, a.product, a.quantity, due_s=a.due_s, t_ns=t_ns, rush=a.rush)
        for store in self.stores.values():
            for lot in store.receive(t_ns):
                self._log(
                    t_ns,
                    "lot_received",
                    lot=lot.lot,
                    supplier=lot.supplier,
                    part_kind=lot.kind,
                    size=lot.size,
                    store=store.name,
                )
        self._expedite(t_ns)
        self._logged = set()
        for ln in self.spec.lines:  # what the lines were released: can their stores serve it?
            self.starved[ln.name] = self._feed(ln, t_ns, log=False)
        self._release(t_ns)
        for ln in self.spec.lines:
            self.starved[ln.name] = self._feed(ln, t_ns, log=True)
        moved = sum(self._withdraw(ln, t_ns) for ln in self.spec.lines)
        if moved + self._make_room(t_ns):
            self._release(t_ns)
            for ln in self.spec.lines:
                self.starved[ln.name] = self._feed(ln, t_ns, log=True)
        for store in self.stores.values():
            for buy in store.reorder(t_ns):
                self._bought(store, buy, t_ns)

    def hear(self) -> None:
        """What every line said of its units since the last step, in sim-time order (then
        in the lines' order): a unit finished is pegged to its order and put in the finished
        store (an order complete is shipped); a unit scrapped gives its production order one
        unit back, to be released again by pull; the parts scrapped leave WIP."""
        heard = [
            (ev.t_ns, i, n, ln, ev)
            for i, ln in enumerate(self.spec.lines)
            for n, ev in enumerate(self.gates[ln.name].take_heard())
        ]
        for _t, _i, _n, ln, ev in sorted(heard, key=lambda h: h[:3]):
            if ev.kind == "unit_shipped":
                self.unit_finished(ln, ev.item, ev.parts, ev.t_ns)
            else:
                self.unit_scrapped(ln, ev)

    def unit_finished(self, ln: LineSpec, unit: str, parts: Sequence[str], t_ns: int) -> None:
        """A unit left ``ln`` finished at ``t_ns``: pegged, stored, its order shipped if done."""
        gate = self.gates[ln.name]
        if unit not in gate.part_kind:
            gate.counters["unknown_units"] += 1  # no feeder of the line made it
            return
        if unit in gate.finished:
            return  # heard twice (a restored supervisor)
        gate.finished.add(unit)
        serial = f"{ln.name}:{unit}"
        product = next((r.product for r in ln.cell.recipes if r.base == gate.part_kind[unit]), "")
        kinds = [gate.part_kind[p] for p in parts if p in gate.part_kind]
        self.finished[ln.delivers_to].put(serial, product, kinds)
        po = self.orders.built(ln.name, product, serial, t_ns)
        self._log(
            t_ns,
            "unit_built",
            serial=serial,
            line=ln.name,
            product=product,
            production_order=po.po_id if po else None,
        )
        for o in self.orders.complete():
            sh = self.orders.ship(o.order_id, t_ns)
            for store in self.finished.values():
                store.ship(s for s in sh.serials if s in store.units)
            self._log(
                t_ns,
                "shipment",
                shipment=sh.shipment,
                order=o.order_id,
                customer=o.customer,
                units=list(sh.serials),
                lateness_s=round(o.lateness_s(t_ns), 3),
            )

    def unit_scrapped(self, ln: LineSpec, ev: Heard) -> None:
        """A unit (or a lone part) was scrapped on ``ln``: its parts leave WIP and are replaced
        at the line side; a unit's production order gets one unit back, which its customer
        order releases again (to a line with room), so the order is still delivered."""
        gate = self.gates[ln.name]
        was_base = ev.item in gate.part_kind and ev.item not in gate.scrapped_parts
        scrap(self.material, gate.scrap(ev.parts))
        if ev.kind != "unit_scrapped" or not was_base or gate.part_kind[ev.item] != gate.base:
            return
        product = next((r.product for r in ln.cell.recipes if r.base == gate.base), "")
        po = self.orders.scrapped(ln.name, product, ev.t_ns)
        self._log(
            ev.t_ns,
            "unit_scrapped",
            serial=f"{ln.name}:{ev.item}",
            line=ln.name,
            production_order=po.po_id if po else None,
            order=po.order_id if po else None,
            reason=ev.reason[:200],
            action=f"one more unit of {po.order_id} to release" if po else "none released",
        )

    def _bought(self, store: PartsStore, buy: Purchase, t_ns: int) -> None:
        """Log a purchase (promised time and why), and make it late if a supply fault says."""
        self.bought[buy.supplier] += 1
        self._log(
            t_ns,
            "purchase",
            purchase=buy.po,
            supplier=buy.supplier,
            part_kind=buy.kind,
            size=buy.size,
            due_ns=buy.promised_ns,
            store=store.name,
            reason=buy.reason,
        )
        late = self.late.get((buy.supplier, self.bought[buy.supplier]))
        if late:
            store.delay(buy.po, buy.promised_ns + late)

    def _expedite(self, t_ns: int) -> None:
        """A lot past its promised time: buy one from the fastest other supplier of the kind."""
        for store in self.stores.values():
            for po in store.overdue(t_ns):
                others = sorted(
                    (s for s in store.suppliers[po.kind] if s.name != po.supplier),
                    key=lambda s: (s.lead_time_s, s.name),
                )
                action = f"bought from {others[0].name}" if others else "no other supplier"
                self._log(
                    t_ns,
                    "lot_late",
                    purchase=po.po,
                    supplier=po.supplier,
                    part_kind=po.kind,
                    promised_ns=po.promised_ns,
                    store=store.name,
                    action=action,
                )
                if others:
                    buy = store.buy(po.kind, others[0], t_ns, reason=f"expedite: {po.po} late")
                    self._bought(store, buy, t_ns)

    def _release(self, t_ns: int) -> None:
        """Release orders by pull to the lines not starved (``plan_releases``), and log it."""
        views = []
        for ln in self.spec.lines:
            available = not self.starved[ln.name]
            gate = self.gates[ln.name]
            views.append(
                LineView(
                    ln.name,
                    ln.products,
                    ln.capacity_per_h,
                    available,
                    self.unstarted(ln.name),
                    in_work=gate.started - len(gate.finished),
                )
            )
        decisions = plan_releases(list(self.orders.orders.values()), views, horizon_s=HORIZON_S)
        for po in self.orders.release(decisions, t_ns):
            why = next(
                d.reason for d in decisions if d.order_id == po.order_id and d.line == po.line
            )
            self._log(
                t_ns,
                "order_released",
                order=po.order_id,
                production_order=po.po_id,
                line=po.line,
                quantity=po.quantity,
                reason=why,
            )

    def _make_room(self, t_ns: int) -> int:
        """A rush order that found no room takes the place of unstarted units of orders that
        are not rush (reprioritising): they are withdrawn, to be released after it."""
        total = 0
        for o in sorted(self.orders.orders.values(), key=priority):
            if not o.rush or o.unreleased <= 0:
                continue
            got = 0
            for ln in self.spec.lines:
                if self.starved[ln.name] or o.product not in ln.products:
                    continue
                want = min(o.unreleased - got, self.unstarted(ln.name))
                n = self.orders.withdraw(ln.name, want, spare_rush=True) if want > 0 else 0
                if n:
                    got += n
                    total += n
                    self._log(
                        t_ns,
                        "order_withdrawn",
                        line=ln.name,
                        quantity=n,
                        reason=f"room for rush order {o.order_id}",
                    )
        return total

    def _withdraw(self, ln: LineSpec, t_ns: int) -> int:
        """A starved line keeps only the unstarted units the parts at its side can make; the
        rest go back to their orders, if another line that makes them can be served."""
        short = self.starved[ln.name]
        others = [
            o.name
            for o in self.spec.lines
            if o.name != ln.name and not self.starved[o.name] and set(o.products) & set(ln.products)
        ]
        if not short or not others:
            return 0
        gate = self.gates[ln.name]
        # the parts of a short kind the line got (less scrap) make so many units, started first
        can = min(gate.kept(k) // self.need[ln.name][k] for k in short) - gate.started
        n = self.orders.withdraw(ln.name, max(0, self.unstarted(ln.name) - max(0, can)))
        if n:
            kinds = ", ".join(sorted(short))
            self._log(
                t_ns,
                "order_withdrawn",
                line=ln.name,
                quantity=n,
                reason=f"stock-out of {kinds} in {ln.draws_from}; {', '.join(others)} can be served",
            )
        return n

    def _feed(self, ln: LineSpec, t_ns: int, *, log: bool) -> set[str]:
        """Bring the line side of ``ln`` to what its released units need (plus spares) from its
        store, giving back what it holds beyond; return the kinds its store fell short of for
        the released units (a stock-out: logged if ``log``)."""
        gate, store = self.gates[ln.name], self.stores[ln.draws_from]
        units = self.released(ln.name)
        short = set()
        for kind, n in sorted(self.need[ln.name].items()):
            spare = SPARE if units and kind != ln.cell.recipe.base else 0
            need = units * n - gate.kept(kind)  # a part scrapped is replaced
            want = need + spare
            while want < 0 and gate.side[kind]:  # withdrawn units: their parts go back
                store.give_back(kind, gate.side[kind].pop())
                gate.drawn[kind] -= 1
                want += 1
            got = 0
            while got < want:
                lot = store.draw(kind, t_ns)
                if lot is None:
                    break
                gate.side[kind].append(lot)
                gate.drawn[kind] += 1
                got += 1
            if got < need:
                short.add(kind)
                if log and (ln.name, kind) not in self._logged:
                    self._logged.add((ln.name, kind))
                    self.stockouts[f"{ln.name}/{kind}"] += 1
                    self._log(
                        t_ns,
                        "stockout",
                        line=ln.name,
                        part_kind=kind,
                        store=store.name,
                        short=need - got,
                        waiting=len(gate.side[kind]),
                    )
        return short

    def write_events(self, path: Any) -> None:
        """The factory's event log, in sim-time order (steps first, then what followed)."""
        ordered = sorted(enumerate(self.events), key=lambda e: (e[1]["t_ns"], e[0]))
        with open(path, "w", encoding="utf-8") as f:
            for _i, ev in ordered:
                f.write(json.dumps(ev, sort_keys=True, separators=(",", ":")) + "\n")


def step_times(duration_s: float) -> list[int]:
    """The sim times of the coordinator's steps after the first (at 0), inside the run."""
    out, k = [], 1
    while k * EPOCH_S < duration_s:
        out.append(round(k * EPOCH_S * NS))
        k += 1
    return out
