"""The journal's cost per commit: the whole state as one JSON row against a row per component.

A 600 s run of the assembly cell at events fidelity (one process) is made through the real
launcher, and every commit its supervisor makes is captured on the way to the journal (the
tick, the lines, the state). The same commits are then written twice into fresh SQLite files,
side by side: once as the journal wrote them before (one ``state`` row replaced with the whole
state in sorted JSON), once by ``supervisor.journal.Journal`` as it is (each component in a
row of its own, in msgpack, only the ones that changed). The figures are CPU seconds of this
process for all the commits, their ratio, and the bytes of state written.
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
    """All the commits of one run written one way."""

    commits: int
    cpu_s: float
    state_bytes: int


def capture(duration_s: float, seed: int) -> list[tuple[int, int, tuple[str, ...], bytes]]:
    """Every commit of a real run: tick, sim time, lines and the state (frozen in msgpack,
    since the components go on changing after the commit)."""
    import msgpack

    got: list[tuple[int, int, tuple[str, ...], bytes]] = []
    real = journal.Journal.commit

    def spy(
        self: journal.Journal, tick: int, t_ns: int, lines: tuple[str, ...], state: dict[str, Any]
    ) -> None:
        got.append((tick, t_ns, tuple(lines), msgpack.packb(state)))
        real(self, tick, t_ns, lines, state)

    cell = with_fidelity(load_cell(CELL), CELL, "events")
    journal.Journal.commit = spy  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_cell(cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s))
    finally:
        journal.Journal.commit = real  # type: ignore[method-assign]
    return got


def whole_json(commits: list[tuple[int, int, tuple[str, ...], dict[str, Any]]], db: Path) -> Cost:
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
    return Cost(len(commits), cpu, written)


def per_component(
    commits: list[tuple[int, int, tuple[str, ...], dict[str, Any]]], db: Path
) -> Cost:
    """The journal as it is (``supervisor.journal.Journal``)."""
    j = journal.Journal(db)
    written = 0
    t0 = time.process_time()
    for tick, t_ns, lines, state in commits:
        before = dict(j._written)
        j.commit(tick, t_ns, lines, state)
        written += sum(len(b) for n, b in j._written.items() if before.get(n) is not b)
    cpu = time.process_time() - t0
    j.close()
    return Cost(len(commits), cpu, written)


def run(duration_s: float, seed: int) -> tuple[Cost, Cost]:
    """The former layout and the present one over the same commits of one run."""
    import msgpack

    raw = capture(duration_s, seed)
    commits = [(k, t, lines, msgpack.unpackb(b, strict_map_key=False)) for k, t, lines, b in raw]
    with tempfile.TemporaryDirectory() as tmp:
        before = whole_json(commits, Path(tmp) / "before.sqlite")
        after = per_component(commits, Path(tmp) / "after.sqlite")
    return before, after
