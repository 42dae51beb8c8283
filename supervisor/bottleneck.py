"""Bottleneck analysis: the cell's throughput bound, which resource binds, and how near the
run came to it.

Pure: a function of the cell file, the operation times the health model
learned (``Health.op_times``) and the robots still up. Every figure is an
upper bound on units per hour, so the run's throughput over the bound is at
most about 1 (a little more only where a learned time is longer than a later,
faster run of the same step):

* **robots**: every unit needs the work ``W = sum of t_o`` over the recipe's
  operations, ``t_o`` the best learned time of operation ``o`` among the
  robots that ran it; ``N`` robots up can give at most ``N / W`` units a
  second.
* **skill S**: the same for the operations of one skill and the robots up
  that have it (only R2, R3 and R4 fasten in the assembly cell).
* **fleet**: the robots with their own paces. ``robots`` above takes every
  robot as fast as the best at each operation; where they differ (a slow arm,
  a worn drive) that bound is loose. With ``t_or`` robot ``r``'s current
  time for operation ``o`` (its learned, exponentially weighted mean,
  ``supervisor.learned``; one it never ran it cannot do here), spreading a
  unit's work ``x_or`` (``sum_r x_or = 1``) so that the busiest robot's share
  ``max_r sum_o x_or t_or`` is least gives the work per unit ``T*`` of the
  best split, and ``1 / T*`` units a second. ``T*`` is a linear program; by
  its dual, ``T* = max over weights y (y_r >= 0, sum y_r = 1) of
  sum_o min_r y_r t_or``, and every ``y`` gives a value at most ``T*``, so
  the ``FLEET_STEPS`` steps of projected subgradient ascent on ``y`` give a
  true bound (a little above the exact one where they stop short). It is
  given only where it is tighter than ``robots``.
* **fixtures**: a unit holds its fixture from its first operation to its
  last; along the recipe's graph the longest chain of ``t_o`` is the least it
  can hold it, so ``F`` fixtures give at most ``F / chain``.
* **feeder X**: a belt feeder makes one part every ``interval`` on average; a
  tray refills ``interval`` after it is emptied, so it gives one part every
  ``interval`` at most; a unit needs as many parts of the kind as its recipe
  moves.

The bound is the least of them and the binding resource is the one that
gives it. Travel between operations, waiting for a part and the belts'
transit are left out (they only lower the real figure): a ratio well under 1
says the cell loses time there, or that its work is badly spread.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from bus.cellspec import CellSpec

HOUR_S = 3600.0
FLEET_STEPS = 300
"""Subgradient steps of the fleet bound's dual (``fleet_split``)."""
FLEET_TIGHTER = 0.999
"""The fleet bound is given where it is below the robots' one by more than this share (where
the robots are alike they are the same)."""


def analyse(
    cell: CellSpec,
    op_times: Mapping[str, Mapping[str, float]],
    robots_up: Collection[str],
    throughput_per_hour: float,
    paces: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """The bound per resource (units per hour), the binding one, and the run's share of it.

    ``op_times``: operation name -> robot -> its learned mean time (s). Without a learned
    time for every operation of the recipe the bound is ``None`` (not yet known).
    ``paces``: the same, as each robot runs now (the fleet bound's times; ``op_times`` if
    not given).
    """
    recipe = cell.recipe
    best: dict[str, float] = {}
    for op in recipe.ops:
        times = [t for r, t in op_times.get(op.name, {}).items() if t > 0]
        if times:
            best[op.name] = min(times)
    missing = sorted(op.name for op in recipe.ops if op.name not in best)
    resources: dict[str, float] = {}
    for f in cell.feeders:
        sources = {f.name, f.conveyor} - {""}
        need = sum(1 for op in recipe.ops if op.part == f.part and op.src in sources)
        if need and f.interval > 0:
            resources[f"feeder:{f.name}"] = HOUR_S / (f.interval * need)
    if not missing:
        up = [r for r in cell.robots if r.name in robots_up]
        work = sum(best.values())
        if up and work > 0:
            resources["robots"] = HOUR_S * len(up) / work
        for skill in sorted({op.skill for op in recipe.ops}):
            able = [r for r in up if skill in r.capabilities]
            skill_work = sum(best[op.name] for op in recipe.ops if op.skill is skill)
            if skill_work > 0:
                resources[f"skill:{skill.value}"] = HOUR_S * len(able) / skill_work
        skilled = {op.name: {r.name for r in up if op.skill in r.capabilities} for op in recipe.ops}
        work_star, _weights = fleet_split(
            [
                {
                    r: t
                    for r, t in (paces or op_times).get(op.name, {}).items()
                    if r in skilled[op.name]
                }
                for op in recipe.ops
            ]
        )
        if work_star > 0 and HOUR_S / work_star < FLEET_TIGHTER * resources.get("robots", 0.0):
            resources["fleet"] = HOUR_S / work_star
        fixtures = len(recipe.fixtures) or len(cell.fixtures)
        chain = _longest_chain(recipe.ops, best)
        if fixtures and chain > 0:
            resources["fixtures"] = HOUR_S * fixtures / chain
    known = not missing and bool(resources)
    binding = min(resources, key=lambda k: (resources[k], k)) if known else ""
    bound = resources[binding] if binding else None
    return {
        "bound_per_hour": _r(bound),
        "binding": binding,
        "resources_per_hour": {k: _r(v) for k, v in sorted(resources.items())},
        "op_times_s": {k: _r(v) for k, v in sorted(best.items())},
        "missing_times": missing,
        "throughput_per_hour": _r(throughput_per_hour),
        "throughput_over_bound": _r(throughput_per_hour / bound) if bound else None,
    }


def fleet_split(ops: list[dict[str, float]]) -> tuple[float, dict[str, float]]:
    """A lower bound (the dual's best value found) on the least work per unit of the busiest
    robot, each operation's work split over the robots that have a time for it, and the
    dual's weights that give it (robot -> weight, summing to 1: how much a second of that
    robot is worth to the cell's output). (0, {}) if some operation has no time.

    The times are taken to ``FLEET_DIGITS`` significant digits first and the answer is
    remembered for them (``_fleet_split``): the KPIs are published once a sim second and
    the learned times move by less than that between most of them, so the 300 ascent steps
    are not run again for the same bound (they were a third of an events run's time). The
    answer depends on the times alone, not on what was remembered before."""
    key = tuple(
        tuple(sorted((r, float(f"{t:.{FLEET_DIGITS}g}")) for r, t in o.items() if t > 0))
        for o in ops
    )
    best, weights = _fleet_split(key)
    return best, dict(weights)


FLEET_DIGITS = 3
"""Significant digits of the times the fleet bound is computed from (it moves by under 0.1%)."""


@functools.lru_cache(maxsize=256)
def _fleet_split(
    ops: tuple[tuple[tuple[str, float], ...], ...],
) -> tuple[float, tuple[tuple[str, float], ...]]:
    """``fleet_split`` of times already rounded, as tuples (hashable, so remembered)."""
    if not ops or any(not o for o in ops):
        return 0.0, ()
    names = sorted({r for o in ops for r, _t in o})
    indexed = [sorted((names.index(r), t) for r, t in o) for o in ops]
    y = [1.0 / len(names)] * len(names)
    best, best_y = 0.0, list(y)
    for k in range(FLEET_STEPS):
        value, grad = 0.0, [0.0] * len(names)
        for o in indexed:
            i, t = o[0]
            least = y[i] * t
            for j, tj in o[1:]:  # the least y t, the lowest index of a tie
                if y[j] * tj < least:
                    i, t, least = j, tj, y[j] * tj
            value += least
            grad[i] += t
        if value > best:
            best, best_y = value, list(y)
        norm = sum(g * g for g in grad) ** 0.5 or 1.0
        step = 0.5 / (k + 1) ** 0.5
        y = _simplex([yi + step * g / norm for yi, g in zip(y, grad, strict=True)])
    return best, tuple(zip(names, best_y, strict=True))


def _simplex(v: list[float]) -> list[float]:
    """The point of the probability simplex nearest ``v`` (Euclidean projection)."""
    u = sorted(v, reverse=True)
    total, theta = 0.0, 0.0
    for i, ui in enumerate(u, 1):
        total += ui
        t = (total - 1.0) / i
        if ui - t > 0:
            theta = t
    return [max(0.0, x - theta) for x in v]


def _longest_chain(ops: Any, times: Mapping[str, float]) -> float:
    """The longest path of operation times through the recipe's ``after`` graph."""
    ends: dict[str, float] = {}
    pending = list(ops)
    while pending:
        ready = [op for op in pending if all(a in ends for a in op.after)]
        if not ready:
            break  # a cycle the schema would have refused: nothing more to chain
        for op in ready:
            ends[op.name] = max((ends[a] for a in op.after), default=0.0) + times[op.name]
            pending.remove(op)
    return max(ends.values(), default=0.0)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
