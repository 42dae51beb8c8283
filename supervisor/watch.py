"""Watchdogs: the faults nobody reports, noticed from what the supervisor sees anyway.

A robot fault announces itself (the agent aborts); these do not:

* a **lossy link** shows as sequence gaps: the supervisor's cell socket
  counts the messages missing from each robot's sequence, and each robot's
  heartbeat says how many of the supervisor's it saw missing;
* a **slow robot** shows in its measured times: each operation it finishes
  is compared with the fastest the same robot did the same step at the same
  stations (a robot's times for one step vary little: in a 600 s run, 95% are
  within 1.35 times its best). Its bids are not used: an idle robot's offer
  depends on where its arm happens to be parked (95% within 3.1 times), too
  loose to tell slowness from. A slow robot that wins no work is therefore
  not noticed, and costs nothing either: its bids already send the work to
  the others;
* a **jammed conveyor** shows as a part not arriving: a part on a belt for
  much longer than the belt's length over its speed, with nothing at its end.

Each logs when it starts (``link_lossy``, ``robot_slow``, ``conveyor_jammed``)
and when it is over (``link_ok``, ``robot_speed_ok``, ``conveyor_cleared``),
which is what the fault KPIs pair with the injected faults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bus.cellspec import CellSpec, StationKind
from bus.simtime import NS

if TYPE_CHECKING:
    from supervisor.eventlog import EventLog

LINK_OK_NS = 10 * NS
"""A lossy link is fine again after this long without a gap ..."""
LINK_OK_MESSAGES = 20
"""... and this many messages heard from the robot since the last one (silence proves nothing)."""
SLOW_RATIO = 1.6
"""Operations taking this many times the robot's best for them mean the robot is slow ..."""
FAST_AGAIN_RATIO = 1.3
"""... and as many within this ratio mean it is back at speed."""
SLOW_RUN = 2
SLOW_LOOKBACK_NS = 30 * NS
"""When a robot is found slow, bests it learned this recently may have been learned slow."""
"""Slow only when this many operations in a row are: one long move from far away is not slowness."""
JAM_MARGIN = 1.5
"""A part may take this many times the belt's nominal travel time (plus ``JAM_SLACK_NS``)."""
JAM_SLACK_NS = 2 * NS


@dataclasses.dataclass(slots=True)
class _Link:
    lossy: bool = False
    last_gap_ns: int = -1
    seen: int = 0
    """Gaps counted so far, both directions."""
    heard: int = 0
    """Messages heard from the robot since the last gap."""
    beat_gaps: int = -1
    """The robot's own count in its last heartbeat (it starts again at 0 when it restarts);
    -1 until the first heartbeat this supervisor hears (a restarted one takes it as it is)."""
    socket_gaps: int = 0
    """Our socket's count for it when last read (a restarted supervisor starts at 0)."""


class Watch:
    """The three watchdogs; ``events`` is where they say what they notice."""

    def __init__(self, cell: CellSpec, events: EventLog) -> None:
        self.events = events
        self.links = {r.name: _Link() for r in cell.robots}
        self.best_ns: dict[tuple[str, str], int] = {}
        """(robot, step at stations) -> its fastest time for it."""
        self.best_at: dict[tuple[str, str], int] = {}
        """... and when it was learned."""
        self.normal_at: dict[str, int] = {}
        """Per robot: its last time that was not slow (it may have slowed down any time after)."""
        self.provisional: set[tuple[str, str]] = set()
        """Bests that may have been learned while the robot was slow."""
        self.slow: set[str] = set()
        self.ratios: dict[str, list[tuple[str, float]]] = {}
        """Per robot: its last times over its bests for them."""
        self.travel_ns = {
            c.name: round(c.length / c.speed * NS) for c in cell.conveyors if c.speed > 0
        }
        self.outfeeds = {c.name for c in cell.conveyors if c.role is StationKind.OUTFEED}
        self.on_belt: dict[str, tuple[str, int]] = {}
        """Part -> (conveyor, since when) for parts riding a belt."""
        self.jammed: set[str] = set()
        self._saw: dict[str, tuple[bool, int]] = {}
        """Per belt: whether its end sensor saw a part when last checked, and when."""

    # ------------------------------------------------------------ links

    def add_robot(self, name: str) -> None:
        """A robot built in the cell joined: watch its link too."""
        self.links.setdefault(name, _Link())

    def heartbeat_gaps(self, robot: str, gaps: int, now_ns: int) -> None:
        """A heartbeat said the robot has seen ``gaps`` of our messages missing, in all."""
        link = self.links[robot]
        if link.beat_gaps < 0:
            link.beat_gaps = gaps
            return
        new = gaps - link.beat_gaps if gaps >= link.beat_gaps else gaps
        link.beat_gaps = gaps
        self._gaps(robot, link, new, now_ns)

    def socket_gaps(self, counts: Mapping[str, int], now_ns: int) -> None:
        """Our socket's per-sender gap counts now."""
        for robot, link in self.links.items():
            n = counts.get(robot, 0)
            new = n - link.socket_gaps if n >= link.socket_gaps else n
            link.socket_gaps = n
            self._gaps(robot, link, new, now_ns)

    def heard(self, robot: str) -> None:
        """A message from ``robot`` arrived."""
        link = self.links.get(robot)
        if link is not None:
            link.heard += 1

    def _gaps(self, robot: str, link: _Link, new: int, now_ns: int) -> None:
        if new <= 0:
            return
        link.seen += new
        link.last_gap_ns = now_ns
        link.heard = 0
        if not link.lossy:
            link.lossy = True
            self.events.write(now_ns, "link_lossy", robot=robot, lost=new)

    def links_ok(self, now_ns: int) -> None:
        """Say which lossy links have been quiet for ``LINK_OK_NS``."""
        for robot, link in self.links.items():
            quiet = now_ns - link.last_gap_ns > LINK_OK_NS
            if link.lossy and quiet and link.heard >= LINK_OK_MESSAGES:
                link.lossy = False
                self.events.write(now_ns, "link_ok", robot=robot, lost=link.seen)

    # ------------------------------------------------------------ slow robots

    def op_time(self, robot: str, op: str, what: str, took_ns: int, now_ns: int) -> None:
        """A robot finished operation ``op``, a step at its stations (``what``), in ``took_ns``.

        Judged against its best for the same step. Slow: ``SLOW_RUN`` times in a row at ``SLOW_RATIO`` or more of trusted
        bests. A best learned while the robot may already have been slow is
        only provisional: those learned since its last normal time (at most
        ``SLOW_LOOKBACK_NS`` back) when it is found slow, and those it learns
        while slow. Back at speed: ``SLOW_RUN`` times in a row that show it,
        each within ``FAST_AGAIN_RATIO`` of a trusted best or clearly faster
        (``1 / SLOW_RATIO``) than a provisional one; the provisional bests are
        then forgotten.
        """
        if took_ns <= 0:
            return
        key = (robot, what)
        slow = robot in self.slow
        best = self.best_ns.get(key)
        if best is None:
            self.best_ns[key], self.best_at[key] = took_ns, now_ns
            if slow:
                self.provisional.add(key)
            return
        ratio = took_ns / best
        recent = self.ratios.setdefault(robot, [])
        if key in self.provisional:
            if ratio > 1 / SLOW_RATIO:
                return  # tells nothing: the best may be a slow one
            seen = 1.0  # clearly faster than while slow
        else:
            if not slow and took_ns < best:
                self.best_ns[key], self.best_at[key] = took_ns, now_ns
            if not slow and ratio < SLOW_RATIO:
                self.normal_at[robot] = now_ns
            seen = ratio
        if recent and recent[-1][0] == op:
            recent[-1] = (op, seen)
        else:
            recent.append((op, seen))
        del recent[:-SLOW_RUN]
        if len(recent) < SLOW_RUN:
            return
        ratios = [r for _, r in recent]
        if not slow and min(ratios) >= SLOW_RATIO:
            self.slow.add(robot)
            since = max(self.normal_at.get(robot, 0), now_ns - SLOW_LOOKBACK_NS)
            self.provisional |= {
                k for k, at in self.best_at.items() if k[0] == robot and at > since
            }
            self.events.write(now_ns, "robot_slow", robot=robot, ratio=round(min(ratios), 2))
            recent.clear()
        elif slow and max(ratios) <= FAST_AGAIN_RATIO:
            self.slow.discard(robot)
            for k in [k for k in self.provisional if k[0] == robot]:
                self.provisional.discard(k)
                del self.best_ns[k], self.best_at[k]
            self.events.write(now_ns, "robot_speed_ok", robot=robot, ratio=round(ratio, 2))
            recent.clear()

    # ------------------------------------------------------------ conveyors

    def part_at(self, part: str, location: str, now_ns: int) -> None:
        """A part is somewhere new (from the world's events)."""
        kind, _, name = location.partition(":")
        if kind == "conveyor" and name in self.travel_ns:
            if self.on_belt.get(part, ("", 0))[0] != name:
                self.on_belt[part] = (name, now_ns)
        else:
            self.on_belt.pop(part, None)

    def part_gone(self, part: str) -> None:
        """A part left the cell (shipped, scrapped)."""
        self.on_belt.pop(part, None)

    def conveyors(
        self, at_end: dict[str, str], blind: set[str], now_ns: int, before_ns: int = -1
    ) -> None:
        """Check every belt: ``at_end`` is what each end sensor sees, ``blind`` the stale ones.

        A belt is jammed when a part has ridden it for longer than its travel
        time allows while its end sensor sees nothing; it is clear again when a
        part reaches the end (or none is left on it). ``before_ns`` is the sim time
        of the tick before this one: an end sensor that saw a part when last
        checked, ticks ago (the event clock skipped them), saw it until then, since
        any change of a sensor is a tick of ours.
        """
        for name, travel in sorted(self.travel_ns.items()):
            sensor = f"{name}.end"
            if sensor in blind:
                continue
            arrived = bool(at_end.get(sensor, ""))
            saw, checked = self._saw.get(name, (False, now_ns))
            self._saw[name] = (arrived, now_ns)
            delivered = now_ns if arrived else before_ns if saw and checked < before_ns else -1
            if delivered >= 0:
                # the belt delivers: parts behind the one at the stop are queued, not late
                for part, (belt, _) in self.on_belt.items():
                    if belt == name:
                        self.on_belt[part] = (belt, delivered)
            riding = [since for belt, since in self.on_belt.values() if belt == name]
            if name in self.jammed:
                if arrived or not riding:
                    self.jammed.discard(name)
                    self.events.write(now_ns, "conveyor_cleared", conveyor=name)
                continue
            limit = round(travel * JAM_MARGIN) + JAM_SLACK_NS
            late = [since for since in riding if now_ns - since > limit]
            if late and not arrived:
                self.jammed.add(name)
                waited = round((now_ns - min(late)) / NS, 3)
                self.events.write(now_ns, "conveyor_jammed", conveyor=name, waited_s=waited)
