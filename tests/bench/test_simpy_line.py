"""The SimPy model of the assembly line (``bench.simpy_line``) and the fidelity benchmark's
fault scenario: cheap, from the real cell file and calibration."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from bench import simpy_line
from bench.fidelity import scenario
from bus.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "cells" / "assembly.toml"
HOUR_S = 3600.0


@pytest.fixture(scope="module")
def hour() -> simpy_line.Result:
    return simpy_line.run(CELL, HOUR_S, 1)


def test_an_hour_ships_what_the_frame_feeder_allows(hour: simpy_line.Result) -> None:
    # a frame every 10 +/- 3 s: about 360 an hour (a seed's gaps add up to 3600 +/- 33 s)
    assert 330 <= hour.shipped <= 375, hour.shipped
    assert 20.0 < hour.mean_cycle_s < 30.0, hour.mean_cycle_s
    # every unit is seven operations; the ones still on the line have done some of theirs
    assert hour.ops_done >= 7 * hour.shipped
    util = hour.utilisation()
    assert set(util) == {"R1", "R2", "R3", "R4"}
    assert all(0.05 < u < 1.0 for u in util.values()), util


def test_the_same_seed_gives_the_same_run_and_another_seed_another(
    hour: simpy_line.Result,
) -> None:
    again = simpy_line.run(CELL, HOUR_S, 1)
    assert again.cycles_s == hour.cycles_s and again.busy_s == hour.busy_s
    other = simpy_line.run(CELL, HOUR_S, 2)
    assert other.cycles_s != hour.cycles_s


def test_the_model_reads_the_cell_file(tmp_path: Path, hour: simpy_line.Result) -> None:
    """Frames half as often halve the output: the feeder's interval comes from the file."""
    cell = tmp_path / "assembly.toml"
    text = CELL.read_text(encoding="utf-8")
    assert "interval = 10.0\njitter = 3.0" in text
    cell.write_text(text.replace("interval = 10.0\njitter = 3.0", "interval = 20.0\njitter = 3.0"))
    shutil.copy(CELL.with_suffix(".calib.json"), cell.with_suffix(".calib.json"))
    slow = simpy_line.run(cell, HOUR_S, 1)
    assert 0.4 < slow.shipped / hour.shipped < 0.6, (slow.shipped, hour.shipped)


def test_a_broken_calibration_is_one_clear_error(tmp_path: Path) -> None:
    cell = tmp_path / "assembly.toml"
    shutil.copy(CELL, cell)
    cell.with_suffix(".calib.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"assembly\.calib\.json: operations: not a calib"):
        simpy_line.run(cell, 60.0, 1)


def test_the_accuracy_scenario_has_every_in_process_kind_several_times() -> None:
    faults = scenario(HOUR_S)
    kinds = Counter(f.kind.value for f in faults)
    assert set(kinds) == {
        "gripper_drop",
        "sensor_blackout",
        "robot_fault",
        "conveyor_jam",
        "slow_robot",
        "message_loss",
    }
    assert min(kinds.values()) >= 5, kinds
    assert all(f.at_s + f.duration_s < HOUR_S - 60.0 for f in faults)
    assert {f.target for f in faults if f.kind.value == "robot_fault"} == {"R1", "R2", "R3", "R4"}
    short = scenario(300.0)
    assert len(short) == 6 and max(f.at_s + f.duration_s for f in short) < 300.0
