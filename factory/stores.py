"""Stores, lots, purchases and the material balance: the factory's inventory, pure.

A parts store holds lots from suppliers, first in, first out per part kind:
a line's feeder draws one part and gets the lot it came from (or nothing: a
stock-out). When a kind's stock plus what is on order falls to its reorder
point, the store purchases one lot of the supplier's lot size, due after the
supplier's lead time; ``receive`` turns due purchases into lots. A purchase
can be expedited (due earlier) or found late (its supplier misses the date).

``Material`` is the balance the issue asks of every part kind, kept by
counts that each move changes in two places:

    received = consumed + scrapped + in store + in WIP + shipped

where *received* is every part a lot brought in, *in store* what is still
in a parts store, *in WIP* what a line has drawn and not yet finished or
scrapped, *consumed* what is inside a finished unit still in the finished
store, *shipped* what is inside a unit shipped to a customer. Nothing here
reads a clock or draws a random number: the same calls give the same
lots, purchases and counts.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Iterable

from bus.errors import LightsoutError
from factory.schema import FactorySpec, StoreRole, SupplierSpec

S = 1_000_000_000


class MaterialError(LightsoutError):
    """A move the material balance cannot take (more out of a state than is in it)."""


@dataclasses.dataclass(slots=True)
class Lot:
    """A supplier lot in a store: its id, where from, how many are left."""

    lot: str
    supplier: str
    kind: str
    size: int
    received_ns: int
    left: int


@dataclasses.dataclass(slots=True)
class Purchase:
    """A lot ordered from a supplier and not yet received."""

    po: str
    supplier: str
    kind: str
    size: int
    ordered_ns: int
    due_ns: int
    """When it arrives (after the lead time; earlier if expedited, later if the supplier is
    late)."""
    promised_ns: int = 0
    """When the supplier promised it (the purchase time plus its lead time)."""
    reason: str = "reorder point"
    late_seen: bool = False
    """Whether the coordinator has found it late."""


class State(enum.StrEnum):
    """Where a part is, for the material balance."""

    IN_STORE = "in_store"
    WIP = "wip"
    CONSUMED = "consumed"
    SCRAPPED = "scrapped"
    SHIPPED = "shipped"


class Material:
    """Counts per part kind and state, changed only by moves that keep them balanced."""

    def __init__(self) -> None:
        self.received: collections.Counter[str] = collections.Counter()
        self.counts: dict[State, collections.Counter[str]] = {
            s: collections.Counter() for s in State
        }

    def receive(self, kind: str, n: int) -> None:
        """``n`` parts of ``kind`` came into a store."""
        self.received[kind] += n
        self.counts[State.IN_STORE][kind] += n

    def move(self, kind: str, src: State, dst: State, n: int = 1) -> None:
        """``n`` parts of ``kind`` went from ``src`` to ``dst``."""
        if self.counts[src][kind] < n:
            have = self.counts[src][kind]
            raise MaterialError(f"{kind}: {n} from {src} but only {have} there")
        self.counts[src][kind] -= n
        self.counts[dst][kind] += n

    def row(self, kind: str) -> dict[str, int]:
        """The balance of one kind: ``received`` and every state's count."""
        return {"received": self.received[kind], **{s.value: self.counts[s][kind] for s in State}}

    def balanced(self, kind: str) -> bool:
        """received = consumed + scrapped + in store + in WIP + shipped, for ``kind``."""
        return self.received[kind] == sum(self.counts[s][kind] for s in State)

    def kinds(self) -> list[str]:
        """Every kind ever received, sorted."""
        return sorted(self.received)


class PartsStore:
    """One parts store: lots first in, first out per kind, purchases on the reorder point."""

    def __init__(
        self,
        name: str,
        suppliers: Iterable[SupplierSpec],
        *,
        reorder_points: dict[str, int],
        material: Material,
    ) -> None:
        self.name = name
        self.material = material
        self.supplier: dict[str, SupplierSpec] = {}
        """Per part kind: the supplier purchases go to (the first listed)."""
        self.suppliers: dict[str, list[SupplierSpec]] = collections.defaultdict(list)
        """Per part kind: every supplier delivering it here, in file order."""
        for s in suppliers:
            for kind in s.parts:
                self.supplier.setdefault(kind, s)
                self.suppliers[kind].append(s)
        self.reorder_points = reorder_points
        self.lots: dict[str, collections.deque[Lot]] = collections.defaultdict(collections.deque)
        self.open: list[Purchase] = []
        self.received: list[Lot] = []
        """Every lot ever received, in order (the genealogy's ``lots`` table)."""
        self.purchases: list[Purchase] = []
        """Every purchase ever made, in order."""
        self.stockouts: collections.Counter[str] = collections.Counter()
        self._seq: collections.Counter[tuple[str, str]] = collections.Counter()

    def _lot_id(self, supplier: str, kind: str) -> str:
        n = self._seq[(supplier, kind)]
        self._seq[(supplier, kind)] += 1
        return f"{supplier}-{kind}-{n:05d}"

    def stock(self, kind: str) -> int:
        """Parts of ``kind`` in the store now."""
        return sum(lot.left for lot in self.lots[kind])

    def on_order(self, kind: str) -> int:
        """Parts of ``kind`` purchased and not yet received."""
        return sum(p.size for p in self.open if p.kind == kind)

    def put(self, kind: str, n: int, now_ns: int, *, supplier: str = "") -> Lot:
        """A lot of ``n`` parts arrives (an opening stock, or a purchase received)."""
        src = supplier or self.supplier[kind].name
        lot = Lot(self._lot_id(src, kind), src, kind, n, now_ns, n)
        self.lots[kind].append(lot)
        self.received.append(lot)
        self.material.receive(kind, n)
        return lot

    def draw(self, kind: str, now_ns: int) -> str | None:
        """One part of ``kind`` to a line: the lot it comes from, or None on a stock-out."""
        queue = self.lots[kind]
        while queue and queue[0].left == 0:
            queue.popleft()
        if not queue:
            self.stockouts[kind] += 1
            return None
        lot = queue[0]
        lot.left -= 1
        self.material.move(kind, State.IN_STORE, State.WIP)
        return lot.lot

    def give_back(self, kind: str, lot_id: str) -> None:
        """A part drawn and not used goes back to the store, into its own lot. Given back
        newest first, parts keep their lots' first-in, first-out order."""
        lot = next(x for x in reversed(self.received) if x.lot == lot_id)
        lot.left += 1
        queue = self.lots[kind]
        if not any(x is lot for x in queue):
            queue.appendleft(lot)
        self.material.move(kind, State.WIP, State.IN_STORE)

    def reorder(self, now_ns: int) -> list[Purchase]:
        """Purchase a lot of every kind at or below its reorder point (stock plus on order)."""
        made = []
        for kind, point in sorted(self.reorder_points.items()):
            while self.stock(kind) + self.on_order(kind) <= point:
                made.append(self.buy(kind, self.supplier[kind], now_ns))
        return made

    def buy(
        self, kind: str, supplier: SupplierSpec, now_ns: int, *, reason: str = "reorder point"
    ) -> Purchase:
        """Purchase one lot of ``kind`` from ``supplier``, due after its lead time."""
        due = now_ns + round(supplier.lead_time_s * S)
        po = Purchase(
            f"PO-{self.name}-{len(self.purchases) + 1:05d}",
            supplier.name,
            kind,
            supplier.lot_size,
            now_ns,
            due,
            due,
            reason,
        )
        self.open.append(po)
        self.purchases.append(po)
        return po

    def overdue(self, now_ns: int) -> list[Purchase]:
        """Open purchases past their promised time not found late before (marked now)."""
        late = [p for p in self.open if p.promised_ns <= now_ns and not p.late_seen]
        for p in late:
            p.late_seen = True
        return late

    def receive(self, now_ns: int) -> list[Lot]:
        """Every open purchase due by ``now_ns`` arrives as a lot, in due order."""
        due = sorted((p for p in self.open if p.due_ns <= now_ns), key=lambda p: (p.due_ns, p.po))
        self.open = [p for p in self.open if p.due_ns > now_ns]
        return [self.put(p.kind, p.size, p.due_ns, supplier=p.supplier) for p in due]

    def next_due_ns(self) -> int | None:
        """When the next open purchase arrives, if any."""
        return min((p.due_ns for p in self.open), default=None)

    def expedite(self, po: str, due_ns: int) -> bool:
        """Bring a purchase forward to ``due_ns`` (never later); False if it is not open."""
        for p in self.open:
            if p.po == po:
                p.due_ns = min(p.due_ns, due_ns)
                return True
        return False

    def delay(self, po: str, due_ns: int) -> bool:
        """The supplier will deliver ``po`` late, at ``due_ns``; False if it is not open."""
        for p in self.open:
            if p.po == po:
                p.due_ns = max(p.due_ns, due_ns)
                return True
        return False


def open_stores(spec: FactorySpec, material: Material) -> dict[str, PartsStore]:
    """Every parts store of ``spec`` with its opening stock (received at time 0)."""
    out = {}
    for st in spec.stores:
        if st.role is not StoreRole.PARTS:
            continue
        store = PartsStore(
            st.name,
            [s for s in spec.suppliers if s.store == st.name],
            reorder_points=dict(st.reorder_points),
            material=material,
        )
        for kind, n in st.initial:
            if n:
                store.put(kind, n, 0)
        out[st.name] = store
    return out


class FinishedStore:
    """Finished units waiting for their order to ship, with the kinds of part in each."""

    def __init__(self, name: str, *, material: Material) -> None:
        self.name = name
        self.material = material
        self.units: dict[str, tuple[str, tuple[str, ...]]] = {}
        """serial -> (product, part kinds inside), in arrival order."""
        self.shipped = 0

    def put(self, serial: str, product: str, kinds: Iterable[str]) -> None:
        """A unit finished on a line: its parts leave WIP, consumed into it."""
        inside = tuple(kinds)
        if serial in self.units:
            raise MaterialError(f"{serial}: already in store {self.name}")
        for kind in inside:
            self.material.move(kind, State.WIP, State.CONSUMED)
        self.units[serial] = (product, inside)

    def ship(self, serials: Iterable[str]) -> None:
        """Units leave for a customer: their parts count as shipped."""
        for serial in serials:
            _product, inside = self.units.pop(serial)
            for kind in inside:
                self.material.move(kind, State.CONSUMED, State.SHIPPED)
            self.shipped += 1

    def count(self, product: str) -> int:
        """Units of ``product`` in the store."""
        return sum(p == product for p, _k in self.units.values())


def scrap(material: Material, kinds: Iterable[str]) -> None:
    """Parts a line wrote off (on their own or in a scrapped unit) leave WIP."""
    for kind in kinds:
        material.move(kind, State.WIP, State.SCRAPPED)
