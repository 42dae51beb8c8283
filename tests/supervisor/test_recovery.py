"""A part that fell: picked up again where a robot can, else scrapped and replaced.

The supervisor is stepped by hand: the world's events (where the part came to
rest, how it lies) and the robots' messages are scripted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bus.enums import OpStatus, WorldEventKind
from bus.messages import (
    Bid,
    CallForBids,
    OpReport,
    OpStarted,
)
from supervisor import Supervisor
from supervisor.plan import OpState
from supervisor.recovery import MAX_RECOVERIES
from tests.kit.supervisor import (
    BATTERY_OP,
    REACHABLE,
    TICK,
    World,
    award,
    battery_dropped,
    loaded_unit,
    lying,
    until_called,
)


def test_a_part_that_fell_within_reach_is_picked_up_from_where_it_lies() -> None:
    w = World()
    battery_dropped(w)
    sent = until_called(w, BATTERY_OP)
    (rec,) = w.log("op_recovery")
    assert (rec["op"], rec["part"], rec["at"], rec["recovery"]) == (
        BATTERY_OP,
        "battery-0001",
        "floor",
        1,
    )
    assert rec["pose"] == list(REACHABLE) and rec["tilt_deg"] == 0.0
    # only the robots that reach both where it lies and F1 are asked
    calls = [(d, m.op) for d, m in sent if isinstance(m, CallForBids)]
    assert sorted(d for d, _ in calls) == rec["robots"] == ["R2", "R4"]
    op = calls[0][1]
    assert (op.part, op.src, op.dst) == ("battery-0001", "", "F1")
    assert op.pick is not None and (op.pick.x, op.pick.y, op.pick.z) == REACHABLE
    # the recovery runs as the same operation: floor -> gripper -> unit, then done
    go = award(w, sent, "R4")
    assert go.op.pick == op.pick
    w.step(
        ("R4", OpStarted(BATTERY_OP, "R4", w.k * TICK)),
        events=(w.event(WorldEventKind.GRASPED, "battery-0001", "gripper:R4"),),
    )
    w.step(events=(w.event(WorldEventKind.ATTACHED, "battery-0001", "unit:frame-0001"),))
    w.step(("R4", OpReport(BATTERY_OP, "R4", OpStatus.DONE, "", w.k * TICK, None, go.attempt)))
    assert w.sup.ops[BATTERY_OP].state is OpState.DONE
    path = [e["dst"] for e in w.log("part_moved") if e["part"] == "battery-0001"]
    assert path == ["gripper:R2", "floor", "gripper:R4", "unit:frame-0001"]
    assert not w.log("part_scrapped") and w.sup.ledger.check()


def test_nothing_is_decided_while_the_part_is_still_falling() -> None:
    w = World()
    battery_dropped(w, rest=w.event(WorldEventKind.FASTENED, "frame-0001", "fixture:F1"))
    for _ in range(30):
        sent = w.step()
        assert not any(isinstance(m, CallForBids) and m.op.op_id == BATTERY_OP for _, m in sent)
    assert w.sup.ledger.location("battery-0001") == "gripper:R2"
    assert not w.log("op_recovery") and not w.log("part_scrapped")


def scrapped_because(rest: dict[str, Any], where: str = "floor") -> str:
    """Drop the battery, let the world report ``rest``; the part must be scrapped and
    replaced from the tray: return the reason logged."""
    w = World()
    battery_dropped(w, rest=None)
    # a second report of where it lies, as the world's audit would send it
    w.step(events=(w.event(WorldEventKind.SETTLED, "battery-0001", where, **rest),))
    w.step(events=(w.event(WorldEventKind.SPAWNED, "battery-0002", "feeder:battery_tray"),))
    for _ in range(20):
        if w.log("part_scrapped"):
            break
        w.step()
    (scrap,) = w.log("part_scrapped")
    assert scrap["part"] == "battery-0001"
    assert "battery-0001" in w.retired
    assert w.sup.ledger.location("battery-0001") == "scrap" and w.sup.ledger.check()
    assert not w.log("op_recovery")
    # the operation goes on with the next battery from the tray
    sent = until_called(w, BATTERY_OP)
    op = next(m.op for _, m in sent if isinstance(m, CallForBids))
    assert (op.part, op.src, op.pick) == ("battery-0002", "battery_tray", None)
    return str(scrap["reason"])


def test_a_part_lying_upside_down_is_scrapped_and_replaced() -> None:
    upside = lying("battery-0001", *REACHABLE, tilt_deg=180.0)
    assert scrapped_because({"pose": upside}) == "fell: it lies upside down"


def test_a_part_lying_askew_is_scrapped_and_replaced() -> None:
    askew = lying("battery-0001", *REACHABLE, tilt_deg=12.0)
    assert scrapped_because({"pose": askew}) == "fell: it lies 12 degrees askew"


def test_a_part_lying_against_another_is_scrapped_and_replaced() -> None:
    rest = {"pose": lying("battery-0001", *REACHABLE), "touching": ("frame-0001",)}
    assert scrapped_because(rest) == "fell: it lies against frame-0001"


def test_a_part_no_gripper_can_come_down_to_is_scrapped_and_replaced() -> None:
    rest = {"pose": lying("battery-0001", *REACHABLE), "blocked": True}
    assert "keeps a gripper from coming down to it" in scrapped_because(rest)


def test_a_part_out_of_every_robots_reach_is_scrapped_and_replaced() -> None:
    rest = {"pose": lying("battery-0001", 1.2, -1.2, 0.0025)}
    assert scrapped_because(rest) == "fell: out of reach of every robot that could pick it"


def test_a_part_on_a_belt_is_scrapped_and_replaced() -> None:
    rest = {"pose": lying("battery-0001", 0.8, -0.55, 0.1525)}
    reason = scrapped_because(rest, where="conveyor:outfeed")
    assert reason == "fell: it came to rest on the outfeed belt, which carries it away"


def test_a_part_that_fell_onto_its_spot_on_the_unit_counts_as_placed() -> None:
    w = World()
    spot = lying("battery-0001", -0.033, 0.281, 0.1605)
    battery_dropped(
        w, rest=w.event(WorldEventKind.ATTACHED, "battery-0001", "unit:frame-0001", pose=spot)
    )
    for _ in range(20):
        w.step()
    assert w.sup.ops[BATTERY_OP].state is OpState.DONE
    (settled,) = w.log("op_settled")
    assert (settled["op"], settled["how"]) == (BATTERY_OP, "landed")
    assert not w.log("part_scrapped") and not w.log("op_recovery")


def test_a_part_joined_to_its_unit_off_its_spot_is_scrapped() -> None:
    w = World()
    off = lying("battery-0001", 0.02, 0.28, 0.1605)  # over the board's spot
    battery_dropped(
        w, rest=w.event(WorldEventKind.ATTACHED, "battery-0001", "unit:frame-0001", pose=off)
    )
    for _ in range(20):
        w.step()
    (scrap,) = w.log("part_scrapped")
    assert scrap["reason"] == "fell: it came to rest on unit frame-0001, which it was joined to"
    assert w.sup.ops[BATTERY_OP].state is OpState.READY and w.sup.ops[BATTERY_OP].part == ""


def test_a_recovery_no_robot_will_plan_is_tried_a_few_times_then_scrapped() -> None:
    w = World()
    battery_dropped(w)
    for n in range(1, MAX_RECOVERIES + 1):
        until_called(w, BATTERY_OP)
        assert len(w.log("op_recovery")) == n
        w.step()
        w.step(("R2", Bid(BATTERY_OP, "R2", -1)), ("R4", Bid(BATTERY_OP, "R4", -1)))
    for _ in range(20):
        w.step()
    (scrap,) = w.log("part_scrapped")
    assert scrap["reason"] == f"fell: still down after {MAX_RECOVERIES} recoveries"
    first = w.log("op_recovery")[0]["t_ns"]
    failed = [e for e in w.log("auction_failed") if e["op"] == BATTERY_OP and e["t_ns"] > first]
    assert len(failed) == MAX_RECOVERIES


def test_a_frame_that_fell_while_loading_is_picked_up_for_its_fixture() -> None:
    w = World()
    w.step()
    w.sensors["infeed.end"] = "frame-0001"
    spawn = w.event(WorldEventKind.SPAWNED, "frame-0001", "conveyor:infeed")
    load = award(w, w.step(events=(spawn,)), "R1")
    w.sensors["infeed.end"] = ""
    w.step(events=(w.event(WorldEventKind.GRASPED, "frame-0001", "gripper:R1"),))
    w.step(("R1", OpReport(load.op.op_id, "R1", OpStatus.FAILED, "dropped", w.k * TICK, None)))
    # on F1's block but off its seat: the world calls that the floor
    off = lying("frame-0001", 0.028, 0.239, 0.1536)
    w.step(events=(w.event(WorldEventKind.SETTLED, "frame-0001", "floor", pose=off),))
    sent = until_called(w, load.op.op_id)
    op = next(m.op for _, m in sent if isinstance(m, CallForBids))
    assert (op.part, op.src, op.dst) == ("frame-0001", "", "F1")
    assert [e["op"] for e in w.log("op_recovery")] == ["frame-0001/load_frame"]
    assert not w.log("unit_scrapped")


def test_a_built_unit_dropped_while_unloading_is_scrapped_at_once() -> None:
    w = World()
    loaded_unit(w)
    unit = w.sup.units["frame-0001"]
    for name in ("place_battery", "place_board", "place_screen", "fasten", "inspect"):
        w.sup.assignments.release(unit.op(name))  # as if built: skip ahead to the unload
        unit.op(name).state = OpState.DONE
    w.step(events=(w.event(WorldEventKind.ATTACHED, "battery-0001", "unit:frame-0001"),))
    unload = unit.op("unload")
    unload.state = OpState.READY
    go = award(w, until_called(w, unload.op_id), "R3")
    w.step(events=(w.event(WorldEventKind.GRASPED, "frame-0001", "gripper:R3"),))
    w.step(("R3", OpReport(go.op.op_id, "R3", OpStatus.FAILED, "dropped", w.k * TICK, None)))
    (scrap,) = w.log("unit_scrapped")
    assert scrap["unit"] == "frame-0001"
    assert sorted(scrap["parts"]) == ["battery-0001", "frame-0001"]
    assert "not shipped unseen" in scrap["reason"]
    assert w.sup.ledger.check()


def test_the_journal_keeps_how_parts_lie_and_a_decided_recovery(tmp_path: Path) -> None:
    w = World(out_dir=tmp_path)
    battery_dropped(w)
    until_called(w, BATTERY_OP)
    before = w.sup.snapshots.take()
    assert before["units"]["units"]["frame-0001"]["ops"]["place_battery"]["pick"][:3] == list(
        REACHABLE
    )
    assert "battery-0001" in before["rests"]
    w.sup.close()
    again = Supervisor(w.sup.cell, out_dir=tmp_path, restore=True)
    after = again.snapshots.take()
    again.close()
    assert after == before
    assert (
        again.ops[BATTERY_OP].message("frame").pick == w.sup.ops[BATTERY_OP].message("frame").pick
    )
