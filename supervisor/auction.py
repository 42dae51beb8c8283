"""Contract-net allocation: calls for bids, awards, and the idle-time accounting.

Every ready operation whose stations are free and whose material is there is
auctioned to the robots that are in Execute, have the skill, reach all its
stations and have room in their queue; each bids its finish time. Two ticks
later (the call reaches them at k+1, their bids come back at k+2) the earliest
finish wins, ties to the lower name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus.cellspec import Pose
from bus.enums import PackMLState, Skill
from bus.messages import Award, CallForBids
from bus.participant import Outbox
from supervisor import recovery
from supervisor.plan import RETRY_NS, Op, OpState

if TYPE_CHECKING:
    from supervisor.supervisor import RobotView, Supervisor

AUCTION_TICKS = 2
"""A call for bids sent at tick k is answered at k+1 and read at k+2."""


def material(sup: Supervisor, op: Op) -> str:
    """The part this operation would move, or "" if none is there yet."""
    if op.part:
        return op.part
    if op.spec.skill is not Skill.PICK_PLACE:
        return "-"
    taken = {o.part for o in sup.ops.values() if o.part and o.state is not OpState.DONE}
    for p in sup.ledger.at(f"feeder:{op.src}"):
        if sup.ledger.kind(p) == op.spec.part and p not in taken:
            return p
    return ""


def poses(sup: Supervisor, op: Op) -> list[Pose]:
    """Every place a robot must reach for ``op``: its stations, and where a recovery picks."""
    out = [sup.stations[s].pose for s in op.stations]
    pick = recovery.pick_pose(op)
    return out if pick is None else [pick, *out]


def candidates(sup: Supervisor, op: Op) -> list[RobotView]:
    where = poses(sup, op)
    return [
        r
        for r in sup.robots.values()
        if r.alive
        and r.state is PackMLState.EXECUTE
        and op.spec.skill in r.spec.capabilities
        and len(r.ops) < 2
        and all(r.spec.reaches(p) for p in where)
    ]


def open_auctions(sup: Supervisor, out: Outbox) -> None:
    for unit in sup.units.values():
        if unit.finished_ns >= 0:
            continue
        for op in unit.ops.values():
            if op.state is not OpState.READY or sup.now < op.not_before_ns:
                continue
            if not recovery.ready(sup, op):
                continue
            if any(st in sup.busy_stations for st in op.stations):
                continue
            if op.dst in sup.watch.jammed:
                continue  # hold: nothing goes onto a jammed belt
            if op.attempts and sup.looks_done(op):
                # taken back from a robot the supervisor could not hear, but the world
                # shows it done: settle it rather than do it twice
                sup.events.write(sup.now, "op_settled", op=op.op_id, robot=op.robot, how="world")
                sup.complete(op)
                continue
            part = material(sup, op)
            if not part:
                continue
            robots = candidates(sup, op)
            if not robots:
                continue
            if op.spec.skill is Skill.PICK_PLACE:
                op.part = part
            op.state, op.auction_tick = OpState.AUCTION, sup.tick
            sup.bids[op.op_id] = []
            for st in op.stations:
                sup.busy_stations[st] = op.op_id
            msg = CallForBids(op.message())
            for r in robots:
                out.send(r.spec.name, msg)
            names = [r.spec.name for r in robots]
            sup.events.write(sup.now, "auction", op=op.op_id, part=op.part, robots=names)


def close_auctions(sup: Supervisor, out: Outbox) -> None:
    for op_id in sorted(sup.bids):
        op = sup.ops[op_id]
        if op.state is not OpState.AUCTION or sup.tick < op.auction_tick + AUCTION_TICKS:
            continue
        bids = sorted(b for b in sup.bids.pop(op_id) if sup.robots[b[1]].alive)
        if not bids:
            sup.release(op)
            op.state, op.not_before_ns = OpState.READY, sup.now + RETRY_NS
            if op.pick:
                op.pick = ()  # no robot would plan it: decided afresh, within MAX_RECOVERIES
            elif op.spec.part != op.base_kind and op.spec.skill is Skill.PICK_PLACE:
                op.part = ""
            sup.events.write(sup.now, "auction_failed", op=op_id)
            continue
        finish, winner = bids[0]
        op.state, op.robot, op.awarded_ns = OpState.AWARDED, winner, sup.now
        sup.robots[winner].ops.append(op_id)
        out.send(winner, Award(op.message(), winner, op.attempts))
        sup.events.write(
            sup.now,
            "op_awarded",
            op=op_id,
            robot=winner,
            finish_ns=finish,
            bids=[[r, f] for f, r in bids],
        )


def account(sup: Supervisor) -> None:
    """Sample starved / blocked time for robots idle in Execute."""
    tick_ns = sup.cell.tick_ns
    ready = [o for o in sup.ops.values() if o.state is OpState.READY]
    for name, robot in sup.robots.items():
        if not robot.alive or robot.state is not PackMLState.EXECUTE or robot.ops:
            continue
        doable = [
            o
            for o in ready
            if o.spec.skill in robot.spec.capabilities
            and all(robot.spec.reaches(p) for p in poses(sup, o))
        ]
        stats = sup.kpis.robots[name]
        if any(st in sup.busy_stations for o in doable for st in o.stations):
            stats.blocked_ns += tick_ns
        else:
            stats.starved_ns += tick_ns
