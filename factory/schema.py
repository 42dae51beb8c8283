"""Factory files: TOML in, a validated ``FactorySpec`` out, or one clear error.

A factory file names its lines (each a cell file, loaded and validated by
``cells.schema``), the stores between suppliers and lines and the store of
finished goods, the suppliers (the parts each provides, in lots of a size,
after a lead time) and the customers. Every key is checked for presence, type
and meaning, and the whole plant for consistency: every part a line needs has
a supplier delivering it to the store the line draws from, every store is
filled by someone, every product a customer takes is made by a line. A failure
names the factory file, the dotted key and the reason, on one line
(``cells/f.toml: lines.L01.cell: cells/nope.toml: cannot read: No such file``).
``docs/factory.md`` documents every key.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec, Output
from bus.errors import ConfigError
from bus.security import SAFE_NAME, SAFE_NAME_RULE
from cells.schema import load_cell
from cells.tables import MAX_INT, _nonneg, _pos, _str, _strs, _Table, _tables

MAX_LINES = 64
"""The most lines one factory file may name."""
MAX_LEAD_S = 90 * 24 * 3600.0
"""A supplier's lead time is at most 90 days of sim time."""


class Fidelity(enum.StrEnum):
    """How a line's world is simulated (``lines.NAME.fidelity``)."""

    PHYSICS = "physics"
    """The PyBullet world of the cell file (``sim.World``)."""
    EVENTS = "events"
    """The discrete-event world calibrated from the physics one (``sim.events``, from the
    cell's ``CELL.calib.json``)."""


class StoreRole(enum.StrEnum):
    """What a store holds (``stores.NAME.role``)."""

    PARTS = "parts"
    """Parts from suppliers, drawn by the lines that name it in ``draws_from``."""
    FINISHED = "finished"
    """Finished units from the lines that name it in ``delivers_to``, shipped to customers."""


@dataclasses.dataclass(frozen=True, slots=True)
class LineSpec:
    """One production line: a cell with its own supervisor and agents."""

    name: str
    cell_path: Path
    """The cell file, resolved against the factory file's directory."""
    cell: CellSpec
    fidelity: Fidelity
    capacity_per_h: float
    """Units per hour the coordinator may plan on (a hint for releasing orders, not a limit)."""
    draws_from: str
    """The parts store its feeders draw from."""
    delivers_to: str
    """The finished-goods store its shipped units go to."""

    @property
    def products(self) -> tuple[str, ...]:
        """The products the line ships (its recipes whose output is shipped)."""
        return tuple(r.product for r in self.cell.recipes if r.output is Output.SHIP)

    @property
    def needs(self) -> tuple[str, ...]:
        """The part kinds the line's feeders make, so the kinds it draws from its store."""
        return tuple(sorted({f.part for f in self.cell.feeders}))


@dataclasses.dataclass(frozen=True, slots=True)
class StoreSpec:
    """A store: parts between suppliers and lines, or finished units before shipping."""

    name: str
    role: StoreRole
    initial: tuple[tuple[str, int], ...] = ()
    """Opening stock per part kind (parts stores only)."""
    reorder_points: tuple[tuple[str, int], ...] = ()
    """Per part kind: when stock plus what is on order falls to this, a lot is purchased."""


@dataclasses.dataclass(frozen=True, slots=True)
class SupplierSpec:
    """A supplier: delivers the part kinds it provides to one store, in lots."""

    name: str
    parts: tuple[str, ...]
    lot_size: int
    lead_time_s: float
    store: str


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerSpec:
    """A customer: takes products shipped from one finished-goods store."""

    name: str
    products: tuple[str, ...]
    store: str


@dataclasses.dataclass(frozen=True, slots=True)
class FactorySpec:
    """A whole factory, validated."""

    name: str
    source: str
    lines: tuple[LineSpec, ...]
    stores: tuple[StoreSpec, ...]
    suppliers: tuple[SupplierSpec, ...]
    customers: tuple[CustomerSpec, ...]

    def line(self, name: str) -> LineSpec:
        """The line called ``name``."""
        for ln in self.lines:
            if ln.name == name:
                return ln
        raise KeyError(name)

    def store(self, name: str) -> StoreSpec:
        """The store called ``name``."""
        for s in self.stores:
            if s.name == name:
                return s
        raise KeyError(name)

    def supplier_of(self, part: str, store: str) -> SupplierSpec:
        """The (first listed) supplier delivering ``part`` to ``store``."""
        for s in self.suppliers:
            if s.store == store and part in s.parts:
                return s
        raise KeyError((part, store))

    @property
    def part_kinds(self) -> tuple[str, ...]:
        """Every part kind some line needs, sorted."""
        return tuple(sorted({p for ln in self.lines for p in ln.needs}))


def load_factory(path: str | Path) -> FactorySpec:
    """Read and validate a factory file and every cell file it names."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    return parse_factory(data, source=source, base=Path(path).parent)


def parse_factory(data: dict[str, Any], *, source: str, base: Path) -> FactorySpec:
    """Validate an already-parsed factory file; cell paths are relative to ``base``."""
    top = _Table(source, "", data)
    head = top.sub("factory")
    name = _name(head, "name", head.get("name", _str))
    head.close()
    stores = _stores(top)
    suppliers = _suppliers(top)
    lines = _lines(top, base)
    customers = _customers(top)
    top.close()
    spec = FactorySpec(name, source, lines, stores, suppliers, customers)
    _check(spec)
    return spec


def _name(t: _Table, key: str, value: str) -> str:
    if not SAFE_NAME.match(value):
        raise t.fail(key, f"{value[:80]!r}: {SAFE_NAME_RULE}")
    return value


def _named(top: _Table, key: str) -> list[tuple[str, _Table]]:
    """A table of named tables whose names are safe names (no ``/``, no dots, bounded)."""
    out = _tables(top, key)
    for n, t in out:
        if not SAFE_NAME.match(n):
            raise ConfigError(top.source, t.path, f"{n[:80]!r}: {SAFE_NAME_RULE}")
    return out


def _count(t: _Table, k: str, v: Any) -> int:
    """A whole number from 0 (a stock, a reorder point)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise t.fail(k, f"expected a whole number from 0, got {v!r}")
    if v > MAX_INT:
        raise t.fail(k, f"at most {MAX_INT}, got {v}")
    return v


def _lot(t: _Table, k: str, v: Any) -> int:
    n = _count(t, k, v)
    if n == 0:
        raise t.fail(k, "a lot holds at least one part")
    return n


def _per_part(t: _Table, key: str) -> tuple[tuple[str, int], ...]:
    """An inline table ``{part = count, ...}``, in file order."""
    if key not in t.data:
        t.used.add(key)
        return ()
    sub = t.sub(key)
    out = []
    for part, v in sub.data.items():
        _name(sub, part, part)
        out.append((part, _count(sub, part, v)))
        sub.used.add(part)
    return tuple(out)


def _stores(top: _Table) -> tuple[StoreSpec, ...]:
    out = []
    for sname, st in _named(top, "stores"):
        role = StoreRole(_role(st))
        initial = _per_part(st, "initial")
        points = _per_part(st, "reorder_points")
        if role is StoreRole.FINISHED and (initial or points):
            raise st.fail("initial" if initial else "reorder_points", "a finished store has none")
        st.close()
        out.append(StoreSpec(sname, role, initial, points))
    if not out:
        raise ConfigError(top.source, "stores", "a factory needs at least one store")
    return tuple(out)


def _role(st: _Table) -> str:
    role = st.get("role", _str)
    known = [r.value for r in StoreRole]
    if role not in known:
        raise st.fail("role", f"{role!r} is not one of {', '.join(known)}")
    return role


def _suppliers(top: _Table) -> tuple[SupplierSpec, ...]:
    out = []
    for sname, st in _named(top, "suppliers"):
        parts = st.get("parts", _strs)
        if not parts:
            raise st.fail("parts", "a supplier provides at least one part kind")
        for i, p in enumerate(parts):
            _name(st, f"parts[{i}]", p)
        lot = st.get("lot_size", _lot)
        lead = st.get("lead_time_s", _nonneg)
        if lead > MAX_LEAD_S:
            raise st.fail("lead_time_s", f"at most {MAX_LEAD_S:g} s, got {lead:g}")
        store = st.get("store", _str)
        st.close()
        out.append(SupplierSpec(sname, parts, lot, lead, store))
    return tuple(out)


def _lines(top: _Table, base: Path) -> tuple[LineSpec, ...]:
    out = []
    for lname, lt in _named(top, "lines"):
        rel = lt.get("cell", _str)
        cell_path = base / rel
        try:
            cell = load_cell(cell_path)
        except ConfigError as exc:
            raise lt.fail("cell", str(exc)) from None
        fidelity = lt.get("fidelity", _str, Fidelity.PHYSICS.value)
        known = [f.value for f in Fidelity]
        if fidelity not in known:
            raise lt.fail("fidelity", f"{fidelity!r} is not one of {', '.join(known)}")
        capacity = lt.get("capacity_per_h", _pos)
        draws = lt.get("draws_from", _str)
        delivers = lt.get("delivers_to", _str)
        lt.close()
        out.append(LineSpec(lname, cell_path, cell, Fidelity(fidelity), capacity, draws, delivers))
    if not out:
        raise ConfigError(top.source, "lines", "a factory needs at least one line")
    if len(out) > MAX_LINES:
        raise ConfigError(top.source, "lines", f"at most {MAX_LINES} lines, got {len(out)}")
    return tuple(out)


def _customers(top: _Table) -> tuple[CustomerSpec, ...]:
    out = []
    for cname, ct in _named(top, "customers"):
        products = ct.get("products", _strs)
        if not products:
            raise ct.fail("products", "a customer takes at least one product")
        store = ct.get("store", _str)
        ct.close()
        out.append(CustomerSpec(cname, products, store))
    return tuple(out)


def _check(spec: FactorySpec) -> None:
    """The plant hangs together: every reference resolves, every need is met, every store
    is filled."""
    src = spec.source
    roles = {s.name: s.role for s in spec.stores}
    seen: dict[str, str] = {}
    for kind, names in (
        ("line", [x.name for x in spec.lines]),
        ("store", [x.name for x in spec.stores]),
        ("supplier", [x.name for x in spec.suppliers]),
        ("customer", [x.name for x in spec.customers]),
    ):
        for n in names:
            if n in seen:
                raise ConfigError(src, f"{kind}s.{n}", f"name already used by a {seen[n]}")
            seen[n] = kind

    def want(key: str, store: str, role: StoreRole) -> None:
        if store not in roles:
            raise ConfigError(src, key, f"unknown store {store!r} (known: {', '.join(roles)})")
        if roles[store] is not role:
            raise ConfigError(src, key, f"store {store!r} is a {roles[store]} store, not {role}")

    for s in spec.suppliers:
        want(f"suppliers.{s.name}.store", s.store, StoreRole.PARTS)
    for c in spec.customers:
        want(f"customers.{c.name}.store", c.store, StoreRole.FINISHED)
    provided = {(s.store, p) for s in spec.suppliers for p in s.parts}
    for ln in spec.lines:
        want(f"lines.{ln.name}.draws_from", ln.draws_from, StoreRole.PARTS)
        want(f"lines.{ln.name}.delivers_to", ln.delivers_to, StoreRole.FINISHED)
        for part in ln.needs:
            if (ln.draws_from, part) not in provided:
                why = f"part {part!r} (from {ln.cell_path}) has no supplier delivering to "
                raise ConfigError(src, f"lines.{ln.name}.draws_from", why + repr(ln.draws_from))
    made = {p for ln in spec.lines for p in ln.products}
    for c in spec.customers:
        for i, p in enumerate(c.products):
            if p not in made:
                known = ", ".join(sorted(made))
                raise ConfigError(
                    src, f"customers.{c.name}.products[{i}]", f"no line makes {p!r} ({known})"
                )
    for st in spec.stores:
        key = f"stores.{st.name}"
        if st.role is StoreRole.PARTS:
            if not any(x.store == st.name for x in spec.suppliers):
                raise ConfigError(src, key, "nobody fills this store: no supplier delivers to it")
            stocked = {p for x in spec.suppliers if x.store == st.name for p in x.parts}
            for what, table in (("initial", st.initial), ("reorder_points", st.reorder_points)):
                for part, _n in table:
                    if part not in stocked:
                        why = f"no supplier delivers {part!r} to this store"
                        raise ConfigError(src, f"{key}.{what}.{part}", why)
        elif not any(ln.delivers_to == st.name for ln in spec.lines):
            raise ConfigError(src, key, "nobody fills this store: no line delivers to it")
