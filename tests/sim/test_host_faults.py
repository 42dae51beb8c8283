"""The cell host's fault injection: what it checks, and what it tells the supervisor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from sim.host import CellHost
from sim.world import World
from tests.sim.simkit import make_cell


@pytest.fixture
def host() -> Iterator[CellHost]:
    world = World(make_cell(), seed=0)
    world.setup()
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield CellHost(ctx, Endpoints.from_base("inproc://host-faults"), world)
    finally:
        world.shutdown()
        ctx.term()


def test_a_permanent_robot_fault_goes_to_the_supervisor_marked_permanent(host: CellHost) -> None:
    assert host.inject("robot_fault", "R2", 0.0, permanent=True) == ""
    (note,) = host.take_requests()
    assert (note.command, note.target, note.action) == (ControlCommand.FAULT, "R2", "robot_fault")
    assert (note.value, note.permanent) == (0.0, True)
    assert host.counters["fault:robot_fault"] == 1


def test_a_timed_robot_fault_is_not_permanent(host: CellHost) -> None:
    assert host.inject("robot_fault", "R2", 5.0) == ""
    (note,) = host.take_requests()
    assert (note.value, note.permanent) == (5.0, False)


@pytest.mark.parametrize(
    ("kind", "duration", "permanent", "problem"),
    [
        ("robot_fault", 5.0, True, "a permanent fault has no duration: give one or the other"),
        ("robot_fault", 0.0, False, "robot_fault needs a duration > 0 (or permanent)"),
        ("gripper_drop", 0.0, True, "only a robot_fault can be permanent, not gripper_drop"),
        ("conveyor_jam", 5.0, True, "only a robot_fault can be permanent, not conveyor_jam"),
    ],
)
def test_what_cannot_be_done_is_refused_and_nothing_is_sent(
    host: CellHost, kind: str, duration: float, permanent: bool, problem: str
) -> None:
    target = "outfeed" if kind == "conveyor_jam" else "R2"
    assert host.inject(kind, target, duration, permanent=permanent) == problem
    assert host.take_requests() == ()
