"""The event clock against the fixed-rate barrier: the same run, fault by fault.

One 300 s scenario with every fault kind that runs in one process (a robot fault, a drop,
a jammed belt, a blacked-out sensor, a slow robot, a lossy link), run under
``sync = "tick"`` and under ``sync = "event"`` with the same seed. The event clock skips
every tick at which nobody must act, so it must give the very same event log, byte for
byte, and the same KPIs, while doing a fraction of the round trips. (That each mode is
reproducible by itself, the reference runs show: ``test_run`` and ``test_chaos``.)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bus.enums import FaultKind
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 300.0
FAULTS = (
    ScheduledFault(30.0, "R3", FaultKind.GRIPPER_DROP),
    ScheduledFault(45.0, "infeed.end", FaultKind.SENSOR_BLACKOUT, duration_s=2.0),
    ScheduledFault(60.0, "R1", FaultKind.ROBOT_FAULT, duration_s=5.0),
    ScheduledFault(90.0, "infeed", FaultKind.CONVEYOR_JAM, duration_s=20.0),
    ScheduledFault(120.0, "R3", FaultKind.SLOW_ROBOT, duration_s=60.0, factor=2.0),
    ScheduledFault(150.0, "R4", FaultKind.MESSAGE_LOSS, duration_s=20.0, share=0.3),
)


def _run(out: Path, sync: str) -> dict[str, Any]:
    cell = dataclasses.replace(load_cell(ROOT / "cells" / "assembly.toml"), sync=sync)
    kpis = run_cell(cell, out, RunOptions(seed=3, duration_s=DURATION_S, faults=FAULTS))
    return {"kpis": kpis, "log": (out / "events.jsonl").read_bytes()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("sync")
    return {name: _run(base / name, name) for name in ("tick", "event")}


def test_both_modes_detect_the_same_faults(runs: dict[str, dict[str, Any]]) -> None:
    def detected(name: str) -> list[tuple[str, Any]]:
        return [(f["kind"], f["detected_by"]) for f in runs[name]["kpis"]["faults"]]

    assert len(detected("event")) == len(FAULTS)
    assert detected("event") == detected("tick")
    # the slowed robot may go unnoticed (it can win no work while slow); the rest may not
    missed = [k for k, by in detected("event") if by is None and k != FaultKind.SLOW_ROBOT]
    assert missed == [], json.dumps(runs["event"]["kpis"]["faults"], indent=1)


def test_the_event_clock_gives_the_fixed_rate_log_byte_for_byte(
    runs: dict[str, dict[str, Any]],
) -> None:
    tick, event = runs["tick"]["log"], runs["event"]["log"]
    if tick != event:
        a, b = tick.decode().splitlines(), event.decode().splitlines()
        first = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
        pytest.fail(f"line {first + 1} differs:\ntick:  {a[first]}\nevent: {b[first]}")


def test_the_kpis_agree_within_three_percent(runs: dict[str, dict[str, Any]]) -> None:
    tick, event = runs["tick"]["kpis"], runs["event"]["kpis"]
    assert tick["units_completed"] > 0
    assert event["units_completed"] == tick["units_completed"]
    for key in ("mean", "min", "max"):
        assert event["cycle_time_s"][key] == pytest.approx(tick["cycle_time_s"][key], rel=0.03)
    for robot, st in tick["robots"].items():
        assert event["robots"][robot]["utilisation"] == pytest.approx(
            st["utilisation"], rel=0.03, abs=0.005
        ), robot


def test_the_event_clock_does_a_fraction_of_the_round_trips(
    runs: dict[str, dict[str, Any]],
) -> None:
    tick, event = runs["tick"]["kpis"]["sim"], runs["event"]["kpis"]["sim"]
    assert tick["ticks"] == event["ticks"]
    assert tick["round_trips"] == tick["ticks"] * 5  # four robots and the supervisor
    assert event["round_trips"] < tick["round_trips"] / 3
    assert event["bus_messages"] == tick["bus_messages"]
