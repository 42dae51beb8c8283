"""When the supervisor must be ticked again: its own timers, for the event clock.

Everything else that moves the supervisor reaches it as a message (a robot's report, a
heartbeat, a reply) or as world news (an event, a changed sensor, a control request), and
the clock ticks it for those on its own. What is left are the deadlines it keeps itself:
a call for bids that closes, an operation that may be tried again, a robot silent too
long, a command not answered, a blacked-out sensor about to be stale, a lossy link about
to be quiet long enough, a part late on a belt, a resync, the KPIs of the next second.
The clock takes the earliest (and never goes longer than the cell's ``max_step_s``).
"""

from __future__ import annotations

from collections.abc import Iterable

from bus.cellspec import CellSpec
from bus.simtime import NS
from supervisor.allocation import AUCTION_TICKS
from supervisor.control import ControlDesk
from supervisor.fleet import COMMAND_RETRY_NS, Fleet
from supervisor.plan import OpState
from supervisor.sensors import STALE_NS, Sensors
from supervisor.units import Units
from supervisor.watch import JAM_MARGIN, JAM_SLACK_NS, LINK_OK_NS, Watch

FAR_NS = 1 << 62
"""No deadline at all (the clock's ``max_step_s`` still bounds the wait)."""


def deadlines(
    now: int,
    cell: CellSpec,
    units: Units,
    fleet: Fleet,
    desk: ControlDesk,
    sensors: Sensors,
    watch: Watch,
    resync_at: int,
) -> Iterable[int]:
    """Every sim time after ``now`` at which a timer of the supervisor runs out."""
    heartbeat_s = cell.heartbeat_s
    for op in units.ops.values():
        if op.state is OpState.AUCTION:
            yield cell.tick_at(op.auction_tick + AUCTION_TICKS)
        elif op.state is OpState.READY and op.not_before_ns > now:
            yield op.not_before_ns
    limit = int(3 * heartbeat_s * NS)
    for robot in fleet.views.values():
        if not robot.alive:
            continue
        yield robot.last_seen_ns + limit + 1
        if robot.pending_cmd:
            yield robot.pending_since_ns + COMMAND_RETRY_NS
        if robot.clear_after_ns > now:
            yield robot.clear_after_ns
    for wait in desk.waiting.values():
        yield wait.sent_ns + COMMAND_RETRY_NS
    for sensor, seen in sensors.seen.items():
        if seen < now and sensor not in sensors.stale:
            yield seen + STALE_NS + 1  # blacked out: stale then
    for link in watch.links.values():
        if link.lossy:
            yield link.last_gap_ns + LINK_OK_NS + 1
    for belt, since in watch.on_belt.values():
        travel = watch.travel_ns.get(belt)
        if travel is not None and belt not in watch.jammed:
            yield since + round(travel * JAM_MARGIN) + JAM_SLACK_NS + 1
    if resync_at > 0:
        yield resync_at
    yield (now // NS + 1) * NS  # the next second's KPIs


def next_wake(now: int, tick_ns: int, times: Iterable[int]) -> int:
    """The earliest of ``times`` still to come, but not before the next tick."""
    nxt = now + tick_ns
    due = min((t for t in times if t > now), default=FAR_NS)
    return max(nxt, due)
