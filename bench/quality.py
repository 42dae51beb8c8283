"""Quality figures: how far sound robots place from their spots, what a worn tool costs, and
the inspection's error rates.

* ``margins``: fault-free runs of a cell, every unit's parts measured after
  every tick while it stands complete in its fixture (``World.measure``, what
  the inspection's gauges read), each step's worst error in the base's plane
  against its ``tolerance``: the margin the cell file's tolerances leave.
* ``worn``: one run with a robot's screwdriver wearing (``tool_wear``): units
  inspected and good, the defects by robot, and when the diagnosis named it.
* ``rates``: the inspection's decision at set false-accept and false-reject
  rates, over many inspections of a good and of a defective unit through the
  world (``World.robot_sense``: its own seeded draw each time): the share
  wrongly decided against the rate set.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec, OperationSpec, Pose
from bus.enums import FaultKind, Grip, Skill
from bus.messages import RobotAct
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell
from sim.faulting import FaultInjector
from sim.world import World
from supervisor.inspection import judge, planar_errors


def margins(cell: CellSpec, seeds: list[int], duration_s: float) -> dict[str, Any]:
    """Per placement step: units measured, the worst error (mm) and its tolerance (mm)."""
    recipe = cell.recipe
    placed = [o for o in recipe.ops if o.skill is Skill.PICK_PLACE and o.part != recipe.base]
    worst: dict[str, float] = {o.name: 0.0 for o in placed if o.tolerance > 0}
    units = 0
    defects = 0
    for seed in seeds:
        last: dict[str, dict[str, float]] = {}
        watch = _watcher(placed, recipe.base, last)
        with tempfile.TemporaryDirectory() as tmp:
            run_cell(cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s), watch=watch)
            log = [json.loads(x) for x in (Path(tmp) / "events.jsonl").read_text().splitlines()]
        defects += sum(1 for e in log if e["kind"] == "inspected" and e.get("defects"))
        units += len(last)
        for errors in last.values():
            for step in worst:
                worst[step] = max(worst[step], errors[step])
    tolerance = {o.name: o.tolerance for o in placed}
    return {
        "units": units,
        "defects": defects,
        "steps": {s: [round(w * 1e3, 2), round(tolerance[s] * 1e3, 2)] for s, w in worst.items()},
    }


def _watcher(
    placed: list[OperationSpec], base_kind: str, last: dict[str, dict[str, float]]
) -> Callable[[World], None]:
    """After every tick: each unit in a fixture with all its parts, measured; ``last`` keeps
    each step's worst reading while the unit stood complete in its fixture."""

    def watch(world: World) -> None:
        for pid, (kind, where) in world.parts().items():
            if kind == base_kind and where.startswith("fixture:"):
                errors = planar_errors(placed, world.measure(pid))
                if len(errors) == len(placed):
                    prev = last.get(pid, errors)
                    last[pid] = {k: max(v, prev[k]) for k, v in errors.items()}

    return watch


def worn(cell: CellSpec, seed: int, duration_s: float, fault: ScheduledFault) -> dict[str, Any]:
    """A run with ``fault``: the KPIs' quality, the defects, and the diagnosis of its target."""
    with tempfile.TemporaryDirectory() as tmp:
        kpis = run_cell(
            cell, Path(tmp), RunOptions(seed=seed, duration_s=duration_s, faults=(fault,))
        )
        log = [json.loads(x) for x in (Path(tmp) / "events.jsonl").read_text().splitlines()]
    first = next(
        (e["t_ns"] / 1e9 for e in log if e["kind"] == "inspected" and e.get("defects")), None
    )
    named = next((e for e in log if e["kind"] == "diagnosis" and e["target"] == fault.target), None)
    return {
        "quality": kpis["quality"],
        "oee_quality": kpis["oee"]["quality"],
        "first_defect_s": first,
        "diagnosis": None
        if named is None
        else {k: named[k] for k in ("component", "cause", "defects")}
        | {"at_s": named["t_ns"] / 1e9},
    }


def rates(
    cell: CellSpec, seed: int, n: int, false_accept: float, false_reject: float
) -> dict[str, float]:
    """The decision's measured error rates over ``n`` inspections of each of two units: a good
    one, and one with its board 4 mm off and its screws driven by a worn screwdriver. Each
    unit is put in mid-air just under a robot's tool (no physics step is taken, so it stays),
    fastened by that robot's screwdriver and inspected by its camera, as often as asked."""
    world = World(cell, seed=seed)
    world.setup()
    try:
        units = {}
        for robot, off in (("R3", 0.0), ("R1", 0.004)):
            if off:
                FaultInjector(world).inject("tool_wear", robot, 0.001, factor=0.5)
                world.advance()  # the wear grows to its full share
            (x, y, z), _ = world.tcp(robot)
            top = z - 0.03
            base = world.place("frame", Pose(x, y, top - 0.008))
            world.place("battery", Pose(x - 0.035, y, top))
            world.place("board", Pose(x + 0.035 + off, y, top))
            world.place("screen", Pose(x, y, top + 0.005))
            q = world.robot_sense(robot).q
            world.apply(RobotAct(robot, q, Grip.NONE, (), fasten=base, inspect=""))
            units[robot] = (base, q)
        recipe = dataclasses.replace(
            cell.recipe, false_accept=false_accept, false_reject=false_reject
        )
        out: dict[str, float] = {}
        for robot, key in (("R3", "false_reject"), ("R1", "false_accept")):
            base, q = units[robot]
            wrong = truly_bad = 0
            for _ in range(n):
                world.apply(RobotAct(robot, q, Grip.NONE, (), fasten="", inspect=base))
                verdict = judge(recipe, world.robot_sense(robot).inspection)
                truly_bad += verdict.defective
                wrong += verdict.ok == verdict.defective
            out[key] = wrong / n
            out[f"{key}_truly_defective"] = truly_bad / n
        return out
    finally:
        world.shutdown()


def worn_tool(robot: str = "R2") -> ScheduledFault:
    """The benchmark's wear: the robot's screwdriver loses half its torque over 60 s from 40 s."""
    return ScheduledFault(40.0, robot, FaultKind.TOOL_WEAR, 60.0, share=0.5)
