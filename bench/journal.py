"""The journal's cost per commit: the state taken and written three ways, side by side.

A 600 s run of the assembly cell at events fidelity (one process) is made through the real
launcher. At every commit its supervisor makes, the state is taken twice, each timed: whole
(every component's ``snapshot``, the health model's series in it) and as the journal takes
it now (``Snapshots.take(changed=True)``: the health model's series only where a sample
came). The captured commits are then written into fresh SQLite files, side by side: as one
``state`` row of the whole state in sorted JSON (the first layout), as a row per component
in msgpack, compared with the last (the second), and by ``supervisor.journal.Journal`` as it
is, with the series in rows of their own (the third). The figures are CPU seconds of this
process for taking and for writing all the commits, and the bytes of state written.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from cells.calibrate import with_fidelity
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from supervisor import journal

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "cells" / "assembly.toml"


@dataclasses.dataclass(frozen=True, slots=True)
class Cost:
    """All the commits of one run taken and written one way."""

    commits: int
    take_s: float
    cpu_s: float
    state_bytes: int


Commit = tuple[int, int, tuple[str, ...], dict[str, Any]]


@dataclasses.dataclass(slots=True)
class Captured:
    """Every commit of a run, its state taken both ways (frozen in msgpack, since the
    components go on changing after the commit), and the CPU each way of taking cost."""

    whole: list[tuple[int, int, tuple[str, ...], bytes]] = dataclasses.field(default_factory=list)
    rows: list[bytes] = dataclasses.field(default_factory=list)
    whole_s: float = 0.0
    rows_s: float = 0.0


def capture(duration_s: float, seed: int) -> Captured:
    """Every commit of a real run, its state taken whole and as the journal takes it."""
    import msgpack

    got = Captured()
    real_take, real_commit = journal.Snapshots.take, journal.Journal.commit

    def take(self: journal.Snapshots, *, changed: bool = False) -> dict[str, Any]:
        if not changed:
            return real_take(self)
        t0 = time.process_time()
        whole = {name: part.snapshot() for name, part in self.components.items()}
        t1 = time.process_time()
        rows = real_take(self, changed=True)
        got.whole_s += t1 - t0
        got.rows_s += time.process_time() - t1
        got.rows.append(msgpack.packb(rows))
        got.whole.append((0, 0, (), msgpack.packb(whole)))
        return rows

    def commit(
        self: journal.Journal, tick: int, t_ns: int, lines: tuple[str, ...], state: dict[str, Any]
    ) -> None:
        got.whole[-1] = (tick, t_ns, tuple(lines), got.whole[-1][3])
        real_commit(self, tick, t_ns, lines, state)

    cell = with_fidelity(load_cell(CELL), CELL, "events")
    journal.Snapshots.take = take  # type: ignore[method-assign,assignment]
    journal.Journal.commit = commit  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_cell(cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s))
    finally:
        journal.Snapshots.take = real_take  # type: ignore[method-assign]
        journal.Journal.commit = real_commit  # type: ignore[method-assign]
    return got


def whole_json(commits: list[Commit], db: Path, take_s: float) -> Cost:
    """The former layout: one row holding the whole state as sorted JSON, every commit."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, t_ns INTEGER, line TEXT);"
        "CREATE TABLE state (id INTEGER PRIMARY KEY, tick INTEGER, t_ns INTEGER, data TEXT);"
    )
    written = 0
    t0 = time.process_time()
    for tick, t_ns, lines, state in commits:
        data = json.dumps(state, sort_keys=True, separators=(",", ":"))
        written += len(data)
        with con:
            con.execute("BEGIN")
            con.executemany(
                "INSERT INTO events (t_ns, line) VALUES (?, ?)", [(t_ns, x) for x in lines]
            )
            con.execute("INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?)", (tick, t_ns, data))
    cpu = time.process_time() - t0
    con.close()
    return Cost(len(commits), take_s, cpu, written)


def per_component(commits: list[Commit], db: Path, take_s: float) -> Cost:
    """``supervisor.journal.Journal``: a row per name in ``state``, written when it changed."""
    j = journal.Journal(db)
    written = 0
    t0 = time.process_time()
    for tick, t_ns, lines, state in commits:
        before = dict(j._written)
        j.commit(tick, t_ns, lines, state)
        written += sum(len(b) for n, b in j._written.items() if before.get(n) is not b)
    cpu = time.process_time() - t0
    j.close()
    return Cost(len(commits), take_s, cpu, written)


def run(duration_s: float, seed: int) -> tuple[Cost, Cost, Cost]:
    """The first layout, the second and the present one over the same commits of one run."""
    import msgpack

    got = capture(duration_s, seed)
    whole = [
        (k, t, lines, msgpack.unpackb(b, strict_map_key=False)) for k, t, lines, b in got.whole
    ]
    rows = [
        (k, t, lines, msgpack.unpackb(b, strict_map_key=False))
        for (k, t, lines, _), b in zip(got.whole, got.rows, strict=True)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        first = whole_json(whole, Path(tmp) / "first.sqlite", got.whole_s)
        second = per_component(whole, Path(tmp) / "second.sqlite", got.whole_s)
        now = per_component(rows, Path(tmp) / "now.sqlite", got.rows_s)
    return first, second, now
