"""Events fidelity against physics (accuracy) and against a bare SimPy model (speed).

Accuracy: the assembly cell over the same scenario, with faults of every kind that works in
one process spread over the run (``scenario``), runs at physics and at events fidelity with
the same seed, one process each, through the real launcher (``cells.launch.run_cell``), as
``lightsout run --fidelity`` makes them. The figures compared are the KPIs issue #14 names:
throughput, mean cycle time, OEE and each robot's utilisation. Which robot gets which step
is decided by bids that differ by fractions of a second, so one seed's allocation diverges
between the two worlds after the first faults; the mean over several seeds is the honest
comparison, and both are printed.

Speed: a long shift of the assembly cell with chaos faults (``cells.headless.plan_faults``,
as ``lightsout run --chaos R --processes`` plans them) at events fidelity, with every agent
and the supervisor in processes of their own; beside it ``bench.simpy_line``, a bare
queueing model of the same line, over the same sim hours. The chaos faults include process
freezes, which by design last wall seconds (a stopped process stops the wall, not sim
time); their wall seconds are given apart so the rest of the run can be read on its own.
"""

from __future__ import annotations

import collections
import dataclasses
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bus.enums import FaultKind
from cells.calibrate import with_fidelity
from cells.faults import ScheduledFault
from cells.headless import plan_faults
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "cells" / "assembly.toml"
DURATION_S = 3600.0
"""Accuracy: sim seconds per run (issue #14: 1 h)."""
SEEDS = 3
HOURS = 24.0
"""Speed: sim hours of the chaos shift (issue #14: a 24 h shift)."""
CHAOS_RATE = 0.002
"""Speed: chaos faults per sim second (one every 500 s on average, about 170 in 24 h)."""
ROUND_S = 600.0
"""Accuracy: one fault of each kind every this many sim seconds."""
FIDELITIES = ("physics", "events")

Progress = Callable[[int, int], None]
"""``run_cell``'s progress callback: sim ns done, sim ns in all."""


def scenario(duration_s: float) -> tuple[ScheduledFault, ...]:
    """Faults of every in-process kind, a round of six every ``ROUND_S`` (shorter runs: one
    round over the run), the targets turning from round to round.

    The shape is ``tests/cells/test_events_fidelity.py``'s FAULTS: a gripper drop, a sensor
    blackout, a robot fault, a conveyor jam, a slow robot and message loss; an hour has six
    rounds, so six of each, every robot and both belts hit. Every fault is over well before
    the end, so both runs end with the cell recovered.
    """
    robots = ("R1", "R2", "R3", "R4")
    sensors = ("infeed.end", "F1", "outfeed.end", "F2")
    belts = ("infeed", "outfeed")
    period = ROUND_S if duration_s >= ROUND_S + 60.0 else duration_s
    scale = period / ROUND_S
    out: list[ScheduledFault] = []
    for k in range(max(1, int((duration_s - 60.0) // period))):
        t0 = k * period
        out += [
            ScheduledFault(t0 + 30.0 * scale, robots[(k + 2) % 4], FaultKind.GRIPPER_DROP),
            ScheduledFault(
                t0 + 90.0 * scale, sensors[k % 4], FaultKind.SENSOR_BLACKOUT, duration_s=5.0
            ),
            ScheduledFault(
                t0 + 150.0 * scale, robots[k % 4], FaultKind.ROBOT_FAULT, duration_s=10.0
            ),
            ScheduledFault(
                t0 + 240.0 * scale, belts[k % 2], FaultKind.CONVEYOR_JAM, duration_s=30.0
            ),
            ScheduledFault(
                t0 + 330.0 * scale,
                robots[(k + 1) % 4],
                FaultKind.SLOW_ROBOT,
                duration_s=60.0,
                factor=2.0,
            ),
            ScheduledFault(
                t0 + 450.0 * scale,
                robots[(k + 3) % 4],
                FaultKind.MESSAGE_LOSS,
                duration_s=20.0,
                share=0.3,
            ),
        ]
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    """The compared KPIs of one run."""

    throughput: float
    """Units shipped per hour of sim time."""
    cycle_s: float
    """Mean cycle time of a unit, sim seconds (0 if none shipped)."""
    oee: float
    utilisation: dict[str, float]
    """Robot -> its utilisation (busy share of the run)."""
    units: int
    balanced: bool
    wall_s: float

    def rows(self) -> dict[str, float]:
        """Figure name -> value, in the order the tables print them."""
        out = {
            "throughput (units/h)": self.throughput,
            "mean cycle time (s)": self.cycle_s,
            "OEE": self.oee,
        }
        out |= {f"utilisation {r}": u for r, u in sorted(self.utilisation.items())}
        return out


def figures_of(kpis: dict[str, Any], wall_s: float) -> Figures:
    """The compared KPIs out of a run's ``kpis.json``."""
    cycle = kpis.get("cycle_time_s") or {}
    return Figures(
        throughput=float(kpis["throughput_per_hour"]),
        cycle_s=float(cycle.get("mean", 0.0) or 0.0),
        oee=float(kpis["oee"]["oee"]),
        utilisation={n: float(r["utilisation"]) for n, r in kpis["robots"].items()},
        units=int(kpis["units_completed"]),
        balanced=bool(kpis["ledger_balanced"]),
        wall_s=wall_s,
    )


def cell_at(fidelity: str, path: Path = CELL) -> Any:
    """The cell file at ``fidelity`` (events: with its calibration, as ``lightsout run``)."""
    cell = load_cell(path)
    return with_fidelity(cell, path, fidelity) if fidelity != "physics" else cell


def run_once(
    fidelity: str,
    seed: int,
    duration_s: float,
    faults: tuple[ScheduledFault, ...],
    *,
    progress: Progress | None = None,
    processes: bool = False,
) -> tuple[Figures, dict[str, Any]]:
    """One run through the real launcher in a temporary run directory: figures and KPIs."""
    cell = cell_at(fidelity)
    opts = RunOptions(seed=seed, duration_s=duration_s, faults=faults, processes=processes)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        kpis = run_cell(cell, Path(tmp), opts, progress=progress)
        wall = time.perf_counter() - t0
    return figures_of(kpis, wall), kpis


def difference(physics: float, events: float) -> float:
    """Events' difference from physics, percent of physics (nan where physics is 0)."""
    return (events - physics) / physics * 100.0 if physics else float("nan")


def mean_figures(runs: list[Figures]) -> dict[str, float]:
    """The mean of each figure over runs (seeds)."""
    keys = runs[0].rows().keys()
    return {k: statistics.fmean(r.rows()[k] for r in runs) for k in keys}


def accuracy(
    duration_s: float,
    seeds: list[int],
    *,
    progress: Callable[[str], Progress | None] = lambda label: None,
    on_result: Callable[[str, int, Figures], None] = lambda f, s, r: None,
) -> dict[str, list[Figures]]:
    """Each seed at physics then at events fidelity over ``scenario(duration_s)``:
    fidelity -> figures per seed, in the order of ``seeds``."""
    faults = scenario(duration_s)
    out: dict[str, list[Figures]] = {f: [] for f in FIDELITIES}
    for seed in seeds:
        for fidelity in FIDELITIES:
            label = f"{fidelity} seed {seed}"
            got, _ = run_once(fidelity, seed, duration_s, faults, progress=progress(label))
            out[fidelity].append(got)
            on_result(fidelity, seed, got)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Speed:
    """The chaos shift at events fidelity beside the SimPy model over the same hours."""

    hours: float
    wall_s: float
    faults: int
    freeze_wall_s: float
    """Wall seconds the chaos freezes stall the clock: each stops a process longer than the
    clock's guard, which waits that long before it drops the process (freezes x guard)."""
    restart_wait_s: float
    """Wall seconds the launcher waited for restarted processes (``kpis.json`` ``sim``)."""
    units: int
    balanced: bool
    sim: dict[str, Any]
    """``kpis.json``'s ``sim`` block: the clock's counts."""
    simpy_wall_s: float
    simpy_units: int
    host_cpu_s: float = 0.0
    """CPU seconds of this process: the clock, the events world, the launcher."""
    children_cpu_s: float = 0.0
    """CPU seconds of the supervisor and agent processes (all exited by then)."""

    @property
    def per_wall_s(self) -> float:
        """Sim hours per wall second, events fidelity."""
        return self.hours / self.wall_s

    @property
    def per_wall_s_unfrozen(self) -> float:
        """Sim hours per wall second with the freezes' and restarts' wall seconds taken out."""
        rest = self.wall_s - self.freeze_wall_s - self.restart_wait_s
        return self.hours / rest if rest > 0 else float("nan")

    @property
    def simpy_per_wall_s(self) -> float:
        """Sim hours per wall second, the SimPy model."""
        return self.hours / self.simpy_wall_s


def speed(
    hours: float,
    chaos_rate: float,
    seed: int,
    *,
    processes: bool = True,
    progress: Progress | None = None,
) -> Speed:
    """``hours`` of the assembly cell with chaos at events fidelity (its members processes,
    or stepped in this one: ``cells.residents``, the same event log), then the SimPy model
    over the same hours with the same seed."""
    duration_s = hours * 3600.0
    cell = cell_at("events")
    planned = plan_faults(
        cell,
        scenario=None,
        chaos_rate=chaos_rate,
        duration_s=duration_s,
        seed=seed,
        killable=True,
    )
    freezes = (FaultKind.AGENT_FREEZE, FaultKind.SUPERVISOR_FREEZE)
    opts = RunOptions(seed=seed, duration_s=duration_s, faults=planned.faults, processes=processes)
    # a frozen process is waited for up to the guard; a member here is dropped at once
    frozen = sum(min(f.duration_s, opts.guard_s) for f in planned.faults if f.kind in freezes)
    frozen = frozen if processes else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu()
        t0 = time.perf_counter()
        kpis = run_cell(cell, Path(tmp), opts, progress=progress)
        wall = time.perf_counter() - t0
        cpu1 = _cpu()
    sim = dict(kpis.get("sim", {}))
    waits = sim.get("restart_wait_s") or {}
    restart = sum(float(w) for each in waits.values() for w in each)  # name -> [wall s]
    from bench import simpy_line  # simpy is a dev extra: only the speed part needs it

    t0 = time.perf_counter()
    line = simpy_line.run(CELL, duration_s, seed)
    simpy_wall = time.perf_counter() - t0
    return Speed(
        hours=hours,
        wall_s=wall,
        faults=len(planned.faults),
        freeze_wall_s=frozen,
        restart_wait_s=restart,
        units=int(kpis["units_completed"]),
        balanced=bool(kpis["ledger_balanced"]),
        sim=sim,
        simpy_wall_s=simpy_wall,
        simpy_units=line.shipped,
        host_cpu_s=cpu1[0] - cpu0[0],
        children_cpu_s=cpu1[1] - cpu0[1],
    )


def _cpu() -> tuple[float, float]:
    """CPU seconds (user and system) of this process, and of its children that exited."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@dataclasses.dataclass(frozen=True, slots=True)
class Split:
    """Where the wall time of a one-process events run goes."""

    duration_s: float
    wall_s: float
    seconds: dict[str, float]
    """Part -> wall seconds (the participants' by their threads' CPU time)."""
    calls: dict[str, int]
    """Part -> how many times it was called."""


@contextmanager
def _timed(
    cls: type, name: str, key: str, clock: Callable[[], float], split: Split
) -> Iterator[None]:
    """Add each call of ``cls.name`` to ``split``: the time ``clock`` says it took, and one."""
    original = getattr(cls, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return original(self, *args, **kwargs)
        finally:
            split.seconds[key] += clock() - t0
            split.calls[key] += 1

    setattr(cls, name, timed)
    try:
        yield
    finally:
        setattr(cls, name, original)


def split(duration_s: float, seed: int) -> Split:
    """One events run in one process over ``scenario(duration_s)``, its parts timed: the
    events world's control ticks (``EventWorld.advance``), the clock's ticks (waiting for
    every Done), and the agents' and the supervisor's steps (thread CPU time; in one process
    they run in the clock's wait)."""
    from bus.clock import ClockServer
    from robots.agent import RobotAgent
    from sim.events import EventWorld
    from supervisor.supervisor import Supervisor

    got = Split(duration_s, 0.0, collections.defaultdict(float), collections.defaultdict(int))
    cell = cell_at("events")
    opts = RunOptions(seed=seed, duration_s=duration_s, faults=scenario(duration_s))
    with ExitStack() as stack:
        stack.enter_context(_timed(EventWorld, "advance", "world", time.perf_counter, got))
        stack.enter_context(_timed(ClockServer, "tick", "clock", time.perf_counter, got))
        stack.enter_context(_timed(RobotAgent, "step", "agents", time.thread_time, got))
        stack.enter_context(_timed(Supervisor, "step", "supervisor", time.thread_time, got))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        t0 = time.perf_counter()
        run_cell(cell, Path(tmp), opts)
        wall = time.perf_counter() - t0
    return dataclasses.replace(got, wall_s=wall)
