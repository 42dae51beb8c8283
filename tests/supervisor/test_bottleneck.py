"""The bottleneck analysis on the assembly cell with known operation times."""

from __future__ import annotations

import pytest

from bus.cellspec import CellSpec
from supervisor.bottleneck import analyse, fleet_split

TIMES = {
    "load_frame": 2.0,
    "place_battery": 2.0,
    "place_board": 2.0,
    "place_screen": 2.0,
    "fasten": 4.0,
    "inspect": 1.0,
    "unload": 2.0,
}
ROBOTS = ("R1", "R2", "R3", "R4")


def learned(slower: float = 1.0) -> dict[str, dict[str, float]]:
    """Every robot with the times above, but R1 ``slower`` times as slow (the best counts)."""
    return {op: {r: t * (slower if r == "R1" else 1.0) for r in ROBOTS} for op, t in TIMES.items()}


def test_every_resource_is_bounded_and_the_infeed_binds(cell: CellSpec) -> None:
    got = analyse(cell, learned(slower=3.0), ROBOTS, throughput_per_hour=180.0)
    per_hour = got["resources_per_hour"]
    assert per_hour["robots"] == pytest.approx(4 * 3600 / 15)  # 15 s of work a unit
    assert per_hour["skill:fasten"] == pytest.approx(3 * 3600 / 4)  # R2, R3, R4 fasten
    assert per_hour["skill:pick_place"] == pytest.approx(4 * 3600 / 10)
    # the longest chain: load, battery (or board), screen, fasten, inspect, unload = 13 s
    assert per_hour["fixtures"] == pytest.approx(2 * 3600 / 13, abs=1e-3)
    assert per_hour["feeder:frames"] == pytest.approx(360.0)  # a frame every 10 s
    assert per_hour["feeder:battery_tray"] == pytest.approx(3600.0)
    assert (got["binding"], got["bound_per_hour"]) == ("feeder:frames", 360.0)
    assert got["throughput_over_bound"] == 0.5


def test_robots_that_failed_lower_the_bound_and_a_skill_nobody_has_left_stops_it(
    cell: CellSpec,
) -> None:
    slow = {op: {r: 3 * t for r, t in by.items()} for op, by in learned().items()}
    two = analyse(cell, slow, ("R1", "R2"), throughput_per_hour=100.0)
    assert two["binding"] == "robots"  # two robots for 45 s of work a unit
    assert two["bound_per_hour"] == pytest.approx(2 * 3600 / 45)
    none = analyse(cell, learned(), ("R1",), throughput_per_hour=0.0)
    assert none["binding"] == "skill:fasten" and none["bound_per_hour"] == 0.0
    assert none["throughput_over_bound"] is None


def test_without_a_time_for_every_operation_the_bound_is_not_known(cell: CellSpec) -> None:
    times = learned()
    del times["inspect"]
    got = analyse(cell, times, ROBOTS, throughput_per_hour=50.0)
    assert got["bound_per_hour"] is None and got["binding"] == ""
    assert got["missing_times"] == ["inspect"]
    assert "feeder:frames" in got["resources_per_hour"]


def test_the_fleet_bound_is_the_best_split_from_below() -> None:
    """Two operations of 2 s on A and 4 s on B: the best split gives A 4/3 of them and B 2/3,
    8/3 s each; the dual's ascent gives at most that and close to it, whatever was computed
    before (the answer is remembered by the times to three digits)."""
    ops = [{"A": 2.0, "B": 4.0}, {"A": 2.0, "B": 4.0}]
    first, weights = fleet_split(ops)
    assert 2.6 <= first <= 8 / 3 + 1e-9
    assert sum(weights.values()) == pytest.approx(1.0) and set(weights) == {"A", "B"}
    fleet_split([{"A": 3.0, "B": 3.0}, {"A": 5.0}])
    again, _ = fleet_split([{"A": 2.00001, "B": 4.0}, {"A": 2.0, "B": 3.99999}])
    assert again == first
    assert fleet_split([{"A": 2.0}, {}]) == (0.0, {})  # an operation nobody has a time for
