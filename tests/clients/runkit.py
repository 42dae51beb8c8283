"""Scripted run directories (``kpis.json`` + ``events.jsonl``) for report tests.

``fault_run`` is a 100 s, two-robot run with every kind of trouble a report
must show: a robot fault that aborts R2 and fails its operation, R1 lost and
back, a scrapped unit. Times are round so a test can state what it expects.
Its ``kpis.json`` has the figures a supervisor would have written for those
events (its fault tracker's); ``old_kpis`` is one from before it wrote them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from supervisor.faultstats import FaultTracker
from supervisor.reliability import add_figures

S = 1_000_000_000

BOOT = ("Stopped", "Resetting", "Idle", "Starting", "Execute")


def _boot(robot: str, t_s: float, src: str = "") -> list[dict[str, Any]]:
    out = []
    for i, dst in enumerate(BOOT):
        out.append(
            {
                "t_ns": round((t_s + 0.2 * i) * S),
                "kind": "robot_state",
                "robot": robot,
                "src": src if i == 0 else BOOT[i - 1],
                "dst": dst,
                "reason": "heartbeat" if i == 0 else "state complete",
            }
        )
    return out


def fault_events() -> list[dict[str, Any]]:
    """The events of ``fault_run``, in sim-time order."""
    ev: list[dict[str, Any]] = [
        {"t_ns": 0, "kind": "part_created", "part": "frame-1", "part_kind": "frame"},
        {"t_ns": 0, "kind": "part_created", "part": "battery-1", "part_kind": "battery"},
        *_boot("R1", 0.0),
        *_boot("R2", 0.0),
        {"t_ns": 5 * S, "kind": "unit_started", "unit": "frame-1", "fixture": "F1"},
        {"t_ns": 5 * S, "kind": "op_started", "op": "frame-1/load", "robot": "R1"},
        {"t_ns": 10 * S, "kind": "op_done", "op": "frame-1/load", "robot": "R1", "detail": ""},
        {"t_ns": 11 * S, "kind": "op_started", "op": "frame-1/battery", "robot": "R2"},
        {
            "t_ns": 20 * S,
            "kind": "fault_injected",
            "target": "R2",
            "fault": "robot_fault",
            "duration_s": 10.0,
        },
        {
            "t_ns": 20 * S,
            "kind": "robot_state",
            "robot": "R2",
            "src": "Execute",
            "dst": "Aborting",
            "reason": "command Abort",
        },
        {
            "t_ns": 20 * S,
            "kind": "op_failed",
            "op": "frame-1/battery",
            "robot": "R2",
            "detail": "aborted",
        },
        {
            "t_ns": 20 * S + S // 10,
            "kind": "robot_state",
            "robot": "R2",
            "src": "Aborting",
            "dst": "Aborted",
            "reason": "state complete",
        },
        {
            "t_ns": 30 * S,
            "kind": "robot_state",
            "robot": "R2",
            "src": "Aborted",
            "dst": "Clearing",
            "reason": "command Clear",
        },
        *_boot("R2", 30.2, "Clearing"),
        {"t_ns": 32 * S, "kind": "op_started", "op": "frame-1/battery", "robot": "R1"},
        {"t_ns": 40 * S, "kind": "op_done", "op": "frame-1/battery", "robot": "R1", "detail": ""},
        {
            "t_ns": 45 * S,
            "kind": "unit_shipped",
            "unit": "frame-1",
            "parts": ["frame-1", "battery-1"],
            "cycle_s": 40.0,
        },
        {"t_ns": 50 * S, "kind": "part_created", "part": "frame-2", "part_kind": "frame"},
        {"t_ns": 50 * S, "kind": "unit_started", "unit": "frame-2", "fixture": "F1"},
        {"t_ns": 60 * S, "kind": "robot_lost", "robot": "R1"},
        {"t_ns": 70 * S, "kind": "robot_joined", "robot": "R1"},
        *_boot("R1", 70.0, "Execute"),
        {
            "t_ns": 80 * S,
            "kind": "unit_scrapped",
            "unit": "frame-2",
            "parts": ["frame-2"],
            "reason": "inspection",
        },
        {"t_ns": 100 * S, "kind": "run_end", "reason": "duration reached"},
    ]
    return sorted(ev, key=lambda e: e["t_ns"])


def fault_kpis() -> dict[str, Any]:
    """The ``kpis.json`` a supervisor writes for ``fault_events``."""
    return supervisor_figures(old_kpis(), fault_events())


def supervisor_figures(kpis: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """``kpis`` with the ISO 22400-2 figures, faults and outages the supervisor derives from
    ``events`` (through the same fault tracker)."""
    tracker = FaultTracker(kpis["robots"])
    for e in events:
        tracker.feed(e)
    return add_figures(copy.deepcopy(kpis), tracker, round(kpis["duration_s"] * S))


def old_kpis() -> dict[str, Any]:
    """A ``kpis.json`` matching ``fault_events`` from before the supervisor computed OEE, MTBF,
    MTTR and the fault list (no ``state_s`` either)."""
    robot = {
        "blocked_s": 1.5,
        "busy_s": 13.0,
        "ops_done": 2,
        "ops_failed": 0,
        "starved_s": 60.25,
        "state": "Execute",
        "utilisation": 0.13,
    }
    return {
        "cell": "synthetic",
        "seed": 7,
        "duration_s": 100.0,
        "units_completed": 1,
        "units_scrapped": 1,
        "units_in_progress": 0,
        "throughput_per_hour": 36.0,
        "cycle_time_s": {"mean": 40.0, "min": 40.0, "max": 40.0},
        "ledger": {"created": 3, "shipped": 2, "scrapped": 1, "wip": 0},
        "ledger_balanced": True,
        "robots": {"R1": robot, "R2": {**robot, "ops_done": 0, "ops_failed": 1, "busy_s": 9.0}},
    }


def write_run(
    path: Path, kpis: dict[str, Any], events: list[dict[str, Any]], *, indent: int = 2
) -> Path:
    """Write a run directory the way the supervisor does (sorted keys, one event a line)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "kpis.json").write_text(json.dumps(kpis, indent=indent, sort_keys=True) + "\n")
    lines = [json.dumps(e, sort_keys=True, separators=(",", ":")) for e in events]
    (path / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    return path


def fault_run(path: Path) -> Path:
    """Write the scripted fault run to ``path``."""
    return write_run(path, fault_kpis(), fault_events())
