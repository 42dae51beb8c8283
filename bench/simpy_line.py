"""A bare SimPy queueing model of an assembly line, the yardstick of events fidelity's speed.

Written for ``bench.fidelity`` from the same two files the cell runs from: the cell file
(robots and their skills, fixtures, the recipe's steps and what each needs first, belt
lengths and speeds as travel times, the frame feeder's interval and jitter and its limit
on the belt, trays that refill ``interval`` after being emptied) and its calibration
(``NAME.calib.json``: every (robot, step, stations) duration, drawn from its samples with
replacement, split by where the arm started where the calibration has that).

A unit's life: its frame is fed onto the infeed, rides it (length / speed) and waits at
its end, behind the frames before it, until a fixture is free and a robot takes
``load_frame``; the unit is then planned (its cycle time starts, as the supervisor's
does). Each step becomes ready when the steps it comes ``after`` are done, and is taken,
ready steps in recipe order, by the free capable robot that would finish it first (a
robot is capable when it has the skill and the calibration timed it at those stations,
which is where its reach shows). A pick from a tray takes the tray's part; the tray refills
``interval`` later. ``unload`` frees the fixture and puts the unit on the outfeed, where it
ships at the belt's end.

There is no controller, no message and no fault here: it is what a line modeller would
write in an afternoon, and it runs as fast as SimPy's event heap allows. Seeded: the same
files, duration and seed give the same result.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections.abc import Generator
from pathlib import Path
from typing import Any

import simpy

from bus.cellspec import CellSpec, OperationSpec, StationKind
from bus.errors import ConfigError
from cells.schema import load_cell

HOME = "home"


@dataclasses.dataclass(slots=True)
class Result:
    """What the model produced over a run."""

    duration_s: float
    shipped: int
    cycles_s: list[float]
    """Each shipped unit's cycle time: from its plan (frame at the infeed's end, a fixture
    free, load_frame taken) to it shipping."""
    busy_s: dict[str, float]
    """Robot -> sim seconds it spent in operations."""
    ops_done: int

    @property
    def throughput(self) -> float:
        """Units shipped per hour of sim time."""
        return self.shipped * 3600.0 / self.duration_s

    @property
    def mean_cycle_s(self) -> float:
        return statistics.fmean(self.cycles_s) if self.cycles_s else 0.0

    def utilisation(self) -> dict[str, float]:
        """Robot -> its busy share of the run."""
        return {r: b / self.duration_s for r, b in sorted(self.busy_s.items())}


@dataclasses.dataclass(slots=True)
class _Unit:
    fixture: str
    created_s: float
    done: set[str] = dataclasses.field(default_factory=set)
    started: set[str] = dataclasses.field(default_factory=set)


class Line:
    """The model: SimPy processes for the feeder, the belts, the trays and each operation."""

    def __init__(self, cell: CellSpec, calib: dict[str, Any], seed: int) -> None:
        self.env = simpy.Environment()
        self.rng = random.Random(f"simpy_line/{cell.name}/{seed}")
        self.cell = cell
        recipe = cell.recipe  # the assembly cell makes one product
        self.ops: tuple[OperationSpec, ...] = recipe.ops
        self.base = recipe.base
        self.samples = _samples(calib)
        self.skills = {r.name: set(r.capabilities) for r in cell.robots}
        self.at: dict[str, str] = {r.name: HOME for r in cell.robots}
        """Robot -> the station its last operation ended at (``home`` first)."""
        self.idle: set[str] = set(self.skills)
        self.free_fixtures: list[str] = [f.name for f in cell.fixtures]
        self.units: list[_Unit] = []
        self.waiting_frames = 0
        """Frames at the infeed's end, waiting for a fixture and a robot."""
        self.on_infeed = 0
        self.trays: dict[str, bool] = {f.name: True for f in cell.feeders if f.pose is not None}
        """Tray feeder -> whether its part is there."""
        self.infeed = next(c for c in cell.conveyors if c.role is StationKind.INFEED)
        self.outfeed = next(c for c in cell.conveyors if c.role is StationKind.OUTFEED)
        self.busy_s = {r: 0.0 for r in self.skills}
        self.cycles: list[float] = []
        self.ops_done = 0
        self.wake = self.env.event()
        """Triggered when anything changes that could let a step start."""
        self.room = self.env.event()
        """Triggered when a frame leaves the infeed (the feeder may be at its limit)."""
        self.belts = {c.name for c in cell.conveyors}

    # --- the processes ---

    def feeder(self) -> Generator[simpy.Event, Any, None]:
        """Frames onto the infeed every interval +/- jitter, at most ``limit`` on the belt."""
        feed = next(f for f in self.cell.feeders if f.pose is None and f.part == self.base)
        if feed.start:
            yield self.env.timeout(feed.start)
        while True:
            while self.on_infeed + self.waiting_frames >= feed.limit:
                self.room = self.env.event()
                yield self.room
            self.on_infeed += 1
            self.env.process(self.ride_infeed())
            gap = feed.interval + self.rng.uniform(-feed.jitter, feed.jitter)
            yield self.env.timeout(gap)

    def ride_infeed(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.infeed.length / self.infeed.speed)
        self.on_infeed -= 1
        self.waiting_frames += 1
        self.poke()

    def ship(self, unit: _Unit) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.outfeed.length / self.outfeed.speed)
        self.cycles.append(self.env.now - unit.created_s)

    def refill(self, tray: str, interval: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(interval)
        self.trays[tray] = True
        self.poke()

    def operate(
        self, robot: str, op: OperationSpec, unit: _Unit, stations: str, end_at: str
    ) -> Generator[simpy.Event, Any, None]:
        """One operation: the robot is busy for a duration drawn from the calibration."""
        took = self.draw(robot, op.name, stations)
        yield self.env.timeout(took)
        self.busy_s[robot] += took
        self.ops_done += 1
        self.at[robot] = end_at
        self.idle.add(robot)
        unit.done.add(op.name)
        if op.dst in self.belts:  # unload: off the fixture, ships
            self.free_fixtures.append(unit.fixture)
            self.units.remove(unit)
            self.env.process(self.ship(unit))
        self.poke()

    def dispatcher(self) -> Generator[simpy.Event, Any, None]:
        """Start every step that can start, then sleep until something changes."""
        while True:
            while self.start_one():
                pass
            self.wake = self.env.event()
            yield self.wake

    # --- decisions ---

    def poke(self) -> None:
        """Wake the dispatcher."""
        if not self.wake.triggered:
            self.wake.succeed()

    def start_one(self) -> bool:
        """Start the first ready step (recipe order, oldest unit first) a free robot can do."""
        if not self.idle:
            return False
        first = self.ops[0]
        if self.waiting_frames and self.free_fixtures:
            fixture = self.free_fixtures[0]
            src = first.src
            if self.assign(first, f"{src}->{fixture}", fixture, _Unit(fixture, self.env.now)):
                self.waiting_frames -= 1
                self.free_fixtures.remove(fixture)
                if not self.room.triggered:
                    self.room.succeed()
                return True
        for unit in self.units:
            for op in self.ops[1:]:
                if op.name in unit.started or not set(op.after) <= unit.done:
                    continue
                tray = op.src if op.src in self.trays else ""
                if tray and not self.trays[tray]:
                    continue
                if op.at:
                    stations, end_at = unit.fixture, unit.fixture
                elif op.dst in self.belts:
                    stations, end_at = f"{unit.fixture}->{op.dst}", op.dst
                else:
                    stations, end_at = f"{op.src}->{unit.fixture}", unit.fixture
                if self.assign(op, stations, end_at, unit):
                    if tray:
                        self.trays[tray] = False
                        feed = next(f for f in self.cell.feeders if f.name == tray)
                        self.env.process(self.refill(tray, feed.interval))
                    return True
        return False

    def assign(self, op: OperationSpec, stations: str, end_at: str, unit: _Unit) -> bool:
        """Give ``op`` to the free capable robot with the shortest expected duration."""
        best, best_s = "", 0.0
        for robot in sorted(self.idle):
            if op.skill not in self.skills[robot]:
                continue
            mean = self.expected(robot, op.name, stations)
            if mean is not None and (not best or mean < best_s):
                best, best_s = robot, mean
        if not best:
            return False
        self.idle.discard(best)
        if op.name == self.ops[0].name:
            self.units.append(unit)
        unit.started.add(op.name)
        self.env.process(self.operate(best, op, unit, stations, end_at))
        return True

    def expected(self, robot: str, op: str, stations: str) -> float | None:
        got = self.samples.get((robot, op, stations, self.at[robot]))
        got = got or self.samples.get((robot, op, stations, ""))
        return statistics.fmean(got) if got else None

    def draw(self, robot: str, op: str, stations: str) -> float:
        got = self.samples.get((robot, op, stations, self.at[robot]))
        got = got or self.samples[(robot, op, stations, "")]
        return self.rng.choice(got)

    def run(self, duration_s: float) -> Result:
        self.env.process(self.feeder())
        self.env.process(self.dispatcher())
        self.env.run(until=duration_s)
        return Result(duration_s, len(self.cycles), self.cycles, self.busy_s, self.ops_done)


def _samples(calib: dict[str, Any]) -> dict[tuple[str, str, str, str], list[float]]:
    """(robot, op, stations, start) -> duration samples; start "" for all starts together.

    Recoveries (``recovery:...``) are left out: this model drops nothing.
    """
    out: dict[tuple[str, str, str, str], list[float]] = {}
    for entry in calib["operations"]:
        if str(entry["src"]).startswith("recovery:"):
            continue
        key = (str(entry["robot"]), str(entry["op"]), str(entry["stations"]))
        out[(*key, "")] = [float(s) for s in entry["duration_s"]["samples"]]
        for start, dist in entry.get("by_start", {}).items():
            out[(*key, str(start))] = [float(s) for s in dist["samples"]]
    return out


def load(cell_path: Path) -> tuple[CellSpec, dict[str, Any]]:
    """The cell file and its calibration beside it (``NAME.calib.json``), or one clear error."""
    cell = load_cell(cell_path)
    calib_path = cell_path.with_suffix(".calib.json")
    try:
        calib = json.loads(calib_path.read_text(encoding="utf-8"))
        if not isinstance(calib.get("operations"), list):
            raise ValueError("no operations list")
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(str(calib_path), "operations", f"not a calibration: {exc}") from exc
    return cell, calib


def run(cell_path: Path, duration_s: float, seed: int) -> Result:
    """Run the model of ``cell_path``'s line for ``duration_s`` sim seconds."""
    cell, calib = load(cell_path)
    return Line(cell, calib, seed).run(duration_s)
