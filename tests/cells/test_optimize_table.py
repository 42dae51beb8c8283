"""The cell file's ``[optimize]`` table and the hidden slow robot: bad values fail at load in
one line naming the file and the key; good ones reach the cell's spec."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import CellSpec
from bus.errors import ConfigError
from cells.faults import load_scenario
from cells.schema import parse_cell
from tests.cells.test_schema import ASSEMBLY, broken


def _with(table: dict[str, Any]) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["optimize"] = table

    return mutate


def test_the_table_reaches_the_spec_and_defaults_without_it() -> None:
    data = tomllib.loads(ASSEMBLY.read_text())
    plain = parse_cell(dict(data), source="a.toml").optimize
    assert plain.enabled and plain.speed == () and plain.alpha == 0.3
    data["optimize"] = {"enabled": False, "alpha": 0.5, "speed": {"R2": [0.6, 1.2]}}
    got = parse_cell(data, source="a.toml").optimize
    assert not got.enabled and got.alpha == 0.5
    assert got.bounds("R2") == (0.6, 1.2) and got.bounds("R1") is None


@pytest.mark.parametrize(
    ("table", "key", "why"),
    [
        ({"alpha": float("nan")}, "optimize.alpha", "finite"),
        ({"alpha": 1e300}, "optimize.alpha", "at most"),
        ({"alpha": 1.5}, "optimize.alpha", "(0, 1]"),
        ({"alpha": float("inf")}, "optimize.alpha", "finite"),
        ({"min_samples": 0}, "optimize.min_samples", "positive integer"),
        ({"min_samples": 5000}, "optimize.min_samples", "at most"),
        ({"drops_high": 2.0}, "optimize.drops_high", "share"),
        ({"speed_step": 0.9}, "optimize.speed_step", "at most"),
        ({"enabled": "yes"}, "optimize.enabled", "true or false"),
        ({"speed": {"R9": [0.5, 1.0]}}, "optimize.speed.R9", "not a robot"),
        ({"speed": {"R1": [0.05, 1.0]}}, "optimize.speed.R1", "least"),
        ({"speed": {"R1": [0.5, 3.0]}}, "optimize.speed.R1", "most"),
        ({"speed": {"R1": [1.2, 1.5]}}, "optimize.speed.R1", "least <= 1"),
        ({"speed": {"R1": [0.5]}}, "optimize.speed.R1", "list of 2"),
        ({"speed": {"R1": [0.5, float("nan")]}}, "optimize.speed.R1[1]", "finite"),
        ({"sped": 1.0}, "optimize.sped", "unknown key"),
    ],
)
def test_a_bad_value_fails_at_load_in_one_line(
    tmp_path: Path, table: dict[str, Any], key: str, why: str
) -> None:
    err = broken(tmp_path, _with(table))
    assert f": {key}: " in str(err) and why in str(err), str(err)


def test_a_robot_name_with_a_slash_is_no_robot_of_the_cell() -> None:
    data = tomllib.loads(ASSEMBLY.read_text())
    data["optimize"] = {"speed": {"R1/../x": [0.5, 1.0]}}
    with pytest.raises(ConfigError) as info:
        parse_cell(data, source="a.toml")
    assert str(info.value).startswith("a.toml: optimize.speed.R1/../x: not a robot of the cell")
    assert "\n" not in str(info.value)


def test_only_a_slow_robot_may_be_hidden(tmp_path: Path, cell: CellSpec) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[faults]]\nat = 5.0\ntarget = "R1"\nkind = "slow_robot"\nduration = 10.0\n'
        "factor = 3.0\nhidden = true\n"
    )
    (fault,) = load_scenario(path, cell)
    assert fault.hidden and fault.factor == 3.0
    path.write_text('[[faults]]\nat = 5.0\ntarget = "R1"\nkind = "gripper_drop"\nhidden = true\n')
    with pytest.raises(ConfigError, match="hidden: only a slow_robot may be hidden"):
        load_scenario(path, cell)
    path.write_text(
        '[[faults]]\nat = 5.0\ntarget = "R1"\nkind = "slow_robot"\nduration = 1.0\nhidden = 1\n'
    )
    with pytest.raises(ConfigError, match="true or false"):
        load_scenario(path, cell)
