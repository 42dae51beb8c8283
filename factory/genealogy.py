"""The genealogy store: every unit to its order, line, fixture, robots and supplier lots.

A line's run already says what happened to every unit (``events.jsonl``,
``bus.eventkinds``): ``part_created`` names each part and its kind,
``unit_started`` the fixture, ``op_started`` / ``op_done`` which robot did
which step of which unit at which sim time, ``unit_shipped`` and
``unit_scrapped`` the parts that went into it. ``read_line_run`` reads that
into a ``LineRecord``; the coordinator decides which supplier lot each part
was drawn from (``factory.stores``) and which order each unit serves
(``factory.orders``); ``Genealogy`` keeps all of it in one SQLite file,
indexed both ways, so ``trace SERIAL`` (one unit, all it is made of) and
``recall LOT`` (every unit holding a part of a lot) are each a few indexed
look-ups however many units were shipped (``bench/recall.py``).

Ids are made factory-wide by prefixing the line: the unit ``frame-0001`` of
line ``L1`` has the serial ``L1:frame-0001``, and its battery is the part
``L1:battery-0001``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bus.errors import ConfigError, LightsoutError

DB_NAME = "genealogy.sqlite"
"""The genealogy database's file name in a factory run's directory."""
MAX_LINE_BYTES = 1 << 20
"""The longest event-log line read (a unit's parts list is far shorter)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (
    lot TEXT PRIMARY KEY, supplier TEXT NOT NULL, part_kind TEXT NOT NULL,
    size INTEGER NOT NULL, received_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    serial TEXT PRIMARY KEY, line TEXT NOT NULL, unit TEXT NOT NULL, product TEXT NOT NULL,
    fixture TEXT NOT NULL, started_ns INTEGER NOT NULL, status TEXT NOT NULL,
    ended_ns INTEGER, order_id TEXT, shipment TEXT);
CREATE TABLE IF NOT EXISTS parts (
    part TEXT PRIMARY KEY, line TEXT NOT NULL, kind TEXT NOT NULL, created_ns INTEGER NOT NULL,
    lot TEXT, serial TEXT);
CREATE TABLE IF NOT EXISTS ops (
    serial TEXT NOT NULL, op TEXT NOT NULL, robot TEXT NOT NULL,
    started_ns INTEGER NOT NULL, done_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS parts_by_lot ON parts (lot, serial);
CREATE INDEX IF NOT EXISTS parts_by_serial ON parts (serial);
CREATE INDEX IF NOT EXISTS ops_by_serial ON ops (serial, done_ns);
CREATE INDEX IF NOT EXISTS units_by_order ON units (order_id);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class PartRecord:
    """A part as its line made it: id, kind and sim time, in creation order."""

    part: str
    kind: str
    created_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class OpRecord:
    """One step done on a unit: by which robot, from when to when (sim ns)."""

    op: str
    robot: str
    started_ns: int
    done_ns: int


@dataclasses.dataclass(slots=True)
class UnitRecord:
    """A unit as its line built it."""

    unit: str
    product: str
    fixture: str
    started_ns: int
    status: str = "wip"
    """``wip``, ``shipped`` (it left its line) or ``scrapped``."""
    ended_ns: int | None = None
    parts: list[str] = dataclasses.field(default_factory=list)
    ops: list[OpRecord] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class LineRecord:
    """What one line's run made: its parts in creation order and its units in start order."""

    parts: tuple[PartRecord, ...]
    units: tuple[UnitRecord, ...]
    scrapped: tuple[str, ...] = ()
    """Parts written off (on their own or in a scrapped unit), each once, in order."""


@dataclasses.dataclass(frozen=True, slots=True)
class Trace:
    """Everything known of one serial."""

    serial: str
    line: str
    product: str
    status: str
    order_id: str | None
    shipment: str | None
    fixture: str
    started_ns: int
    ended_ns: int | None
    ops: tuple[OpRecord, ...]
    parts: tuple[tuple[str, str, str | None, str | None], ...]
    """``(part, kind, lot, supplier)`` of every part in the unit."""


@dataclasses.dataclass(frozen=True, slots=True)
class Recalled:
    """A unit holding a part of a recalled lot."""

    serial: str
    status: str
    order_id: str | None
    shipment: str | None
    """The shipment that delivered it to its customer, if one did."""
    parts: tuple[str, ...]
    """Its parts from the lot."""


def read_line_run(run_dir: Path, *, products: Mapping[str, str]) -> LineRecord:
    """A line run's parts and units from its ``events.jsonl``.

    ``products`` maps a base part kind to the product built on it (the cell's
    recipes). A line that is not a JSON object, or a field of the wrong type,
    is one ``ConfigError`` naming the file and the line: the log is our own,
    so a bad one is damage, and a genealogy built past it would be wrong.
    """
    path = run_dir / "events.jsonl"
    parts: list[PartRecord] = []
    kinds: dict[str, str] = {}
    units: dict[str, UnitRecord] = {}
    started: dict[tuple[str, str], int] = {}
    last: dict[str, str] = {}
    """Each operation's robot when it last started."""
    scrapped: dict[str, None] = {}
    for n, ev in _events(path):
        kind = ev.get("kind")
        t = _int(ev, "t_ns", path, n)
        if kind == "part_created":
            part, pk = _s(ev, "part", path, n), _s(ev, "part_kind", path, n)
            parts.append(PartRecord(part, pk, t))
            kinds[part] = pk
        elif kind == "unit_started":
            unit = _s(ev, "unit", path, n)
            product = products.get(kinds.get(unit, ""), "")
            units[unit] = UnitRecord(unit, product, _s(ev, "fixture", path, n), t)
        elif kind == "op_started":
            op, robot = _s(ev, "op", path, n), _s(ev, "robot", path, n)
            started[(op, robot)] = t
            last[op] = robot
        elif kind in ("op_done", "op_settled"):
            op = _s(ev, "op", path, n)
            if kind == "op_settled" and ev.get("robot") == "":
                # the world showed it done after its robot was lost (a part that landed
                # where it was going): it was that robot's work, as far as it got
                robot = last.get(op, "")
            else:
                robot = _s(ev, "robot", path, n)
            unit, _, step = op.partition("/")
            if unit in units:
                begun = started.get((op, robot), t)
                units[unit].ops.append(OpRecord(step, robot, begun, t))
        elif kind == "part_scrapped":
            scrapped[_s(ev, "part", path, n)] = None
        elif kind in ("unit_shipped", "unit_scrapped"):
            unit = _s(ev, "unit", path, n)
            if kind == "unit_scrapped":
                scrapped.update(dict.fromkeys(_strs(ev, "parts", path, n)))
            rec = units.get(unit)
            if rec is None:  # scrapped before it was started: no unit to speak of
                continue
            rec.status = "shipped" if kind == "unit_shipped" else "scrapped"
            rec.ended_ns = t
            rec.parts = _strs(ev, "parts", path, n)
        elif kind == "part_moved":
            part, src, dst = _s(ev, "part", path, n), ev.get("src"), ev.get("dst")
            if isinstance(src, str) and src.startswith("unit:"):  # taken out again
                rec = units.get(src.removeprefix("unit:"))
                if rec is not None and rec.status == "wip" and part in rec.parts:
                    rec.parts.remove(part)
            if isinstance(dst, str) and dst.startswith("unit:"):
                rec = units.get(dst.removeprefix("unit:"))
                if rec is not None and part not in rec.parts:
                    rec.parts.append(part)
    for rec in units.values():
        if rec.unit not in rec.parts:  # a WIP unit's base part is the unit itself
            rec.parts.insert(0, rec.unit)
    made = {p.part for p in parts}
    return LineRecord(tuple(parts), tuple(units.values()), tuple(p for p in scrapped if p in made))


def _events(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    with f:
        for n, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE_BYTES:
                raise ConfigError(str(path), f"line {n}", f"longer than {MAX_LINE_BYTES} bytes")
            try:
                ev = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(str(path), f"line {n}", f"not JSON: {exc}") from None
            if not isinstance(ev, dict):
                raise ConfigError(str(path), f"line {n}", "not a JSON object")
            yield n, ev


def _s(ev: dict[str, Any], key: str, path: Path, n: int) -> str:
    v = ev.get(key)
    if not isinstance(v, str) or not v:
        raise ConfigError(str(path), f"line {n}", f"{key}: expected a non-empty string")
    return v


def _int(ev: dict[str, Any], key: str, path: Path, n: int) -> int:
    v = ev.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(str(path), f"line {n}", f"{key}: expected a whole number from 0")
    return v


def _strs(ev: dict[str, Any], key: str, path: Path, n: int) -> list[str]:
    v = ev.get(key)
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(str(path), f"line {n}", f"{key}: expected a list of strings")
    return list(v)


class Genealogy:
    """The genealogy database of one factory run (``genealogy.sqlite``).

    Writes go through ``add_*`` in one transaction each; ``trace`` and
    ``recall`` read. ``Genealogy.open`` opens an existing database read-only
    (the CLI's ``trace`` and ``recall``), so answering never changes a run.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    def create(cls, path: Path) -> Genealogy:
        """A new (or existing, to add to) database at ``path``, with its tables and indexes."""
        db = sqlite3.connect(path)
        db.executescript(SCHEMA)
        return cls(db)

    @classmethod
    def open(cls, path: Path) -> Genealogy:
        """An existing database, read-only; a missing or foreign file is one clear error."""
        if not path.is_file():
            raise LightsoutError(f"{path}: no genealogy database (a factory run writes one)")
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute("SELECT 1 FROM units LIMIT 1")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LightsoutError(f"{path}: not a genealogy database ({exc})") from None
        return cls(db)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def __enter__(self) -> Genealogy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_lots(self, lots: Iterable[tuple[str, str, str, int, int]]) -> None:
        """Received lots: ``(lot, supplier, part_kind, size, received_ns)`` each."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO lots VALUES (?, ?, ?, ?, ?)", lots)

    def add_line(self, line: str, record: LineRecord, lot_of: Mapping[str, str]) -> None:
        """One line's parts and units; ``lot_of`` maps a part id of the line to its lot."""
        owner: dict[str, str] = {}
        for u in record.units:
            for p in u.parts:
                owner[p] = u.unit
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        f"{line}:{p.part}",
                        line,
                        p.kind,
                        p.created_ns,
                        lot_of.get(p.part),
                        f"{line}:{owner[p.part]}" if p.part in owner else None,
                    )
                    for p in record.parts
                ),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    (
                        f"{line}:{u.unit}",
                        line,
                        u.unit,
                        u.product,
                        u.fixture,
                        u.started_ns,
                        u.status,
                        u.ended_ns,
                    )
                    for u in record.units
                ),
            )
            self.db.executemany(
                "INSERT INTO ops VALUES (?, ?, ?, ?, ?)",
                (
                    (f"{line}:{u.unit}", o.op, o.robot, o.started_ns, o.done_ns)
                    for u in record.units
                    for o in u.ops
                ),
            )

    def assign(self, serials: Iterable[tuple[str, str, str | None]]) -> None:
        """Peg units to orders: ``(serial, order_id, shipment or None)`` each."""
        with self.db:
            self.db.executemany(
                "UPDATE units SET order_id = ?, shipment = ? WHERE serial = ?",
                ((order, shipment, serial) for serial, order, shipment in serials),
            )

    def trace(self, serial: str) -> Trace | None:
        """Everything known of ``serial``, or None if no line built it."""
        row = self.db.execute(
            "SELECT line, product, status, order_id, shipment, fixture, started_ns, ended_ns "
            "FROM units WHERE serial = ?",
            (serial,),
        ).fetchone()
        if row is None:
            return None
        ops = self.db.execute(
            "SELECT op, robot, started_ns, done_ns FROM ops WHERE serial = ? ORDER BY done_ns, op",
            (serial,),
        ).fetchall()
        parts = self.db.execute(
            "SELECT p.part, p.kind, p.lot, l.supplier FROM parts p LEFT JOIN lots l "
            "ON l.lot = p.lot WHERE p.serial = ? ORDER BY p.created_ns, p.part",
            (serial,),
        ).fetchall()
        return Trace(
            serial,
            line=row[0],
            product=row[1],
            status=row[2],
            order_id=row[3],
            shipment=row[4],
            fixture=row[5],
            started_ns=row[6],
            ended_ns=row[7],
            ops=tuple(OpRecord(*o) for o in ops),
            parts=tuple(parts),
        )

    def recall(self, lot: str) -> list[Recalled]:
        """Every unit holding a part of ``lot`` (shipped, in progress or scrapped), by serial."""
        rows = self.db.execute(
            "SELECT u.serial, u.status, u.order_id, u.shipment, group_concat(p.part, ' ') "
            "FROM parts p "
            "JOIN units u ON u.serial = p.serial WHERE p.lot = ? GROUP BY u.serial "
            "ORDER BY u.serial",
            (lot,),
        ).fetchall()
        return [Recalled(s, st, o, sh, tuple(sorted(ps.split(" ")))) for s, st, o, sh, ps in rows]

    def lot(self, lot: str) -> tuple[str, str, int, int] | None:
        """``(supplier, part_kind, size, received_ns)`` of a lot, or None if never received."""
        row = self.db.execute(
            "SELECT supplier, part_kind, size, received_ns FROM lots WHERE lot = ?", (lot,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])
