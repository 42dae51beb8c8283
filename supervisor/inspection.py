"""Judging an inspection: what the camera (and a test stand's gauges) saw against the recipe.

A pure function of the recipe and the world's ``Inspection``, so it can be
tested alone and read without the supervisor around it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from bus.cellspec import OperationSpec, RecipeSpec
from bus.enums import Skill
from bus.messages import Inspection, MemberPose


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a unit passed, why not, and the fields of its ``inspected`` event."""

    ok: bool
    reason: str
    fields: dict[str, Any]


def judge(recipe: RecipeSpec, inspection: Inspection | None) -> Verdict:
    """Every part the recipe joins must be seen; screws, if the recipe drives any, fastened;
    and with a ``tolerance`` (a test stand), every join within it of its pose."""
    placed = [o for o in recipe.ops if o.skill is Skill.PICK_PLACE and o.part != recipe.base]
    want = sorted(o.part for o in placed)
    seen = sorted(inspection.kinds) if inspection else []
    fastened = bool(inspection and inspection.fastened)
    screws = any(o.skill is Skill.FASTEN for o in recipe.ops)
    ok = seen == want and (fastened or not screws)
    reason = f"inspection: saw {seen}, fastened={fastened}"
    worst: list[Any] = []
    if ok and recipe.tolerance > 0 and inspection is not None:
        worst = worst_join(placed, inspection.members)
        if worst and worst[1] > recipe.tolerance:
            ok = False
            reason = (
                f"test: {worst[0]} off its pose by {worst[1] * 1e3:.1f} mm "
                f"(tolerance {recipe.tolerance * 1e3:.1f} mm)"
            )
    fields: dict[str, Any] = {"ok": ok, "seen": seen, "fastened": fastened}
    if recipe.tolerance > 0:
        fields["worst"] = [worst[0], round(worst[1] * 1e3, 2)] if worst else []
    return Verdict(ok, "" if ok else reason, fields)


def worst_join(placed: list[OperationSpec], members: tuple[MemberPose, ...]) -> list[Any]:
    """[part kind, error in metres] of the join furthest off its pose ([] if none measured).

    A stacked part is judged against the part it was joined onto (each join on
    its own: contacts settle a stack by about a millimetre a join, which is no
    fault of any one join); any other part against its place on the base.
    """
    measured = {m.kind: (m.dx, m.dy, m.dz) for m in members}
    worst: list[Any] = []
    below_want, below_got = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    for o in placed:
        got = measured.get(o.part)
        if got is None:
            continue
        if o.stack:
            want = tuple(w - b for w, b in zip(o.offset, below_want, strict=True))
            rel = tuple(g - b for g, b in zip(got, below_got, strict=True))
            off = math.dist(rel, want)
            below_want, below_got = o.offset, got
        else:
            off = math.dist(got, o.offset)
        if not worst or off > worst[1]:
            worst = [o.part, off]
    return worst
