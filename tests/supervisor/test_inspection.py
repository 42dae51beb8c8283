"""The judge of an inspection, alone: the recipes of the shipped cells, inspections as the
world measures them."""

from __future__ import annotations

from pathlib import Path

from bus.messages import Inspection, MemberPose
from cells.schema import load_cell
from supervisor.inspection import judge

ROOT = Path(__file__).resolve().parents[2]
ARM = load_cell(ROOT / "cells" / "robot_building.toml").recipe
PHONE = load_cell(ROOT / "cells" / "assembly.toml").recipe


def stacked(off: dict[str, tuple[float, float, float]] | None = None) -> Inspection:
    """An arm as built: every stacked part where the recipe puts it, plus ``off``."""
    members = []
    for op in (o for o in ARM.ops if o.stack):
        dx, dy, dz = op.offset
        ex, ey, ez = (off or {}).get(op.part, (0.0, 0.0, 0.0))
        members.append(MemberPose(f"{op.part}-1", op.part, dx + ex, dy + ey, dz + ez))
    return Inspection("arm_base-1", tuple(sorted(m.kind for m in members)), False, tuple(members))


def test_an_arm_built_to_its_poses_passes_without_screws() -> None:
    verdict = judge(ARM, stacked())
    assert verdict.ok and verdict.fields["worst"][1] == 0.0


def test_a_stack_that_settles_a_millimetre_a_join_passes() -> None:
    sink = {
        o.part: (0.0, 0.0, -0.001 * (i + 1)) for i, o in enumerate(x for x in ARM.ops if x.stack)
    }
    assert judge(ARM, stacked(sink)).ok


def test_one_join_off_beyond_the_tolerance_fails_naming_it() -> None:
    verdict = judge(ARM, stacked({"link_3": (0.006, 0.0, 0.0)}))
    assert not verdict.ok and verdict.reason.startswith("test: link_3 off its pose by 6.0 mm")


def test_a_missing_part_fails() -> None:
    full = stacked()
    verdict = judge(ARM, Inspection(full.unit, full.kinds[1:], False, full.members[1:]))
    assert not verdict.ok and verdict.reason.startswith("inspection: saw")


def test_a_phone_needs_its_screws_and_is_not_measured() -> None:
    kinds = ("battery", "board", "screen")
    assert judge(PHONE, Inspection("frame-1", kinds, True)).ok
    assert not judge(PHONE, Inspection("frame-1", kinds, False)).ok
    assert "worst" not in judge(PHONE, Inspection("frame-1", kinds, True)).fields
