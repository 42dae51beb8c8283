"""The sim server over inproc://, with fake participants on bus.ClockClient threads."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from bus.cellspec import MODEL_HOME
from bus.clock import ClockClient
from bus.endpoints import Endpoints
from bus.enums import Grip
from bus.errors import LightsoutError
from bus.messages import Message, RobotAct, RobotSense, Shutdown, Tick, WorldAct, WorldSense
from sim import SimServer
from tests.sim.simkit import make_cell

TICK_NS = 1_000_000_000 // 24

Policy = Callable[[Tick], Message | None]


class Fake(threading.Thread):
    """A participant that answers every Tick with ``policy(tick)`` until Shutdown."""

    def __init__(self, ctx: zmq.Context[Any], ep: Endpoints, name: str, policy: Policy) -> None:
        super().__init__(name=f"fake-{name}", daemon=True)
        self.client = ClockClient(ctx, ep.clock, name, role="fake")
        self.policy = policy
        self.ticks: list[Tick] = []
        self.shutdown: Shutdown | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        self.client.setup()
        try:
            while not self.stop.is_set():
                msg = self.client.next(0.1)
                if msg is None:
                    continue
                if isinstance(msg, Shutdown):
                    self.shutdown = msg
                    return
                self.ticks.append(msg)
                try:
                    act = self.policy(msg)
                except Silent:  # dies without a word, as a crashed process would
                    return
                self.client.done(msg.tick, (), act)
        finally:
            self.client.close()


@pytest.fixture
def servers(ctx: zmq.Context[Any]) -> Iterator[list[SimServer]]:
    """Servers to shut down after the test (before the context is terminated)."""
    out: list[SimServer] = []
    yield out
    for s in out:
        s.shutdown()


@pytest.fixture
def ep() -> Endpoints:
    return Endpoints.from_base(f"inproc://simtest-{uuid.uuid4().hex}")


def idle(_: Tick) -> None:
    return None


def run_cell(
    ctx: zmq.Context[Any],
    ep: Endpoints,
    policies: dict[str, Policy],
    duration_s: float,
    *,
    guard_s: float = 5.0,
) -> tuple[SimServer, dict[str, Fake]]:
    """Run a whole cell of fakes to the duration; the caller shuts the server down."""
    cell = make_cell()
    progress: list[tuple[int, int]] = []
    server = SimServer(
        cell,
        ep,
        seed=1,
        duration_s=duration_s,
        ctx=ctx,
        guard_s=guard_s,
        join_timeout_s=10.0,
        on_tick=lambda t, d: progress.append((t, d)),
    )
    server.setup()
    names = ["supervisor", "R1", "R2", "R3", "R4"]
    fakes = {n: Fake(ctx, ep, n, policies.get(n, idle)) for n in names}
    try:
        for f in fakes.values():
            f.start()
        assert server.run() == 0
    except BaseException:
        server.shutdown()
        raise
    finally:
        for f in fakes.values():
            f.join(timeout=5)
            f.stop.set()
    assert progress[-1] == (server.world.t_ns, round(duration_s * 1e9))
    return server, fakes


def test_run_ticks_every_participant_to_the_duration(
    ctx: zmq.Context[Any], ep: Endpoints, servers: list[SimServer]
) -> None:
    server, fakes = run_cell(ctx, ep, {}, duration_s=12.5)
    servers.append(server)
    assert server.ticks == 300
    # sim time comes from the tick count: tick k is at k / 24 s exactly, without drift
    assert server.world.t_ns == 12_500_000_000
    for name, fake in fakes.items():
        assert [t.tick for t in fake.ticks] == list(range(300))
        assert [t.t_ns for t in fake.ticks] == [k * 10**9 // 24 for k in range(300)]
        assert fake.shutdown is not None and fake.shutdown.t_ns == 12_500_000_000
        sense_type = WorldSense if name == "supervisor" else RobotSense
        assert all(isinstance(t.sense, sense_type) for t in fake.ticks)
    # the world ran: the first frame rode the infeed belt for 12.5 s
    sup = fakes["supervisor"].ticks
    spawned = [e.part for t in sup for e in t.sense.events if e.kind == "spawned"]  # type: ignore[union-attr]
    assert "frame-0001" in spawned
    pose = server.world.part_pose("frame-0001")
    assert pose is not None and pose.x > -1.0
    assert server.malformed_acts == 0 and server.dropped == []


def test_acts_move_arms_and_foreign_acts_are_counted(
    ctx: zmq.Context[Any], ep: Endpoints, servers: list[SimServer]
) -> None:
    home = MODEL_HOME[make_cell().robot("R2").model]
    target = (0.3, *home[1:])

    def r2(tick: Tick) -> Message:
        return RobotAct(robot="R2", q=target, grip=Grip.NONE, observe=(), fasten="", inspect="")

    def r3(tick: Tick) -> Message:  # R3 tries to drive R2: refused
        return RobotAct(robot="R2", q=home, grip=Grip.NONE, observe=(), fasten="", inspect="")

    def r4(tick: Tick) -> Message:  # a robot may not retire parts
        return WorldAct(retire=("board-0001",))

    def sup(tick: Tick) -> Message | None:
        return WorldAct(retire=("screen-0001",)) if tick.tick == 2 else None

    server, fakes = run_cell(ctx, ep, {"R2": r2, "R3": r3, "R4": r4, "supervisor": sup}, 0.5)
    servers.append(server)
    assert server.world.robot_sense("R2").q == target
    last = fakes["R2"].ticks[-1].sense
    assert isinstance(last, RobotSense) and last.q == target
    assert server.malformed_acts == 2 * server.ticks
    assert "board-0001" in server.world.parts()
    assert "screen-0001" not in server.world.parts()


def test_run_names_who_never_joined(ctx: zmq.Context[Any], ep: Endpoints) -> None:
    server = SimServer(make_cell(), ep, seed=0, duration_s=1.0, ctx=ctx, join_timeout_s=0.3)
    server.setup()
    fakes = [Fake(ctx, ep, n, idle) for n in ["supervisor", "R1", "R3"]]
    try:
        for f in fakes:
            f.start()
        with pytest.raises(LightsoutError, match="R2, R4"):
            server.run()
    finally:
        server.shutdown()
        for f in fakes:
            f.stop.set()
            f.join(timeout=20)


class Silent(Exception):
    """Raised by a policy to make its fake stop answering (a dead participant)."""


def test_a_silent_participant_is_dropped_and_the_run_goes_on(
    ctx: zmq.Context[Any], ep: Endpoints, servers: list[SimServer]
) -> None:
    def r3(tick: Tick) -> Message | None:
        if tick.tick == 5:
            raise Silent
        return None

    server, fakes = run_cell(ctx, ep, {"R3": r3}, 1.0, guard_s=1.0)
    servers.append(server)
    assert server.dropped == ["R3"]
    assert [t.tick for t in fakes["R3"].ticks] == list(range(6))
    assert len(fakes["R1"].ticks) == server.ticks == 24
