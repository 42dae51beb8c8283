"""``--set`` variants of a cell file and seed ranges: what they make, and one line when wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bus.errors import ConfigError
from cells.variants import make_variants
from clients.sweep import parse_seeds

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "cells" / "assembly.toml"


def test_no_set_is_the_file_itself() -> None:
    (v,) = make_variants(CELL, [])
    assert v.label == "base" and v.text == CELL.read_text(encoding="utf-8")


def test_a_key_with_two_values_makes_two_variants_and_one_value_applies_to_both() -> None:
    sets = ["cell.policy=fcfs", "conveyors.infeed.speed=0.2", "cell.policy=contract_net"]
    vs = make_variants(CELL, sets)
    assert [v.label for v in vs] == [
        "cell.policy=fcfs, conveyors.infeed.speed=0.2",
        "cell.policy=contract_net, conveyors.infeed.speed=0.2",
    ]
    assert [v.cell.policy for v in vs] == ["fcfs", "contract_net"]
    assert {c.speed for v in vs for c in v.cell.conveyors if c.name == "infeed"} == {0.2}
    assert tomllib.loads(vs[0].text)["cell"]["policy"] == "fcfs"  # the run reads this file


def test_two_keys_with_two_values_make_every_combination() -> None:
    sets = ["robots.R1.speed=1", "robots.R1.speed=2", "robots[1].speed=1", "robots[1].speed=2"]
    vs = make_variants(CELL, sets)
    assert len(vs) == 4
    assert sorted((v.cell.robots[0].speed, v.cell.robots[1].speed) for v in vs) == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("conveyors.C1.speed=0.1", "unknown key conveyors.C1 (tables here: infeed, outfeed)"),
        ("robots.R9.speed=1", "unknown key robots.R9 (entries: R1, R2, R3, R4)"),
        ("cell.polcy=fcfs", "cell.polcy: unknown key"),
        ("conveyors.infeed.speed=fast", "expected a number (the cell file has 0.1)"),
        ("conveyors.infeed.speed=-1", "must be positive"),
        ("cell.control_hz=7", "must divide physics_hz"),
        ("conveyors.infeed=3", "expected a table"),
        ("=3", "expected KEY=VALUE"),
        ("a..b=1", "is not a dotted key"),
    ],
)
def test_a_bad_set_is_one_clear_error(given: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_variants(CELL, [given])
    assert says in str(err.value) and "\n" not in str(err.value)


def test_seed_ranges() -> None:
    assert parse_seeds("1-3") == (1, 2, 3)
    assert parse_seeds("7") == (7,)
    assert parse_seeds("1,5,3-4,5") == (1, 5, 3, 4)


@pytest.mark.parametrize("text", ["1-", "5-2", "a", "", "-3", "1-2-3", "1e3"])
def test_a_seed_range_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_seeds(text)
    assert str(err.value).startswith("--seeds: ")
