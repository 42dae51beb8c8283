"""The supervisor's journal: SQLite (WAL), so a restarted supervisor loses nothing.

Every tick that changed anything, the supervisor appends the event-log lines
it wrote and replaces one snapshot row with its whole state (ledger, units
and their operations, assignments, robots, KPI accumulators, orders) in one
transaction. A supervisor started with ``restore=True`` reads the snapshot
back and carries on from the last committed tick: the ledger, the open
operations and the assignments come back exactly (a test compares them).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.enums import PackMLCommand, PackMLState
from supervisor.kpis import RobotStats
from supervisor.ledger import PartRecord
from supervisor.plan import Op, OpState, Unit

if TYPE_CHECKING:
    from supervisor.supervisor import Supervisor

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, t_ns INTEGER NOT NULL, line TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), tick INTEGER NOT NULL,
                                  t_ns INTEGER NOT NULL, data TEXT NOT NULL);
"""


class Journal:
    """The SQLite file beside ``events.jsonl``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # built on the launcher's thread, then used only by the supervisor's: one at a time
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def commit(self, tick: int, t_ns: int, lines: tuple[str, ...], state: dict[str, Any]) -> None:
        """Append ``lines`` and replace the snapshot, atomically."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO events (t_ns, line) VALUES (?, ?)", [(t_ns, line) for line in lines]
            )
            self.db.execute(
                "INSERT OR REPLACE INTO state (id, tick, t_ns, data) VALUES (1, ?, ?, ?)",
                (tick, t_ns, json.dumps(state, sort_keys=True, separators=(",", ":"))),
            )

    def reset(self) -> None:
        """Forget everything (a fresh run in a directory that held one)."""
        with self.db:
            self.db.execute("DELETE FROM events")
            self.db.execute("DELETE FROM state")

    def load(self) -> tuple[int, int, dict[str, Any]] | None:
        """The last committed (tick, t_ns, state), or None for an empty journal."""
        row = self.db.execute("SELECT tick, t_ns, data FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        return int(row[0]), int(row[1]), json.loads(row[2])

    def lines(self) -> list[str]:
        """Every event line, in order."""
        return [r[0] for r in self.db.execute("SELECT line FROM events ORDER BY seq")]

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def _plain(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def snapshot(sup: Supervisor) -> dict[str, Any]:
    """The supervisor's whole state as plain JSON-able data."""
    led = sup.ledger
    units = {}
    for uid, u in sup.units.items():
        ops = {}
        for name, op in u.ops.items():
            ops[name] = {
                f.name: _plain(getattr(op, f.name))
                for f in dataclasses.fields(op)
                if f.name not in ("spec", "unit")
            }
        units[uid] = {
            "fixture": u.fixture,
            "created_ns": u.created_ns,
            "rejected": u.rejected,
            "reason": u.reason,
            "finished_ns": u.finished_ns,
            "ops": ops,
            "mount": u.mount,
            "base_kind": u.base_kind,
        }
    robots = {
        name: {
            f.name: _plain(getattr(r, f.name)) for f in dataclasses.fields(r) if f.name != "spec"
        }
        for name, r in sup.robots.items()
    }
    stats = {
        name: {f.name: _plain(getattr(s, f.name)) for f in dataclasses.fields(s)}
        for name, s in sup.kpis.robots.items()
    }
    return {
        "ledger": {
            "live": {p: [r.kind, r.location] for p, r in led.live.items()},
            "gone": dict(led.gone),
            "created": led.created,
            "shipped": led.shipped,
            "scrapped": led.scrapped,
            "consumed": led.consumed,
        },
        "units": units,
        "robots": robots,
        "kpis": {
            "robots": stats,
            "units_shipped": sup.kpis.units_shipped,
            "units_scrapped": sup.kpis.units_scrapped,
            "cycle_ns": list(sup.kpis.cycle_ns),
            "ship_times_ns": list(sup.kpis.ship_times_ns),
        },
        "bids": {k: [list(b) for b in v] for k, v in sup.bids.items()},
        "busy_stations": dict(sup.busy_stations),
        "sensors": dict(sup.sensors),
        "counters": dict(sup.counters),
        "orders": [dict(o) for o in sup.desk.orders],
        "cmd_seq": sup.cmd_seq,
        "kpi_second": sup.kpi_second,
        "events": sup.events.count,
        "fastened": sorted(sup.fastened),
        "sensor_seen": dict(sup.sensor_seen),
        "stale": sorted(sup.stale),
        "rests": sup.rests.snapshot(),
        "builds": sup.builds.snapshot(),
    }


def restore(sup: Supervisor, state: dict[str, Any]) -> None:
    """Put ``state`` (from ``snapshot``) back into a freshly built supervisor."""
    led = sup.ledger
    lg = state["ledger"]
    led.live = {p: PartRecord(p, kind, loc) for p, (kind, loc) in lg["live"].items()}
    led.gone = dict(lg["gone"])
    led.created, led.shipped, led.scrapped = lg["created"], lg["shipped"], lg["scrapped"]
    led.consumed = lg.get("consumed", 0)
    for spec in sup.builds.restore(state.get("builds", {})):
        sup.add_robot(spec)
    sup.units, sup.ops = {}, {}
    for uid, u in state["units"].items():
        base_kind = u.get("base_kind") or sup.cell.recipe.base
        specs = {s.name: s for s in sup.cell.recipe_for(base_kind).ops}
        ops = {}
        for name, o in u["ops"].items():
            op = Op(
                unit=uid,
                spec=specs[name],
                src=o["src"],
                dst=o["dst"],
                at=o["at"],
                base_kind=base_kind,
            )
            op.state = OpState(o["state"])
            for key in (
                "part",
                "robot",
                "auction_tick",
                "not_before_ns",
                "attempts",
                "started_ns",
                "awarded_ns",
            ):
                setattr(op, key, o[key])
            op.pick = tuple(o.get("pick", ()))
            op.recoveries = o.get("recoveries", 0)
            ops[name] = op
            sup.ops[op.op_id] = op
        sup.units[uid] = Unit(
            unit_id=uid,
            fixture=u["fixture"],
            created_ns=u["created_ns"],
            ops=ops,
            rejected=u["rejected"],
            reason=u["reason"],
            finished_ns=u["finished_ns"],
            mount=u.get("mount", ""),
            base_kind=base_kind,
        )
    for name, r in state["robots"].items():
        view = sup.robots[name]
        view.state = PackMLState(r["state"]) if r["state"] else None
        view.alive, view.last_seen_ns = r["alive"], r["last_seen_ns"]
        view.ops = list(r["ops"])
        view.pending_cmd, view.pending_since_ns = r["pending_cmd"], r["pending_since_ns"]
        pc = r["pending_command"]
        view.pending_command = PackMLCommand(pc) if pc else None
        view.manual, view.clear_after_ns = r["manual"], r["clear_after_ns"]
    k = state["kpis"]
    for name, s in k["robots"].items():
        st = RobotStats()
        for key, value in s.items():
            setattr(st, key, PackMLState(value) if key == "state" else value)
        sup.kpis.robots[name] = st
    sup.kpis.units_shipped, sup.kpis.units_scrapped = k["units_shipped"], k["units_scrapped"]
    sup.kpis.cycle_ns, sup.kpis.ship_times_ns = list(k["cycle_ns"]), list(k["ship_times_ns"])
    sup.bids = {op_id: [(int(f), str(r)) for f, r in v] for op_id, v in state["bids"].items()}
    sup.busy_stations = dict(state["busy_stations"])
    sup.sensors = dict(state["sensors"])
    sup.counters.update(state["counters"])
    sup.desk.orders = [dict(o) for o in state["orders"]]
    sup.cmd_seq, sup.kpi_second = state["cmd_seq"], state["kpi_second"]
    sup.events.count = state["events"]
    sup.fastened = set(state["fastened"])
    sup.sensor_seen = dict(state["sensor_seen"])
    sup.stale = set(state["stale"])
    sup.rests.restore(state.get("rests", {}))
