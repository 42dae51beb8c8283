"""KPIs in the words of ISO 22400-2, counted from what the supervisor sees.

Every figure comes from sim time: robot state durations from ``StateChanged``,
busy time from operation start to report, starved and blocked time sampled at
each control tick, units and cycle times from the ledger.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from bus.enums import PackMLState
from bus.participant import Outbox
from bus.simtime import NS
from supervisor.journal import field_names


@dataclasses.dataclass(slots=True)
class RobotStats:
    """What one robot did."""

    state: PackMLState = PackMLState.STOPPED
    since_ns: int = 0
    state_ns: dict[str, int] = dataclasses.field(default_factory=dict)
    busy_ns: int = 0
    starved_ns: int = 0
    blocked_ns: int = 0
    ops_done: int = 0
    ops_failed: int = 0
    op_started_ns: int = -1

    def enter(self, state: PackMLState, now_ns: int) -> None:
        """Account the time in the old state and switch."""
        key = self.state.value
        self.state_ns[key] = self.state_ns.get(key, 0) + now_ns - self.since_ns
        self.state, self.since_ns = state, now_ns


class Counters(dict[str, int]):
    """What the supervisor counted and refused (stale bids, unknown parts, ...), by name."""

    def snapshot(self) -> dict[str, int]:
        """As plain data (the journal)."""
        return dict(self)

    def restore(self, data: dict[str, int]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.update(data)


PUBLISH_EVERY_S = {"physics": 1.0, "events": 10.0}
"""How often, in sim seconds, the supervisor publishes a KPI snapshot (telemetry, the
console, ``status``, a factory's view), by fidelity. Ten sim seconds at events fidelity
pass in about 60 ms of wall time, so its consoles still redraw many times a wall second;
once a sim second there, the snapshot (the bottleneck's bound among it) was a fifth of
the run's CPU. ``kpis.json`` is written afresh at the end either way, and no decision
reads a snapshot: the event log is the same at any period."""


class Kpis:
    """Accumulates the run's KPIs."""

    def __init__(self, robots: list[str], *, fidelity: str = "physics") -> None:
        self.every_ns = round(PUBLISH_EVERY_S.get(fidelity, 1.0) * NS)
        self.published_s = -1
        """The period the KPIs were last published in (sim time // ``every_ns``; with the
        physics period of 1 s, the sim second)."""
        self.robots = {r: RobotStats() for r in sorted(robots)}
        self.units_shipped = 0
        self.units_scrapped = 0
        self.cycle_ns: list[int] = []
        self.ship_times_ns: list[int] = []

    def due(self, now_ns: int) -> bool:
        """Whether a new period began since the KPIs were last published (then marked)."""
        slot = now_ns // self.every_ns
        if slot == self.published_s:
            return False
        self.published_s = slot
        return True

    def state(self, robot: str, state: PackMLState, now_ns: int) -> None:
        """A robot entered ``state``."""
        self.robots[robot].enter(state, now_ns)

    def op_started(self, robot: str, now_ns: int) -> None:
        """A robot started moving for an operation."""
        self.robots[robot].op_started_ns = now_ns

    def op_ended(self, robot: str, now_ns: int, *, ok: bool) -> None:
        """A robot's operation ended."""
        st = self.robots[robot]
        if st.op_started_ns >= 0:
            st.busy_ns += now_ns - st.op_started_ns
            st.op_started_ns = -1
        if ok:
            st.ops_done += 1
        else:
            st.ops_failed += 1

    def commissioned(self, created_ns: int, now_ns: int) -> None:
        """An arm built here became a robot: a unit completed, like one shipped."""
        self.shipped(created_ns, now_ns)

    def shipped(self, created_ns: int, now_ns: int) -> None:
        """A good unit left the cell."""
        self.units_shipped += 1
        self.cycle_ns.append(now_ns - created_ns)
        self.ship_times_ns.append(now_ns)

    def snapshot(self) -> dict[str, Any]:
        """The accumulators as plain data (the journal)."""
        return {
            "robots": {
                name: {
                    n: getattr(s, n).value if n == "state" else getattr(s, n)
                    for n in field_names(type(s))
                }
                for name, s in self.robots.items()
            },
            "units_shipped": self.units_shipped,
            "units_scrapped": self.units_scrapped,
            "cycle_ns": list(self.cycle_ns),
            "ship_times_ns": list(self.ship_times_ns),
            "published_s": self.published_s,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        for name, s in data["robots"].items():
            st = RobotStats()
            for key, value in s.items():
                setattr(st, key, PackMLState(value) if key == "state" else value)
            self.robots[name] = st
        self.units_shipped, self.units_scrapped = data["units_shipped"], data["units_scrapped"]
        self.cycle_ns, self.ship_times_ns = list(data["cycle_ns"]), list(data["ship_times_ns"])
        self.published_s = data["published_s"]

    def report(self, now_ns: int, extra: dict[str, Any]) -> dict[str, Any]:
        """The KPI table as plain data (for ``kpis.json``)."""
        hours = now_ns / NS / 3600 if now_ns else 0.0
        robots: dict[str, Any] = {}
        for name, st in self.robots.items():
            st.enter(st.state, now_ns)  # close the open interval
            busy = st.busy_ns + (now_ns - st.op_started_ns if st.op_started_ns >= 0 else 0)
            robots[name] = {
                "state": st.state.value,
                "utilisation": round(busy / now_ns, 4) if now_ns else 0.0,
                "busy_s": round(busy / NS, 3),
                "starved_s": round(st.starved_ns / NS, 3),
                "blocked_s": round(st.blocked_ns / NS, 3),
                "ops_done": st.ops_done,
                "ops_failed": st.ops_failed,
                "state_s": {k: round(v / NS, 3) for k, v in sorted(st.state_ns.items()) if v},
            }
        cycles = [c / NS for c in self.cycle_ns]
        out: dict[str, Any] = {
            "duration_s": round(now_ns / NS, 3),
            "units_completed": self.units_shipped,
            "units_scrapped": self.units_scrapped,
            "throughput_per_hour": round(self.units_shipped / hours, 2) if hours else 0.0,
            "cycle_time_s": {
                "mean": round(statistics.fmean(cycles), 3) if cycles else None,
                "min": round(min(cycles), 3) if cycles else None,
                "max": round(max(cycles), 3) if cycles else None,
            },
            "robots": robots,
        }
        out.update(extra)
        return out


def link_counters(out: Outbox) -> dict[str, int]:
    """What the supervisor's cell-bus link counted (for the KPIs): malformed, late and
    missing messages; refused by key, stamped too far ahead, past the per-sender cap (peers
    are untrusted); handshakes turned away."""
    return {
        "malformed": out.malformed,
        "late": out.late,
        "missing": out.missing,
        "refused": out.refused,
        "ahead": out.ahead,
        "flooded": out.flooded,
        "handshakes_failed": out.handshakes_failed,
    }
