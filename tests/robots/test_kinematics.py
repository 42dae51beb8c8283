"""The agent's own IK/FK: reachable poses are reached, unreachable ones raise PlanError."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import pytest

from bus.cellspec import MODEL_REACH, Pose, RobotModel, RobotSpec
from bus.errors import PlanError
from robots.kinematics import Kinematics, wrap
from tests.kit.cells import PP, assembly_cell


@pytest.fixture(params=list(RobotModel), ids=str)
def kin(request: pytest.FixtureRequest) -> Iterator[Kinematics]:
    model: RobotModel = request.param
    with Kinematics(RobotSpec("R", model, Pose(0.3, -0.2, 0.0, 0.7), (PP,), 1.5)) as k:
        yield k


def _targets(
    model: RobotModel, base: Pose, n: int, seed: int
) -> list[tuple[tuple[float, float, float], float]]:
    """``n`` seeded poses inside the model's documented reach, heights 0 to 0.4 m."""
    rng = random.Random(seed)
    lo, hi = MODEL_REACH[model]
    out = []
    for _ in range(n):
        r = rng.uniform(lo + 0.03, hi - 0.03)
        a = rng.uniform(-math.pi, math.pi)
        z = rng.uniform(0.0, 0.35)
        yaw = rng.uniform(-math.pi, math.pi)
        out.append(((base.x + r * math.cos(a), base.y + r * math.sin(a), z), yaw))
    return out


def _reach(kin: Kinematics, target: tuple[float, float, float], yaw: float) -> tuple[float, ...]:
    """IK with the yaw's half-turn twin as the fallback (a box looks the same turned by pi)."""
    try:
        return kin.ik(target, yaw, kin.home)
    except PlanError:
        return kin.ik(target, wrap(yaw + math.pi), kin.home)


def test_reachable_poses_are_reached_within_2mm(kin: Kinematics) -> None:
    for target, yaw in _targets(kin.model, kin.spec.base, 40, seed=7):
        q = _reach(kin, target, yaw)
        pose = kin.fk_pose(q)
        assert math.dist(pose.position, target) < 0.002, (target, yaw)
        assert pose.tilt < math.radians(5)
        assert all(
            lo - 1e-9 <= v <= hi + 1e-9 for v, lo, hi in zip(q, kin.lower, kin.upper, strict=True)
        )


def test_heading_follows_yaw(kin: Kinematics) -> None:
    base = kin.spec.base
    target = (base.x + 0.55 * math.cos(base.yaw), base.y + 0.55 * math.sin(base.yaw), 0.2)
    for yaw in (-2.0, -0.5, 0.0, 1.0, 2.5):
        pose = kin.fk_pose(kin.ik(target, yaw, kin.home))
        assert abs(wrap(pose.yaw - yaw)) < math.radians(5)


def test_every_station_of_the_reference_cell_is_reached_by_its_robots() -> None:
    cell = assembly_cell()
    for spec in cell.robots:
        with Kinematics(spec) as kin:
            for name, station in sorted(cell.stations().items()):
                if not spec.reaches(station.pose):
                    continue
                for dz in (0.005, 0.13):
                    target = (station.pose.x, station.pose.y, station.pose.z + dz)
                    q = kin.ik(target, station.pose.yaw, kin.home)
                    assert math.dist(kin.fk(q), target) < 0.002, (spec.name, name, dz)


@pytest.mark.parametrize(
    "offset",
    [(1.5, 0.0, 0.2), (0.0, 0.0, 1.6), (0.2, 0.1, -0.6), (0.05, 0.0, 0.1)],
    ids=["too-far", "too-high", "under-the-floor", "inside-the-base"],
)
def test_unreachable_pose_raises_plan_error(
    kin: Kinematics, offset: tuple[float, float, float]
) -> None:
    base = kin.spec.base
    target = (base.x + offset[0], base.y + offset[1], base.z + offset[2])
    with pytest.raises(PlanError, match="cannot reach"):
        kin.ik(target, 0.0, kin.home)


def test_nearby_waypoint_stays_on_the_same_branch(kin: Kinematics) -> None:
    base = kin.spec.base
    above = (base.x + 0.5 * math.cos(base.yaw + 0.5), base.y + 0.5 * math.sin(base.yaw + 0.5), 0.3)
    q_above = kin.ik(above, 0.4, kin.home)
    q_down = kin.ik((above[0], above[1], above[2] - 0.12), 0.4, q_above)
    assert max(abs(a - b) for a, b in zip(q_above, q_down, strict=True)) < 0.8


def test_fk_needs_setup() -> None:
    kin = Kinematics(assembly_cell().robot("R1"))
    with pytest.raises(RuntimeError, match="setup"):
        kin.fk(kin.home)


def test_wrong_joint_count_is_a_plan_error(kin: Kinematics) -> None:
    with pytest.raises(PlanError, match="expected 7 joints"):
        kin.fk((0.0, 0.0))
