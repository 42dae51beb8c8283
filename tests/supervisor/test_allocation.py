"""The allocation policies alone: decisions from a read-only view, nothing changed.

Each test builds the state by hand (robots heard in Execute, a unit started,
calls and bids placed through ``Assignments``) and asks a policy directly,
then checks the decision and that the supervisor's snapshot is untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.cellspec import CellSpec
from bus.enums import PackMLState, WorldEventKind
from bus.errors import ConfigError
from bus.messages import Award, CallForBids, WorldEvent
from cells.schema import load_cell, parse_cell
from supervisor.allocation import (
    Assign,
    Call,
    ContractNet,
    FirstComeFirstServed,
    Unanswered,
    make_policy,
)
from supervisor.plan import Op, OpState, make_unit
from tests.kit.supervisor import ROBOTS, TICK, Harness

ROOT = Path(__file__).resolve().parents[2]


def ready_cell(policy: str = "") -> tuple[Harness, Op]:
    """Every robot in Execute; frame-0001 waiting at the infeed as a unit's load_frame, READY."""
    h = Harness(policy=policy)
    h.step(*(h.hb(r, PackMLState.EXECUTE) for r in ROBOTS))
    sup = h.sup
    sup.ledger.create("frame-0001", "frame", "conveyor:infeed")
    sup.units.add(make_unit(sup.cell.recipe, "frame-0001", "F1", 0))
    op = sup.ops["frame-0001/load_frame"]
    assert op.state is OpState.READY
    return h, op


def test_contract_net_calls_the_robots_in_execute_that_reach_every_station() -> None:
    h, op = ready_cell()
    before = h.sup.snapshots.take()
    decision = ContractNet().offer(h.sup.view, op)
    # only R1 and R3 (on the infeed's side) reach both the infeed and F1
    assert decision == Call(op.op_id, ("R1", "R3"))
    assert h.sup.snapshots.take() == before, "a policy changes nothing"


def test_contract_net_leaves_out_robots_not_in_execute_or_with_a_full_queue() -> None:
    h, op = ready_cell()
    h.sup.robots["R1"].state = PackMLState.HELD
    assert ContractNet().offer(h.sup.view, op) == Call(op.op_id, ("R3",))
    for other in ("a/x", "a/y"):
        h.sup.assignments.queues.setdefault("R3", []).append(other)
    assert ContractNet().offer(h.sup.view, op) is None


def bid_on(h: Harness, op: Op, bids: dict[str, int]) -> None:
    sup = h.sup
    sup.assignments.call(op, sup.time.tick)
    for robot, finish in bids.items():
        assert sup.assignments.bid(op.op_id, robot, finish)
    sup.time.tick += 2  # the bids are read two ticks after the call


def test_contract_net_awards_the_earliest_finish_and_ties_go_to_the_lower_name() -> None:
    h, op = ready_cell()
    bid_on(h, op, {"R3": 5 * TICK, "R1": 5 * TICK, "R2": 9 * TICK})
    before = h.sup.snapshots.take()
    (decision,) = ContractNet().close(h.sup.view)
    assert decision == Assign(
        op.op_id, "R1", 5 * TICK, (("R1", 5 * TICK), ("R3", 5 * TICK), ("R2", 9 * TICK))
    )
    assert h.sup.snapshots.take() == before


def test_contract_net_waits_two_ticks_ignores_the_dead_and_reports_no_takers() -> None:
    h, op = ready_cell()
    h.sup.assignments.call(op, h.sup.time.tick)
    h.sup.assignments.bid(op.op_id, "R1", TICK)
    assert ContractNet().close(h.sup.view) == [], "the bids are not all in yet"
    h.sup.time.tick += 2
    h.sup.robots["R1"].alive = False
    assert ContractNet().close(h.sup.view) == [Unanswered(op.op_id)]


def test_a_declined_bid_is_heard_but_not_kept() -> None:
    h, op = ready_cell()
    bid_on(h, op, {"R1": -1})
    assert ContractNet().close(h.sup.view) == [Unanswered(op.op_id)]
    assert not h.sup.assignments.bid("no/such", "R1", TICK), "a bid for no open call is stale"


def test_fcfs_gives_the_operation_to_the_first_idle_robot_that_can_do_it() -> None:
    h, op = ready_cell()
    before = h.sup.snapshots.take()
    policy = FirstComeFirstServed()
    assert policy.offer(h.sup.view, op) == Assign(op.op_id, "R1")
    assert h.sup.snapshots.take() == before
    h.sup.assignments.queues["R1"] = ["other/op"]  # R1 is busy: the next able one
    assert policy.offer(h.sup.view, op) == Assign(op.op_id, "R3")
    h.sup.robots["R3"].alive = False
    assert policy.offer(h.sup.view, op) is None, "R2 and R4 do not reach the infeed"
    assert policy.close(h.sup.view) == []


def test_fcfs_in_the_loop_awards_at_once_without_a_call_for_bids() -> None:
    h = Harness(policy="fcfs")
    h.step(*(h.hb(r, PackMLState.EXECUTE) for r in ROBOTS))
    spawn = WorldEvent(0, WorldEventKind.SPAWNED, "frame-0001", "frame", "conveyor:infeed", "")
    h.sensors["infeed.end"] = "frame-0001"
    sent = h.step(events=(spawn,))
    assert not [m for _, m in sent if isinstance(m, CallForBids)]
    awards = [(d, m.op.op_id) for d, m in sent if isinstance(m, Award)]
    assert awards == [("R1", "frame-0001/load_frame")]
    op = h.sup.ops["frame-0001/load_frame"]
    assert (op.state, op.robot) == (OpState.AWARDED, "R1")
    assert h.sup.assignments.queue("R1") == (op.op_id,)
    assert h.sup.view.busy(op.stations), "its stations are held until it is settled"


def test_a_policy_is_named_in_the_cell_file_or_refused_with_the_choices() -> None:
    cell = load_cell(ROOT / "cells" / "assembly.toml")
    assert cell.policy == "contract_net"
    assert make_policy("fcfs").name == "fcfs"
    with pytest.raises(ConfigError, match="contract_net, fcfs"):
        make_policy("random")
    import tomllib

    data = tomllib.loads((ROOT / "cells" / "assembly.toml").read_text())
    data["cell"]["policy"] = "fcfs"
    assert parse_cell(data).policy == "fcfs"
    data["cell"]["policy"] = "random"
    with pytest.raises(ConfigError, match=r"cell\.policy: 'random' is not one of"):
        parse_cell(data)


def test_the_launcher_passes_the_policy_to_a_supervisor_process(tmp_path: Path) -> None:
    import dataclasses

    from cells.launch import Children, RunOptions

    cell: CellSpec = dataclasses.replace(load_cell(ROOT / "cells" / "assembly.toml"), policy="fcfs")
    cmd = Children(cell, "ipc:///nowhere", tmp_path, RunOptions()).cmds["supervisor"]
    assert cmd[cmd.index("--policy") + 1] == "fcfs"
