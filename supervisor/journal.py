"""The supervisor's journal: SQLite (WAL), so a restarted supervisor loses nothing.

Every tick that changed anything, the supervisor appends the event-log lines
it wrote and replaces the snapshot rows of the components whose state changed,
in one transaction. A component's row is its snapshot in msgpack, compared
with what was written last: most ticks change two or three components. The
health model's series (the largest part by far) have a row each, packed only
when a sample comes (``Rows``), so a tick writes a few kilobytes, not the whole
state, and packs it six times faster than JSON would. The journal knows no
component's fields: each component (ledger, units and their operations,
assignments, robots, KPI accumulators, sensors, rests, orders) writes its own
``snapshot()`` and reads it back with ``restore()``; ``Snapshots`` only
composes them by name. A supervisor started
with ``restore=True`` reads the snapshot back and carries on from the last
committed tick: the ledger, the open operations and the assignments come
back exactly (a test compares them).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgpack


class Component(Protocol):
    """State with one owner that writes and reads its own snapshot."""

    def snapshot(self) -> Any:
        """The component's state as plain JSON-able data."""

    def restore(self, data: Any) -> None:
        """Put back what ``snapshot`` wrote, into a freshly built component."""


@runtime_checkable
class Rows(Protocol):
    """A component kept in several rows, each written only when it changed.

    The health model holds a series per robot, step and station; at most
    commits one or two of them took a sample, and packing all of them at every
    commit was a fifth of an events-fidelity supervisor's time. Such a component
    says itself which of its rows changed: that needs no comparison of what it
    did not touch. ``snapshot``/``restore`` still give and take the whole state
    in one piece.
    """

    def snapshot(self) -> Any:
        """The component's state as plain JSON-able data, in one piece."""

    def restore(self, data: Any) -> None:
        """Put back what ``snapshot`` wrote."""

    def journal_rows(self, *, changed: bool) -> dict[str, Any]:
        """The main row (key ``""``) and every sub-row (``changed``: those changed since
        ``rows_written``)."""

    def rows_written(self) -> None:
        """The rows ``journal_rows`` gave are in the journal now."""

    def restore_rows(self, main: Any, subs: dict[str, Any]) -> None:
        """Put back the main row and every sub-row the journal holds (none, in a journal
        written before the component had sub-rows: then ``main`` is its ``snapshot``)."""


class Snapshots:
    """The components a journal keeps, by name: their snapshots make one state row."""

    def __init__(self, **components: Component) -> None:
        self.components = components
        self.rows = {name: part for name, part in components.items() if isinstance(part, Rows)}
        """The components kept in several rows (``Rows``)."""

    def take(self, *, changed: bool = False) -> dict[str, Any]:
        """Every component's snapshot, by name; a component of several rows (``Rows``) gives
        them instead: ``NAME`` for its main one, ``NAME/SUB`` for each sub-row. ``changed``
        (a journal commit): only the sub-rows changed since ``written``; the others stay as
        the journal has them."""
        out: dict[str, Any] = {}
        for name, part in self.components.items():
            several = self.rows.get(name)
            if several is not None:
                for sub, data in several.journal_rows(changed=changed).items():
                    out[f"{name}/{sub}" if sub else name] = data
            else:
                out[name] = part.snapshot()
        return out

    def written(self) -> None:
        """What the last ``take(changed=True)`` gave was committed: the components of several
        rows forget what changed until then (a commit that failed leaves them to give it
        again)."""
        for part in self.rows.values():
            part.rows_written()

    def restore(self, state: dict[str, Any], *, done: tuple[str, ...] = ()) -> None:
        """Give each component its part of ``state`` back, in the order they were named.

        ``done``: components the caller restored already (ahead of the others).
        """
        missing = sorted(set(self.components) - set(state) - set(done))
        if missing:  # a journal of an older supervisor: it lacks components this one keeps
            raise ValueError(f"the journal has no {', '.join(missing)}: an older run's")
        for name, part in self.components.items():
            if name in done:
                continue
            head = f"{name}/"
            subs = {k[len(head) :]: v for k, v in state.items() if k.startswith(head)}
            several = self.rows.get(name)
            if several is not None:
                several.restore_rows(state[name], subs)
            else:
                part.restore(state[name])


_FIELDS: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in order, looked up once per class: snapshots are taken at
    every tick that logged something, and ``dataclasses.fields`` on each object of each
    snapshot was a third of what the units' snapshot cost."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, t_ns INTEGER NOT NULL, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), tick INTEGER NOT NULL,
                                  t_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parts (name TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
VERSION = 2
"""The journal's layout (``PRAGMA user_version``): 2 keeps each component in a row of its
own; 1 (before) kept the whole state as one JSON text, which this cannot read."""


class Journal:
    """The SQLite file beside ``events.jsonl``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # built on the launcher's thread, then used only by the supervisor's: one at a time
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if "state" in tables and version != VERSION:
            self.db.close()
            raise ValueError(f"a journal of layout {version or 1}, not {VERSION}: an older run")
        self.db.executescript(SCHEMA)
        self.db.execute(f"PRAGMA user_version = {VERSION}")
        self._written: dict[str, bytes] = {}
        """What each component's row holds now (so an unchanged one is not written)."""

    def commit(self, tick: int, t_ns: int, lines: tuple[str, ...], state: dict[str, Any]) -> None:
        """Append ``lines`` and replace the snapshot rows that changed, atomically."""
        packed = {name: msgpack.packb(part) for name, part in state.items()}
        changed = [(n, b) for n, b in packed.items() if self._written.get(n) != b]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO events (t_ns, line) VALUES (?, ?)", [(t_ns, line) for line in lines]
            )
            self.db.executemany("INSERT OR REPLACE INTO parts (name, data) VALUES (?, ?)", changed)
            self.db.execute(
                "INSERT OR REPLACE INTO state (id, tick, t_ns) VALUES (1, ?, ?)", (tick, t_ns)
            )
        self._written.update(changed)

    def save(self, tick: int, t_ns: int, lines: tuple[str, ...], snapshots: Snapshots) -> None:
        """Commit ``lines`` and what changed of ``snapshots`` since the last save."""
        self.commit(tick, t_ns, lines, snapshots.take(changed=True))
        snapshots.written()

    def reset(self) -> None:
        """Forget everything (a fresh run in a directory that held one)."""
        with self.db:
            self.db.execute("DELETE FROM events")
            self.db.execute("DELETE FROM state")
            self.db.execute("DELETE FROM parts")
        self._written = {}

    def load(self) -> tuple[int, int, dict[str, Any]] | None:
        """The last committed (tick, t_ns, state), or None for an empty journal."""
        row = self.db.execute("SELECT tick, t_ns FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        rows = self.db.execute("SELECT name, data FROM parts").fetchall()
        try:
            state = {str(n): msgpack.unpackb(b, strict_map_key=False) for n, b in rows}
        except (ValueError, TypeError, msgpack.ExtraData) as exc:
            raise ValueError(f"a component's row is not msgpack ({exc})") from None
        self._written = {str(n): bytes(b) for n, b in rows}
        return int(row[0]), int(row[1]), state

    def lines(self) -> list[str]:
        """Every event line, in order."""
        return [r[0] for r in self.db.execute("SELECT line FROM events ORDER BY seq")]

    def close(self) -> None:
        """Close the database."""
        self.db.close()
