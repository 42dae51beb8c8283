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

from collections.abc import Collection, Mapping
from typing import Any

from bus.cellspec import CellSpec

HOUR_S = 3600.0


def analyse(
    cell: CellSpec,
    op_times: Mapping[str, Mapping[str, float]],
    robots_up: Collection[str],
    throughput_per_hour: float,
) -> dict[str, Any]:
    """The bound per resource (units per hour), the binding one, and the run's share of it.

    ``op_times``: operation name -> robot -> its learned mean time (s). Without a learned
    time for every operation of the recipe the bound is ``None`` (not yet known).
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
