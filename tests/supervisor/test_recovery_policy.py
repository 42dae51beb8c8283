"""The recovery policy alone: what it decides for a part that fell, changing nothing.

The battery is dropped in the scripted world (``tests.kit.supervisor``) and the
world says where it came to rest; before the supervisor gets to apply
anything, ``recovery.decide`` is asked directly on the supervisor's view.
(``test_recovery`` follows the same cases through the whole loop.)
"""

from __future__ import annotations

from typing import Any

import pytest

from bus.enums import WorldEventKind
from supervisor import recovery
from tests.kit.supervisor import BATTERY_OP, REACHABLE, World, battery_dropped, lying


def decided(**rest: Any) -> tuple[World, recovery.Decision]:
    """The decision on the dropped battery, lying as ``rest`` says (the policy asked twice:
    a pure function gives the same answer and leaves the state as it was)."""
    w = World()
    where = rest.pop("where", "floor")
    battery_dropped(w, rest=w.event(WorldEventKind.SETTLED, "battery-0001", where, **rest))
    before = w.sup.snapshots.take()
    first = recovery.decide(w.sup.view, w.sup.ops[BATTERY_OP])
    assert recovery.decide(w.sup.view, w.sup.ops[BATTERY_OP]) == first
    assert w.sup.snapshots.take() == before, "a policy changes nothing"
    return w, first


def test_a_part_within_reach_is_recovered_by_the_robots_that_reach_it() -> None:
    _, d = decided(pose=lying("battery-0001", *REACHABLE))
    assert isinstance(d, recovery.Recover)
    assert d.pose[:3] == REACHABLE and d.robots == ("R2", "R4")
    assert (d.at, d.tilt_deg) == ("floor", 0.0)


def test_a_part_back_on_its_tray_is_picked_there_as_usual() -> None:
    _, d = decided(where="feeder:battery_tray", pose=lying("battery-0001", -0.19, 0.0, 0.153))
    assert d == recovery.AsIs(at_station=True)


def test_a_part_on_its_spot_on_the_unit_has_landed() -> None:
    _, d = decided(where="unit:frame-0001", pose=lying("battery-0001", -0.033, 0.281, 0.1605))
    assert d == recovery.Landed()


@pytest.mark.parametrize(
    ("rest", "why"),
    [
        ({"pose": lying("battery-0001", *REACHABLE, tilt_deg=180.0)}, "upside down"),
        ({"pose": lying("battery-0001", *REACHABLE), "touching": ("frame-0001",)}, "against"),
        ({"pose": lying("battery-0001", 1.2, -1.2, 0.0025)}, "out of reach"),
        ({"where": "conveyor:outfeed", "pose": lying("battery-0001", 0.8, 0.0, 0.15)}, "belt"),
    ],
)
def test_a_part_that_cannot_be_picked_is_scrapped_with_the_reason(
    rest: dict[str, Any], why: str
) -> None:
    _, d = decided(**rest)
    assert isinstance(d, recovery.Scrap) and d.fell and why in d.reason


def test_nothing_is_decided_while_the_part_is_in_a_gripper() -> None:
    w = World()
    battery_dropped(w, rest=w.event(WorldEventKind.FASTENED, "frame-0001", "fixture:F1"))
    assert recovery.decide(w.sup.view, w.sup.ops[BATTERY_OP]) == recovery.Wait()


def test_an_operation_that_moved_nothing_is_allocated_as_it_is() -> None:
    w = World()
    battery_dropped(w, rest=None)
    fasten = w.sup.ops["frame-0001/fasten"]
    assert recovery.decide(w.sup.view, fasten) == recovery.AsIs()
    assert recovery.after_requeue(w.sup.view, fasten) is None
