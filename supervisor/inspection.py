"""Judging an inspection: what the camera (and a test stand's gauges) saw against the recipe.

A pure function of the recipe and the world's ``Inspection``, so it can be
tested alone and read without the supervisor around it.

Besides the camera's check (every part there, the screws driven) a recipe may
set quality checks per step (``docs/cell-file.md``): a placed part's
``tolerance`` (its centre this far from its place in the base's plane, at
most) and a fastening's ``min_torque`` (every screw driven to at least this).
A step over its limit is a **defect**, named with the step and the reading.
The gauges' decision errs at the recipe's rates: with ``false_accept`` a
defective unit passes, with ``false_reject`` a good one fails (naming the step
nearest its limit, with its true reading), decided by the world's own draw
(``Inspection.draw``), so a run replays the same. The camera's check does not
err.
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
    defective: bool = False
    """Whether the unit really is defective (a step over its limit), whatever was decided:
    the truth a false accept or reject is counted against (never logged)."""
    defects: tuple[tuple[str, str], ...] = ()
    """The steps the inspection rejected the unit for, with the reading: (step, detail)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One step's quality check at one inspection: its reading against its limit."""

    step: str
    ratio: float
    """Reading over limit: above 1 is a defect (a placement's error over its tolerance, the
    minimum torque over the lowest screw's)."""
    detail: str


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
    if not ok or inspection is None:
        return Verdict(ok, "" if ok else reason, fields, defective=not ok)
    checks = step_checks(recipe, inspection)
    over = [c for c in checks if c.ratio > 1.0]
    draw = inspection.draw if 0.0 <= inspection.draw <= 1.0 else 1.0
    if over and draw < recipe.false_accept:
        return Verdict(True, "", fields, defective=True)  # a miss: the gauges passed it
    if not over and checks and draw < recipe.false_reject:
        over = [max(checks, key=lambda c: c.ratio)]  # a false alarm on the nearest its limit
    if not over:
        return Verdict(True, "", fields)
    defects = tuple((c.step, c.detail) for c in over)
    fields.update(ok=False, defects=[list(d) for d in defects])
    reason = "defects: " + "; ".join(f"{step}: {detail}" for step, detail in defects)
    return Verdict(
        False, reason, fields, defective=any(c.ratio > 1.0 for c in over), defects=defects
    )


def step_checks(recipe: RecipeSpec, inspection: Inspection) -> list[Check]:
    """Every quality check a recipe's steps set that the inspection could read, in order."""
    out: list[Check] = []
    placed = [o for o in recipe.ops if o.skill is Skill.PICK_PLACE and o.part != recipe.base]
    errors = planar_errors(placed, inspection.members)
    for o in recipe.ops:
        if o.tolerance > 0 and o.name in errors:
            off = errors[o.name]
            mm = f"{o.part} {off * 1e3:.1f} mm off its place (tolerance {o.tolerance * 1e3:.1f} mm)"
            out.append(Check(o.name, off / o.tolerance, mm))
        if o.min_torque > 0 and inspection.fastened:
            torques = [t for t in inspection.torques if math.isfinite(t)]
            if not torques:
                continue  # screws driven before torques were kept (a resumed unit): not read
            low = min(torques)
            under = sum(1 for t in torques if t < o.min_torque)
            text = (
                f"{under} of {len(torques)} screws under {o.min_torque:g} N m "
                f"(lowest {low:.3f} N m)"
            )
            out.append(Check(o.name, o.min_torque / max(low, 1e-9), text))
    return out


def planar_errors(placed: list[OperationSpec], members: tuple[MemberPose, ...]) -> dict[str, float]:
    """Step name -> how far its part's centre lies from its place in the base's plane (m).

    A stacked part is measured against the part it was joined onto (as ``worst_join``);
    heights are left out: contacts settle every join by a millimetre or two, which is no
    placement's fault.
    """
    measured = {m.kind: (m.dx, m.dy) for m in members}
    out: dict[str, float] = {}
    below_want, below_got = (0.0, 0.0), (0.0, 0.0)
    for o in placed:
        got = measured.get(o.part)
        if got is None:
            continue
        want = (o.offset[0], o.offset[1])
        if o.stack:
            want = (want[0] - below_want[0], want[1] - below_want[1])
            rel = (got[0] - below_got[0], got[1] - below_got[1])
            out[o.name] = math.dist(rel, want)
            below_want, below_got = (o.offset[0], o.offset[1]), got
        else:
            out[o.name] = math.dist(got, want)
    return out


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
