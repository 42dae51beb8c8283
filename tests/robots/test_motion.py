"""Joint-space trajectories: timing from speed, smooth ends, pause and resume."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.errors import PlanError
from bus.path import smoothstep5
from bus.simtime import NS
from robots.motion import MIN_SEGMENT_S, Trajectory, move_ns

Q0 = (0.0, 0.0, 0.0)
Q1 = (1.5, -0.3, 0.2)


def test_duration_is_largest_displacement_over_speed() -> None:
    assert move_ns(Q0, Q1, 1.5, MIN_SEGMENT_S) == NS
    assert move_ns(Q0, Q1, 3.0, MIN_SEGMENT_S) == NS // 2


def test_tiny_moves_take_the_minimum() -> None:
    assert move_ns(Q0, (0.001, 0.0, 0.0), 1.5, 0.25) == NS // 4


def test_bad_speed_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="speed"):
        move_ns(Q0, Q1, 0.0, 0.1)


@given(st.floats(0.0, 1.0))
def test_time_law_is_monotone_between_zero_and_one(s: float) -> None:
    assert 0.0 <= smoothstep5(s) <= 1.0
    assert smoothstep5(s) <= smoothstep5(min(1.0, s + 0.01)) + 1e-12


def test_trajectory_visits_each_waypoint_at_its_time() -> None:
    traj = Trajectory.through(100, Q0, [Q1, Q0], speed=1.5)
    assert traj.at(0) == Q0
    assert traj.at(100) == Q0
    assert traj.at(100 + NS) == pytest.approx(Q1)
    assert traj.end_ns == 100 + 2 * NS
    assert traj.at(traj.end_ns + 5) == Q0
    mid = traj.at(100 + NS // 2)
    assert mid == pytest.approx(tuple(v / 2 for v in Q1))


def test_wait_holds_still() -> None:
    traj = Trajectory(0, Q1)
    traj.wait(0.5)
    assert traj.end_ns == NS // 2
    assert traj.at(NS // 4) == Q1


def test_pause_freezes_and_resume_shifts_the_rest() -> None:
    traj = Trajectory.through(0, Q0, [Q1], speed=1.5)
    quarter = traj.at(NS // 4)
    traj.pause(NS // 4)
    assert traj.paused
    assert traj.at(NS) == quarter
    assert not traj.done(5 * NS)
    traj.resume(3 * NS)
    assert traj.at(3 * NS) == quarter
    assert traj.end_ns == NS + 3 * NS - NS // 4
    assert traj.at(traj.end_ns) == pytest.approx(Q1)
    assert traj.done(traj.end_ns)


def test_waypoint_with_wrong_joint_count_is_refused() -> None:
    with pytest.raises(PlanError, match="joints"):
        Trajectory.through(0, Q0, [(1.0, 2.0)], speed=1.0)
