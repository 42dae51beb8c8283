"""Members stepped on the clock's thread give the log members on threads of their own give.

A one-process cell over ``inproc`` steps its supervisor and agents on the clock's thread
(``ClockServer.attach``); ``RunOptions(threads=True)`` keeps each on a thread with its own
socket to the clock, as before. The same cell, seed and scenario, with faults of every kind
a single process can take (a drop, a stopped arm, a jam, a slow robot, lost messages, a
sensor blackout), must give the same event log, world record and KPIs byte for byte, at
events and at physics fidelity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.cellspec import CellSpec
from bus.clock import ClockServer
from cells.calibrate import with_fidelity
from cells.faults import load_scenario
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from robots.agent import RobotAgent

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """
[[faults]]
at = 20.0
target = "R2"
kind = "gripper_drop"
[[faults]]
at = 35.0
target = "R3"
kind = "robot_fault"
duration = 8.0
[[faults]]
at = 50.0
target = "outfeed"
kind = "conveyor_jam"
duration = 6.0
[[faults]]
at = 60.0
target = "R1"
kind = "slow_robot"
duration = 20.0
[[faults]]
at = 70.0
target = "R4"
kind = "message_loss"
duration = 15.0
[[faults]]
at = 80.0
target = "infeed.end"
kind = "sensor_blackout"
duration = 3.0
"""


def assembly(fidelity: str) -> CellSpec:
    path = ROOT / "cells" / "assembly.toml"
    cell = load_cell(path)
    return with_fidelity(cell, path, fidelity) if fidelity != "physics" else cell


def run(tmp_path: Path, fidelity: str, duration_s: float, *, threads: bool) -> Path:
    cell = assembly(fidelity)
    scenario = tmp_path / "faults.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / f"{fidelity}-{'threads' if threads else 'local'}"
    faults = load_scenario(str(scenario), cell)
    run_cell(cell, out, RunOptions(seed=3, duration_s=duration_s, faults=faults, threads=threads))
    return out


def kpis(out: Path) -> dict[str, object]:
    k = json.loads((out / "kpis.json").read_text())
    k.pop("sim", None)  # wall-clock figures of the run itself
    return k


@pytest.mark.parametrize(("fidelity", "duration_s"), [("events", 300.0), ("physics", 100.0)])
@pytest.mark.timeout(600)
def test_the_same_run_on_one_thread_and_on_many(
    tmp_path: Path, fidelity: str, duration_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    stepped: set[str] = set()
    attach = ClockServer.attach

    def seen(self: ClockServer, member: object) -> None:
        stepped.add(member.name)  # type: ignore[attr-defined]
        attach(self, member)  # type: ignore[arg-type]

    monkeypatch.setattr(ClockServer, "attach", seen)
    local = run(tmp_path, fidelity, duration_s, threads=False)
    assert stepped == {"supervisor", "R1", "R2", "R3", "R4"}, "all on the clock's thread"
    stepped.clear()
    threaded = run(tmp_path, fidelity, duration_s, threads=True)
    assert not stepped, "threads=True keeps them on threads"
    for name in ("events.jsonl", "world.jsonl"):
        assert (local / name).read_bytes() == (threaded / name).read_bytes(), name
    assert kpis(local) == kpis(threaded)
    log = [json.loads(x) for x in (local / "events.jsonl").read_text().splitlines()]
    kinds = {e["fault"] for e in log if e["kind"] == "fault_injected"}
    assert len(kinds) == 6, kinds
    assert sum(e["kind"] == "unit_shipped" for e in log) >= (10 if fidelity == "events" else 3)


def test_a_member_that_raises_is_dropped_and_the_run_fails_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a member stepped on the clock's thread ends the run with its error, as a
    member thread's crash does, and the clock is not left waiting for it."""
    cell = assembly("events")
    step = RobotAgent.step

    def broken(self: RobotAgent, tick, inbox, out):  # type: ignore[no-untyped-def]
        if self.name == "R2" and tick.t_ns > 5_000_000_000:
            raise RuntimeError("R2's bug")
        return step(self, tick, inbox, out)

    monkeypatch.setattr(RobotAgent, "step", broken)
    with pytest.raises(RuntimeError, match="R2's bug"):
        run_cell(cell, tmp_path / "run", RunOptions(seed=1, duration_s=30.0))
