"""Cell files: the shipped ones load; broken ones fail with file, key and reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.enums import Skill
from bus.errors import ConfigError
from cells.schema import load_cell, parse_cell

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLY = ROOT / "cells" / "assembly.toml"


def assembly() -> dict[str, Any]:
    return tomllib.loads(ASSEMBLY.read_text())


def test_assembly_cell_loads() -> None:
    cell = load_cell(ASSEMBLY)
    assert [r.name for r in cell.robots] == ["R1", "R2", "R3", "R4"]
    assert {f.name for f in cell.fixtures} == {"F1", "F2"}
    assert cell.steps_per_tick == 10
    assert cell.recipe.product == "phone"
    assert any(Skill.FASTEN in r.capabilities for r in cell.robots)


def broken(tmp_path: Path, mutate: Any, *, source: Path = ASSEMBLY) -> ConfigError:
    """Load ``source`` changed by ``mutate``; the one-line error it must fail with."""
    data = tomllib.loads(source.read_text())
    mutate(data)
    path = tmp_path / "broken.toml"
    path.write_text(dump(data))
    with pytest.raises(ConfigError) as info:
        load_cell(path)
    err = info.value
    assert str(err).startswith(str(path)), "the error names the file"
    assert "\n" not in str(err), "one line"
    return err


def dump(data: dict[str, Any]) -> str:
    """A tiny TOML writer for the shapes cell files use (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    def table(prefix: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and not _is_aot(v)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {val(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)
            elif _is_aot(v):
                for item in v:
                    name = f"{prefix}.{k}" if prefix else k
                    lines.append(f"[[{name}]]")
                    sub = {kk: vv for kk, vv in item.items() if not _is_aot(vv)}
                    lines.extend(f"{kk} = {val(vv)}" for kk, vv in sub.items())
                    for kk, vv in item.items():
                        if _is_aot(vv):
                            for it in vv:
                                lines.append(f"[[{name}.{kk}]]")
                                lines.extend(f"{a} = {val(b)}" for a, b in it.items())

    table("", data)
    return "\n".join(lines) + "\n"


def _is_aot(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def test_dump_roundtrips_the_assembly_cell() -> None:
    assert tomllib.loads(dump(assembly())) == assembly()


def test_unknown_key(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["robots"][1].update(colour="red"))
    assert err.key == "robots[1].colour"
    assert "unknown key" in err.reason


def test_unknown_top_level_table(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d.update(lasers={"x": 1}))
    assert err.key == "lasers"


def test_missing_robots(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d.pop("robots"))
    assert err.key == "robots"
    assert "missing" in err.reason


def test_robot_missing_its_model(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["robots"][0].pop("model"))
    assert err.key == "robots[0].model"


def test_wrong_type(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["conveyors"]["infeed"].update(speed="fast"))
    assert err.key == "conveyors.infeed.speed"
    assert "expected a number" in err.reason


def test_unknown_model(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["robots"][0].update(model="ur5"))
    assert "'ur5' is not one of iiwa, panda" in err.reason


def test_unreachable_station(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["fixtures"]["F2"].update(pose=[3.0, 3.0, 0.15]))
    assert "unreachable station" in err.reason
    assert err.key.startswith("recipe.ops[")


def test_unknown_station(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["recipe"]["ops"][1].update({"from": "nowhere"}))
    assert err.key == "recipe.ops[1].from"
    assert "unknown station 'nowhere'" in err.reason


def test_missing_capability(tmp_path: Path) -> None:
    def strip(d: dict[str, Any]) -> None:
        for r in d["robots"]:
            r["capabilities"] = [c for c in r["capabilities"] if c != "inspect"]

    err = broken(tmp_path, strip)
    assert "no robot has capability 'inspect'" in err.reason


def test_the_assembly_cell_checks_its_placements_and_its_screws() -> None:
    recipe = load_cell(ASSEMBLY).recipe
    tolerances = {o.name: o.tolerance for o in recipe.ops if o.tolerance}
    assert tolerances == dict.fromkeys(("place_battery", "place_board", "place_screen"), 0.0025)
    fasten = recipe.op("fasten")
    assert (fasten.torque, fasten.min_torque, fasten.screws) == (0.3, 0.25, 4)
    assert (recipe.false_accept, recipe.false_reject, recipe.rework) == (0.0, 0.0, False)


@pytest.mark.parametrize(
    ("where", "change", "key", "why"),
    [
        (4, {"tolerance": 0.002}, "recipe.ops[4].tolerance", "only a part placed"),
        (0, {"tolerance": 0.002}, "recipe.ops[0].tolerance", "only a part placed"),
        (1, {"tolerance": 0.2}, "recipe.ops[1].tolerance", "at most 0.05"),
        (1, {"tolerance": -1.0}, "recipe.ops[1].tolerance", "positive"),
        (1, {"torque": 0.3}, "recipe.ops[1].torque", "only a fasten step"),
        (4, {"torque": 0.3, "min_torque": 0.3}, "recipe.ops[4].min_torque", "below the torque"),
        (4, {"torque": 0.3, "screws": 0}, "recipe.ops[4].screws", "positive integer"),
        (4, {"min_torque": 0.2, "torque": None}, "recipe.ops[4].min_torque", "needs the step"),
        (None, {"false_accept": 0.6}, "recipe.false_accept", "from 0 to 0.5"),
        (None, {"false_reject": -0.1}, "recipe.false_reject", "must not be negative"),
        (None, {"rework": "yes"}, "recipe.rework", "true or false"),
    ],
)
def test_a_bad_quality_check_names_its_key(
    tmp_path: Path, where: int | None, change: dict[str, Any], key: str, why: str
) -> None:
    def mutate(d: dict[str, Any]) -> None:
        table = d["recipe"] if where is None else d["recipe"]["ops"][where]
        for k, v in change.items():
            if v is None:
                table.pop(k, None)
            else:
                table[k] = v

    err = broken(tmp_path, mutate)
    assert (err.key, why in err.reason) == (key, True), err.reason


def test_cycle(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["recipe"]["ops"][0].update(after=["unload"]))
    assert "cycle" in err.reason


def test_duplicate_names(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["robots"][1].update(name="R1"))
    assert "already used" in err.reason


def test_control_rate_must_divide_physics(tmp_path: Path) -> None:
    err = broken(tmp_path, lambda d: d["cell"].update(control_hz=25))
    assert err.key == "cell.control_hz"


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[cell\nname = ")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": not valid TOML"):
        load_cell(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_cell(tmp_path / "nope.toml")


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.text(max_size=6)
)
values = st.recursive(scalars, lambda k: st.lists(k, max_size=4), max_leaves=6).filter(
    lambda v: v is not None
)


@settings(max_examples=200, deadline=None)
@given(
    section=st.sampled_from(
        ["cell", "robots", "conveyors", "feeders", "fixtures", "parts", "recipe"]
    ),
    key=st.sampled_from(
        ["name", "model", "base", "speed", "pose", "size", "height", "capabilities", "x"]
    ),
    value=values,
)
def test_any_mutation_loads_or_fails_with_a_config_error(
    section: str, key: str, value: Any
) -> None:
    data = assembly()
    target = data[section]
    if isinstance(target, list):
        target = target[0]
    elif section in ("conveyors", "feeders", "fixtures", "parts"):
        target = next(iter(target.values()))
    target[key] = value
    try:
        parse_cell(data, source="mutated.toml")
    except ConfigError as err:
        assert str(err).startswith("mutated.toml")
