"""A robot's motion, sent once, followed by the world between the robot's ticks.

Against the real PyBullet world: the arm moved by ``follow`` tick after tick ends where
the same trajectory streamed one joint target per tick (the fixed-rate barrier) ends, bit
for bit; an act with no motion (a Hold) stops it where it is; a path a peer made up
(out of order, the wrong joint count, too long) is refused, counted, and followed not at
all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bus.messages import PathSegment, RobotAct
from bus.path import MAX_SEGMENTS
from robots.motion import Trajectory
from sim.world import World
from tests.sim.simkit import Driver, make_cell


@pytest.fixture
def pair() -> Iterator[tuple[World, World, Driver]]:
    """Two identical worlds (one streamed, one following) and a driver for R2's IK."""
    a, b = World(make_cell(), seed=0), World(make_cell(), seed=0)
    a.setup()
    b.setup()
    d = Driver(a, "R2")
    yield a, b, d
    d.close()
    a.shutdown()
    b.shutdown()


def _motion(d: Driver, start_ns: int) -> Trajectory:
    q0 = d.q
    goal = d.ik(0.45, 0.25, 0.35)
    return Trajectory.through(start_ns, q0, (goal, q0), speed=1.2)


def _path_act(d: Driver, traj: Trajectory, q: tuple[float, ...], path_id: int) -> RobotAct:
    segs = tuple(PathSegment(s.t0_ns, s.t1_ns, s.q0, s.q1) for s in traj.segments)
    return d.act(q, path_id=path_id, path=segs, path_shift_ns=traj.shift_ns)


def test_a_followed_path_ends_where_the_streamed_one_does(
    pair: tuple[World, World, Driver],
) -> None:
    streamed, followed, d = pair
    tick = streamed.cell.tick_ns
    traj = _motion(d, streamed.t_ns)
    first = traj.at(streamed.t_ns + tick)
    assert followed.apply(_path_act(d, traj, first, 1))
    assert streamed.apply(d.act(first))
    streamed.advance()
    followed.advance()
    while not traj.done(streamed.t_ns):
        assert streamed.apply(d.act(traj.at(streamed.t_ns + tick)))  # one target per tick
        followed.follow("R2")  # the same, read off the path by the world
        streamed.advance()
        followed.advance()
    assert followed.robot_sense("R2").q == streamed.robot_sense("R2").q
    assert followed.robot_sense("R2").q != first  # it did move


def test_an_act_without_a_motion_stops_the_arm(pair: tuple[World, World, Driver]) -> None:
    world, _, d = pair
    tick = world.cell.tick_ns
    traj = _motion(d, world.t_ns)
    assert world.apply(_path_act(d, traj, traj.at(world.t_ns + tick), 1))
    for _ in range(10):
        world.advance()
        world.follow("R2")
    here = world.robot_sense("R2").q
    assert world.apply(d.act(here))  # a Hold: path_id 0, the arm stands where it is
    for _ in range(10):
        world.advance()
        world.follow("R2")
    assert world.robot_sense("R2").q == pytest.approx(here, abs=1e-9)


@pytest.mark.parametrize(
    "bad",
    [
        "backwards",
        "joints",
        "too long",
    ],
)
def test_a_path_that_cannot_be_followed_is_refused(
    pair: tuple[World, World, Driver], bad: str
) -> None:
    world, _, d = pair
    q = d.q
    n = len(q)
    seg = PathSegment(world.t_ns, world.t_ns + 10**9, q, q)
    segs = {
        "backwards": (PathSegment(world.t_ns + 10**9, world.t_ns, q, q),),
        "joints": (PathSegment(world.t_ns, world.t_ns + 10**9, q[: n - 1], q),),
        "too long": (seg,) * (MAX_SEGMENTS + 1),
    }[bad]
    assert not world.apply(d.act(q, path_id=1, path=segs))
    assert world.counters["refused_path"] == 1
    world.follow("R2")  # nothing to follow: no crash, no move
    world.advance()
    assert world.robot_sense("R2").q == pytest.approx(q, abs=1e-6)
