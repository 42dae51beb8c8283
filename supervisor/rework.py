"""Rework: a unit failed only for its fastenings is fastened and inspected again.

A recipe with ``rework = true`` (``docs/cell-file.md``) lets a unit whose
inspection named only fastening steps go back: its screws are backed out and
driven anew (the world drives them again, with whichever screwdriver does the
step this time) and it is inspected again. A placement defect is not reworked:
a part placed on a unit is joined to it for good, so the unit is scrapped, as
a unit failed for anything else is, or one that failed again after its
rework. The operations of the rework are the unit's own fasten and inspect
steps, given out afresh under their ids (``Units`` replaces the settled ones),
so everything after them waits for them again; their ids say which rework
they are (``<unit>/fasten~rework1``): a robot asked again under an id it did
answers with its old report, never doing the work twice.
"""

from __future__ import annotations

from bus.cellspec import RecipeSpec
from bus.enums import Skill
from supervisor.plan import Op, Unit
from supervisor.units import Units

MAX_REWORKS = 1
"""Reworks of one unit before a failed inspection scraps it."""


def reworkable(recipe: RecipeSpec, unit: Unit, steps: tuple[str, ...]) -> bool:
    """Whether a unit rejected for ``steps`` goes back rather than to scrap."""
    if not recipe.rework or not steps or unit.reworks >= MAX_REWORKS:
        return False
    skills = {o.name: o.skill for o in recipe.ops}
    return all(skills.get(s) is Skill.FASTEN for s in steps)


def redo(units: Units, unit: Unit, steps: tuple[str, ...]) -> list[str]:
    """Give the fastening ``steps`` and every inspection of the unit out again; the step
    names, in recipe order. The unit is no longer taken for fastened (its screws are backed
    out), so nothing settles the new fastening from what the world showed before."""
    redone = []
    for name, old in list(unit.ops.items()):
        if name in steps or old.spec.skill is Skill.INSPECT:
            op = Op(unit.unit_id, old.spec, old.src, old.dst, old.at, base_kind=old.base_kind)
            op.rework = unit.reworks + 1
            unit.ops[name] = units.ops[op.op_id] = op
            redone.append(name)
    unit.reworks += 1
    units.fastened.discard(unit.unit_id)
    return redone
