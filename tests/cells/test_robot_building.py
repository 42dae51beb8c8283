"""The robot-building cell: arms built, tested, mounted, commissioned, and working.

The runs are real: PyBullet stacks and joins the parts, the supervisor tests
and mounts the arm, the world loads a real Panda on the mount point, the
launcher checks it and starts its agent, and it bids for work like the others.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bus.cellspec import MODEL_HOME, CellSpec, Pose
from bus.messages import Commission, WorldAct
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from sim import World
from supervisor.inspection import worst_join
from tests.cells.test_schema import broken as schema_broken
from tests.reference import first_difference

ROOT = Path(__file__).resolve().parents[2]
CELL = ROOT / "cells" / "robot_building.toml"
DURATION_S = 125.0
"""Long enough for three robots built, an arm that fails its test on the way, and work by
the first two built robots (seed 1)."""


@pytest.fixture(scope="module")
def cell() -> CellSpec:
    return load_cell(CELL)


class Seen:
    """What the world shows after every tick: built arms, where they stand, how they moved."""

    def __init__(self, cell: CellSpec) -> None:
        self.own = {r.name for r in cell.robots}
        self.bases: dict[str, Pose] = {}
        self.moved: dict[str, float] = {}
        """Built robot -> the furthest its tool got from where it was first seen (m)."""
        self._first: dict[str, tuple[float, float, float]] = {}

    def __call__(self, world: World) -> None:
        for name, arm in world.arms.items():
            if name in self.own:
                continue
            self.bases[name] = arm.spec.base
            tcp, _ = arm.tcp()
            first = self._first.setdefault(name, tcp)
            self.moved[name] = max(self.moved.get(name, 0.0), math.dist(first, tcp))


@pytest.fixture(scope="module")
def runs(cell: CellSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same seed in one process and as processes."""
    out: dict[str, Any] = {}
    for mode, processes in (("threads", False), ("processes", True)):
        path = tmp_path_factory.mktemp(mode)
        seen = Seen(cell)
        kpis = run_cell(
            cell,
            path,
            RunOptions(seed=1, duration_s=DURATION_S, processes=processes),
            watch=seen if not processes else None,
        )
        out[mode] = (path, kpis, seen)
    return out


@pytest.mark.timeout(900)
def test_arms_are_commissioned_as_working_robots(cell: CellSpec, runs: dict[str, Any]) -> None:
    _, kpis, seen = runs["threads"]
    built = kpis["built_robots"]
    assert len(built) >= 2
    mounts = {m.name: m.pose for m in cell.mounts}
    recipe = cell.recipe
    for b in built:
        # the world holds a real arm on the mount point kept for it
        assert seen.bases[b["robot"]] == mounts[b["mount"]]
        # its parts were consumed: one of every kind the recipe joins, and the base
        kinds = sorted(k for _, k in b["parts"])
        assert kinds == sorted({recipe.base, *(o.part for o in recipe.ops)})
        assert b["joined_s"] is not None and b["joined_s"] >= b["commissioned_s"]
        assert b["check"]["lift_mm"] >= 80 and b["check"]["tcp_mm"] <= 5
        # genealogy: every step of the recipe, by a robot that existed, in time order
        steps = [s for s, _, _ in b["ops"]]
        assert sorted(steps) == sorted(o.name for o in recipe.ops)
        times = [t for _, _, t in b["ops"]]
        assert times == sorted(times) and times[-1] <= b["commissioned_s"]
        # the supervisor brought it up to Execute
        assert kpis["robots"][b["robot"]]["state"] == "Execute"
    # a built robot does work of its own: its tool moved in the world, and the supervisor
    # counts operations it did
    workers = [b["robot"] for b in built if kpis["robots"][b["robot"]]["ops_done"] > 0]
    assert len(workers) >= 2, "built robots do work of their own"
    for name in workers:
        assert seen.moved[name] > 0.2
    led = kpis["ledger"]
    assert kpis["ledger_balanced"] is True
    assert led["consumed"] == sum(len(b["parts"]) for b in built)
    assert kpis["fleet"][-1][1] == len(cell.robots) + len(built)


@pytest.mark.timeout(900)
def test_a_built_robot_is_an_agent_in_the_log_and_in_both_modes_alike(
    runs: dict[str, Any],
) -> None:
    threads, processes = runs["threads"][0], runs["processes"][0]
    a = (threads / "events.jsonl").read_bytes()
    b = (processes / "events.jsonl").read_bytes()
    assert a == b, "the same seed gives the same log, new agents included, in both modes"
    assert first_difference("robot_building-seed1-125s", threads) == ""
    log = [json.loads(line) for line in a.decode().splitlines()]
    added = [e["robot"] for e in log if e["kind"] == "robot_added"]
    joined = [e["robot"] for e in log if e["kind"] == "robot_joined" and e["robot"] in added]
    assert added and joined == added
    states = [e["dst"] for e in log if e["kind"] == "robot_state" and e["robot"] == added[0]]
    assert states[:5] == ["Stopped", "Resetting", "Idle", "Starting", "Execute"]


@pytest.mark.timeout(900)
def test_an_arm_that_fails_its_test_is_scrapped_and_its_mount_used_again(
    runs: dict[str, Any],
) -> None:
    """Physics settles a join off its pose now and then (seed 1: once in the first four)."""
    log = [
        json.loads(line) for line in (runs["threads"][0] / "events.jsonl").read_text().splitlines()
    ]
    failed = [e for e in log if e["kind"] == "inspected" and not e["ok"]]
    assert failed, "seed 1 has an arm that fails its test"
    unit = failed[0]["unit"]
    scrapped = [e for e in log if e["kind"] == "unit_scrapped" and e["unit"] == unit]
    assert len(scrapped) == 1 and scrapped[0]["reason"].startswith("test: ")
    assert len(scrapped[0]["parts"]) == 7
    kept = next(e["mount"] for e in log if e["kind"] == "unit_started" and e["unit"] == unit)
    later = [
        e
        for e in log
        if e["kind"] == "unit_started"
        and e.get("mount") == kept
        and e["unit"] != unit
        and e["t_ns"] >= scrapped[0]["t_ns"]
    ]
    assert later, f"the mount {kept} kept for the scrapped arm is given to the next one"
    assert not any(e["kind"] == "arm_commissioned" and e["unit"] == unit for e in log)


def test_a_join_off_its_pose_is_found_by_the_test(cell: CellSpec) -> None:
    """Stack an arm by hand on the test stand in the real world, one segment 8 mm off, and
    let the supervisor's judge read what the stand measures."""
    recipe = cell.recipe
    world = World(cell, seed=1)
    world.setup()
    try:
        stand = cell.stations()["T1"].pose
        base = world.place(recipe.base, stand)
        top = stand.z + cell.part_kind(recipe.base).size[2]
        stacked = [o for o in recipe.ops if o.stack]
        on_stack = []
        for o in stacked:
            dx = 0.008 if o.part == "link_3" else 0.0
            pose = Pose(stand.x + dx, stand.y, top + o.offset[2] + 0.001)
            on_stack.append(world.place(o.part, pose))
            for _ in range(24):
                world.advance()
        parts = world.parts()
        assert all(parts[pid][1] == f"unit:{base}" for pid in on_stack), parts
        members = world._measure(world._parts[base])
        assert sorted(m.kind for m in members) == sorted(o.part for o in stacked)
        worst = worst_join(stacked, members)
        assert worst[0] in ("link_3", "link_4")
        assert worst[1] > recipe.tolerance
    finally:
        world.shutdown()


# ---------------------------------------------------------------- bad cell files


def broken(tmp_path: Path, mutate: Any) -> str:
    return str(schema_broken(tmp_path, mutate, source=CELL))


def test_the_cell_file_loads(cell: CellSpec) -> None:
    assert len({r.model for r in cell.robots}) == 2 and len(cell.robots) >= 3
    assert cell.builder() is cell.recipe and cell.mounts and cell.stands
    stack = [o.offset[2] for o in cell.recipe.ops if o.stack]
    assert stack == sorted(stack) and stack[0] == 0.0 and len(stack) == 6
    assert MODEL_HOME  # the built robots' model has a home pose


def test_a_segment_order_that_cannot_be_built(tmp_path: Path) -> None:
    def unordered(d: dict[str, Any]) -> None:
        d["recipe"]["ops"][3]["after"] = ["join_link_1"]  # link_3 no longer after link_2

    text = broken(tmp_path, unordered)
    assert "recipe.ops" in text and "cannot be built" in text


def test_a_mount_point_out_of_every_builders_reach(tmp_path: Path) -> None:
    text = broken(tmp_path, lambda d: d["mounts"]["M2"].update(pose=[2.5, -2.5, 0.02]))
    assert "unreachable station" in text and "M2" in text


def test_a_urdf_that_does_not_exist(tmp_path: Path) -> None:
    text = broken(tmp_path, lambda d: d["recipe"]["robot"].update(urdf="franka_panda/nope.urdf"))
    assert "recipe.robot.urdf" in text and "does not exist" in text


def test_a_capability_no_built_robot_could_have(tmp_path: Path) -> None:
    text = broken(tmp_path, lambda d: d["recipe"]["robot"].update(capabilities=["fasten"]))
    assert "recipe.robot.capabilities[0]" in text


def test_a_payload_out_of_a_mount_points_reach(tmp_path: Path) -> None:
    text = broken(tmp_path, lambda d: d["feeders"]["payload_tray"].update(pose=[2.0, 2.0, 0.1]))
    assert "payload" in text


def test_the_world_makes_a_robot_only_of_an_arm_on_a_free_mount_under_its_own_name(
    cell: CellSpec,
) -> None:
    """A supervisor is a peer: a commission it asks for is checked by the world first."""
    world = World(cell, seed=1)
    world.setup()
    try:
        m1 = next(m for m in cell.mounts if m.name == "M1")
        arm = world.place(cell.recipe.base, m1.pose)
        assert world.parts()[arm][1] == "mount:M1"
        for bad in (
            Commission(arm, "../x", "M1"),
            Commission(arm, "R1", "M1"),
            Commission(arm, "B1", "M9"),
            Commission(arm, "B1", "M2"),
            Commission("frame-9999", "B1", "M1"),
        ):
            world.apply_world(WorldAct(retire=(), commission=(bad,)))
        assert world.counters["commission_refused"] == 5
        assert set(world.arms) == {r.name for r in cell.robots}
        world.apply_world(WorldAct(retire=(), commission=(Commission(arm, "B1", "M1"),)))
        assert world.arms["B1"].spec.base == m1.pose and arm not in world.parts()
        assert world.take_commissioned() == [Commission(arm, "B1", "M1")]
        again = world.place(cell.recipe.base, m1.pose)
        world.apply_world(WorldAct(retire=(), commission=(Commission(again, "B2", "M1"),)))
        assert "B2" not in world.arms, "a robot already stands on M1"
    finally:
        world.shutdown()
