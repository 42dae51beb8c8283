"""Whole cells, end to end: real physics, real sockets, one process and many."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from bus.cellspec import CellSpec
from bus.codec import decode
from bus.endpoints import Endpoints, private_ipc_base
from bus.messages import ErrorReply, Message
from cells.launch import RunOptions, run_cell
from sim import World
from tests.reference import first_difference

ROOT = Path(__file__).resolve().parents[2]


def events(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def run(cell: CellSpec, out: Path, **kw: Any) -> dict[str, Any]:
    return run_cell(cell, out, RunOptions(**kw))


@pytest.mark.timeout(600)
def test_one_process_run_builds_and_ships_phones(cell: CellSpec, tmp_path: Path) -> None:
    kpis = run(cell, tmp_path, seed=1, duration_s=120)
    assert kpis["units_completed"] >= 2
    assert kpis["ledger_balanced"] is True
    assert kpis["ledger"]["shipped"] >= 4 * kpis["units_completed"]  # a phone is four parts
    assert all(r["state"] == "Execute" for r in kpis["robots"].values())
    log = events(tmp_path)
    times = [e["t_ns"] for e in log]
    assert times == sorted(times), "events are in sim-time order"
    shipped = [e for e in log if e["kind"] == "unit_shipped"]
    assert len(shipped) == kpis["units_completed"]
    assert json.loads((tmp_path / "kpis.json").read_text()) == kpis
    assert first_difference("assembly-seed1-120s", tmp_path) == "", "the reference run's log"
    # a run without faults is diagnosed with nothing, though every robot's drives and gripper
    # were judged against a learned baseline (supervisor.health)
    assert not [e for e in log if e["kind"] == "diagnosis"]
    for robot in kpis["robots"]:
        series = kpis["health"]["targets"][robot]["series"]
        assert series["tracking/joint 1"]["learned"] and series["carries/gripper"]["learned"]
        assert kpis["health"]["targets"][robot]["diagnoses"] == []
    # every unit measured against its steps' tolerances and torques passed: quality is 100%
    inspected = [e for e in log if e["kind"] == "inspected"]
    assert inspected and all(e["ok"] and "defects" not in e for e in inspected)
    q = kpis["quality"]
    assert (q["inspected"], q["good"], q["quality"]) == (len(inspected), len(inspected), 1.0)
    assert kpis["oee"]["quality"] == 1.0
    assert all(kpis["robots"][r]["oee"]["quality"] == 1.0 for r in q["robots"])


@pytest.mark.timeout(600)
def test_same_seed_gives_the_same_log_and_another_seed_does_not(
    cell: CellSpec, tmp_path: Path
) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(cell, a, seed=7, duration_s=45)
    run(cell, b, seed=7, duration_s=45)
    run(cell, c, seed=8, duration_s=45)
    first = (a / "events.jsonl").read_bytes()
    assert first == (b / "events.jsonl").read_bytes()
    assert first != (c / "events.jsonl").read_bytes()
    assert len(first.splitlines()) > 50


@pytest.mark.timeout(600)
def test_processes_mode_is_reproducible_and_matches_one_process(
    cell: CellSpec, tmp_path: Path
) -> None:
    a, b, one = tmp_path / "a", tmp_path / "b", tmp_path / "one"
    kp = run(cell, a, seed=3, duration_s=45, processes=True)
    run(cell, b, seed=3, duration_s=45, processes=True)
    run(cell, one, seed=3, duration_s=45)
    log = (a / "events.jsonl").read_bytes()
    assert log == (b / "events.jsonl").read_bytes()
    assert log == (one / "events.jsonl").read_bytes()
    assert kp["ledger_balanced"] is True
    assert (a / "logs" / "R1.log").exists()


class Tracker:
    """Follows the first frame through the world, reading poses after every tick."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.trail: list[tuple[int, str, tuple[float, float, float]]] = []
        self.members: set[str] = set()

    def __call__(self, world: World) -> None:
        parts = world.parts()
        if self.part not in parts:
            if self.trail and self.trail[-1][1] != "gone":
                self.trail.append((world.t_ns, "gone", self.trail[-1][2]))
            return
        pose = world.part_pose(self.part)
        assert pose is not None
        self.trail.append((world.t_ns, parts[self.part][1], (pose.x, pose.y, pose.z)))
        self.members |= {pid for pid, (_kind, loc) in parts.items() if loc == f"unit:{self.part}"}

    def stretch(self, location: str) -> list[tuple[float, float, float]]:
        return [pos for _, loc, pos in self.trail if loc == location]


@pytest.mark.timeout(600)
def test_a_frame_rides_is_assembled_and_ships_by_its_world_poses(
    cell: CellSpec, tmp_path: Path
) -> None:
    tracker = Tracker("frame-0001")
    run_cell(cell, tmp_path, RunOptions(seed=1, duration_s=75), watch=tracker)
    locations = [loc for _, loc, _ in tracker.trail]
    order = list(dict.fromkeys(locations))
    assert order[0] == "conveyor:infeed"
    assert order[-1] == "gone", "the finished unit left the world (shipped)"
    # it rode the infeed belt towards the end
    ride = tracker.stretch("conveyor:infeed")
    assert ride[-1][0] - ride[0][0] > 0.3
    # it was carried by a robot into a fixture, and sat there at the fixture's pose
    assert any(loc.startswith("gripper:") for loc in order)
    fixture = next(loc for loc in order if loc.startswith("fixture:")).split(":")[1]
    spot = next(f.pose for f in cell.fixtures if f.name == fixture)
    held = tracker.stretch(f"fixture:{fixture}")
    x, y, z = held[len(held) // 2]
    assert abs(x - spot.x) < 0.02 and abs(y - spot.y) < 0.02 and abs(z - spot.z) < 0.02
    # battery, board and screen were joined to it
    assert {m.split("-")[0] for m in tracker.members} == {"battery", "board", "screen"}
    # then it rode the outfeed away from its start before it was retired
    out = tracker.stretch("conveyor:outfeed")
    assert out[-1][0] - out[0][0] > 0.3
    log = events(tmp_path)
    assert any(e["kind"] == "unit_shipped" and e["unit"] == "frame-0001" for e in log)


@pytest.mark.timeout(600)
def test_garbage_on_every_socket_of_a_running_cell_is_refused_and_it_keeps_producing(
    cell: CellSpec, tmp_path: Path
) -> None:
    base = private_ipc_base()
    ends = Endpoints.from_base(base)
    ctx: zmq.Context[Any] = zmq.Context()
    replies: dict[str, list[Message]] = {"clock": [], "cell": []}
    rogues = {}
    for name in replies:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(getattr(ends, name))
        rogues[name] = sock
    junk = [
        [b"\x00\xff garbage"],
        [b"two", b"frames"],
        [msgpack.packb({"type": "tick", "v": 1})],
        [msgpack.packb({"type": "no_such_thing", "v": 1})],
        [msgpack.packb({"type": "count", "v": 1, "peer": 5, "n": "x"})],
    ]

    def attack(world: World) -> None:
        if world.t_ns // cell.tick_ns in (200, 400):
            for sock in rogues.values():
                for frames in junk:
                    sock.send_multipart(frames)
        for name, sock in rogues.items():
            while sock.poll(0):
                replies[name].append(decode(sock.recv()))

    try:
        kpis = run_cell(
            cell,
            tmp_path,
            RunOptions(seed=2, duration_s=60, processes=True, endpoint=base),
            watch=attack,
        )
    finally:
        for sock in rogues.values():
            sock.close()
        ctx.term()
    assert kpis["sim"]["clock_malformed"] == 2 * len(junk)
    assert kpis["bus"]["malformed"] == 2 * len(junk)
    for name in replies:
        assert len(replies[name]) == 2 * len(junk)
        assert all(isinstance(r, ErrorReply) for r in replies[name])
    assert kpis["units_completed"] >= 1
    assert kpis["ledger_balanced"] is True
