"""``lightsout calibrate``: a small calibration made for real, its contents, stale and missing ones.

One run of 40 s of sim time with gripper drops (0.1 per sim second) on a
copy of the assembly cell: enough for every step of a first unit to be timed
once or more and for a frame or two to fall.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigError
from cells.calibrate import FORMAT, VERSION, calibration_path, load_calibration, with_fidelity
from cells.schema import load_cell
from clients.cli import main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the assembly cell file, calibrated beside itself by the command."""
    cell = tmp_path_factory.mktemp("cal") / "assembly.toml"
    shutil.copy(ROOT / "cells" / "assembly.toml", cell)
    argv = ["calibrate", str(cell), "--seeds", "1", "--duration", "40", "--drop-rate", "0.1"]
    assert main([*argv, "--workers", "1", "-q"]) == 0
    return cell


@pytest.fixture(scope="module")
def calib(calibrated: Path) -> dict[str, Any]:
    return load_calibration(calibrated)


def test_it_lies_beside_the_cell_file_and_names_its_hash(
    calibrated: Path, calib: dict[str, Any]
) -> None:
    assert calibration_path(calibrated) == calibrated.with_name("assembly.calib.json")
    assert (calib["format"], calib["version"], calib["cell"]) == (FORMAT, VERSION, "assembly")
    assert calib["cell_sha256"] == hashlib.sha256(calibrated.read_bytes()).hexdigest()
    assert calib["made"] == {
        "duration_s": 40.0,
        "seeds": [1],
        "drop_rate": 0.1,
        "fidelity": "physics",
    }


def test_every_operation_of_a_unit_is_timed_by_robot_and_stations(
    calibrated: Path, calib: dict[str, Any]
) -> None:
    cell = load_cell(calibrated)
    steps = {o.name: o for o in cell.recipe.ops}
    stations = {f.name for f in cell.fixtures} | {c.name for c in cell.conveyors}
    stations |= {f.name for f in cell.feeders}
    seen = set()
    for entry in calib["operations"]:
        step = steps[entry["op"]]
        assert entry["skill"] == step.skill.value
        assert entry["robot"] in {r.name for r in cell.robots}
        assert entry["src"] in stations and entry["dst"] in stations | {""}
        d = entry["duration_s"]
        assert 0.3 < d["min"] <= d["p50"] <= d["max"] < 20.0  # an arm's move, in sim seconds
        assert d["count"] == len(d["samples"]) and d["samples"] == sorted(d["samples"])
        assert d["min"] <= d["mean"] <= d["max"]
        if step.skill.value == "pick_place":
            assert 0 < entry["grasp_s"]["mean"] < entry["release_s"]["mean"] < d["mean"]
        seen.add(entry["op"])
    # the first unit is started, filled, fastened, inspected and unloaded within 40 s
    assert seen == set(steps)
    load = [e for e in calib["operations"] if e["op"] == "load_frame"]
    assert all(e["src"] == "infeed" and e["dst"] in ("F1", "F2") for e in load)


def test_drops_are_counted_with_where_they_landed_and_what_became_of_them(
    calib: dict[str, Any],
) -> None:
    drops = calib["drops"]
    assert drops["count"] >= 1
    for field in ("landed", "fate"):
        assert sum(drops[field].values()) == pytest.approx(1.0)
    assert sum(d["count"] for d in drops["by_op"].values()) == drops["count"]
    assert set(drops["landed"]) <= {"source", "destination", "floor", "conveyor", "feeder"} | {
        "fixture",
        "unit",
    }


def test_a_stale_calibration_is_one_clear_error(calibrated: Path, tmp_path: Path) -> None:
    cell = tmp_path / "assembly.toml"
    shutil.copy(calibrated, cell)
    shutil.copy(calibration_path(calibrated), calibration_path(cell))
    load_calibration(cell)
    cell.write_text(cell.read_text(encoding="utf-8") + "\n# a change\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_calibration(cell)
    assert "stale" in str(err.value) and "lightsout calibrate" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_or_foreign_calibration_is_one_clear_error(tmp_path: Path) -> None:
    cell = tmp_path / "assembly.toml"
    shutil.copy(ROOT / "cells" / "assembly.toml", cell)
    with pytest.raises(ConfigError, match="no calibration for"):
        load_calibration(cell)
    calibration_path(cell).write_text(json.dumps({"format": FORMAT, "version": 99}))
    with pytest.raises(ConfigError, match="version 99"):
        load_calibration(cell)
    calibration_path(cell).write_text("not json")
    with pytest.raises(ConfigError, match="not a calibration"):
        load_calibration(cell)


def test_starts_are_kept_by_station_and_by_the_step_that_left_the_arm_there(
    calibrated: Path, calib: dict[str, Any]
) -> None:
    """Each start of ``by_start`` (and ``bid_by_start``) is a station or ``step@station``;
    every finer start's samples are among its station's, and the events planner uses them."""
    cell = load_cell(calibrated)
    steps = {o.name for o in cell.recipe.ops}
    finer = 0
    for entry in calib["operations"]:
        for field in ("by_start", "bid_by_start"):
            starts = entry.get(field, {})
            for key, dist in starts.items():
                step, at, station = key.rpartition("@")
                if not at:
                    continue
                finer += 1
                assert step in steps, key
                coarse = starts[station]["samples"]
                assert all(x in coarse for x in dist["samples"]), (entry["op"], key)
    assert finer > 0
    # the events planner: a start measured finely is drawn from its own samples
    timed = with_fidelity(cell, calibrated, "events")
    assert timed.calibration is not None
    t, key, xs = next(
        (t, k, v) for t in timed.calibration.timings for k, v in t.by_start if "@" in k
    )
    station = key.rpartition("@")[2]
    assert t.from_start(station, least=1, step=key) == xs
    unknown = t.from_start(station, least=1, step="no_such_step@" + station)
    assert unknown == t.from_start(station, least=1) == dict(t.by_start)[station]
