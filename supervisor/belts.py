"""The belts' health evidence from the world's events, for the health model
(``supervisor.health``).

* **Transits:** a part put on a belt to its arrival at the end, only for a
  ride the end never blocked (a part queued behind another is not slow, it
  waits) and that rode through no jam the supervisor saw. A part at the end
  blocks a ride only if it is still there when the riding part could have
  come up behind it: the belt's ``reach_s`` after the ride began
  (``BeltTimes``; a belt never runs faster than its speed).
* **Queue advances:** a belt whose end stays taken gives no transits, but
  each time the part at its end is taken away, the part queued behind it rides
  up to the end: the time from the one leaving to the next arriving is one
  part's length at the belt's speed. A part counts as queued when it has
  ridden the belt's nominal ride (``BeltTimes.ride_s``, ``QUEUED``) by then:
  sooner it may still be on its way.

A belt the watch has no ``BeltTimes`` for gives no advances, and any part at
its end spoils every ride behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import WorldEventKind
from bus.messages import WorldEvent
from bus.simtime import NS

QUEUED = 1.0
"""A part counts as queued at a belt's end once it has ridden this many times the belt's
nominal ride: a sound belt has brought it up behind the part at the end by then, and on a
slowed one a part still on its way arrives later than a queued one would, which is the drift
to be seen."""
QUEUE_MARGIN_M = 0.2
"""Belt length no part rides before it could queue, besides two parts' lengths: the end's
inset and the queue's gap (``sim.conveyors``), with room to spare."""

Sample = Callable[[str, str, str, float, int], None]
"""``Health._sample``: (series kind, target, component, value, sim ns)."""


@dataclasses.dataclass(frozen=True, slots=True)
class BeltTimes:
    """A belt's times at its own speed: ``ride_s`` from its start to its end, ``reach_s``
    from its start to where a part would queue behind one at the end (a bound below)."""

    ride_s: float
    reach_s: float


def belt_times(cell: CellSpec) -> dict[str, BeltTimes]:
    """Every moving belt's ``BeltTimes`` from the cell file: its ride, and its reach with
    the longest part at its end and another behind it."""
    longest = max((max(p.size[0], p.size[1]) for p in cell.parts), default=0.0)
    return {
        c.name: BeltTimes(
            c.length / c.speed, max(0.0, c.length - 2 * longest - QUEUE_MARGIN_M) / c.speed
        )
        for c in cell.conveyors
        if c.speed > 0
    }


class BeltWatch:
    """Parts on the belts, at their ends and queued: transit and advance samples."""

    def __init__(self, belts: Mapping[str, BeltTimes], sample: Sample) -> None:
        self.belts = dict(belts)
        self.sample = sample
        self.riding: dict[str, list[Any]] = {}
        """Parts on a belt: id -> [belt, since, clean] (clean: the end was free all along)."""
        self.at_end: dict[str, str] = {}
        """Belt -> the part its end sensor sees ("" or absent: none)."""
        self.freed: dict[str, list[Any]] = {}
        """Belt -> [when its end was freed, the parts then queued behind]: the next of them to
        arrive gives a queue advance (dropped if the belt jams meanwhile)."""

    def world_event(self, ev: WorldEvent) -> None:
        """A part on a belt, at its end, off it."""
        part, loc = ev.part, ev.location
        belt = loc.partition(":")[2] if loc.startswith("conveyor:") else ""
        ride = self.riding.get(part)
        if ev.kind is WorldEventKind.ARRIVED and belt:
            freed = self.freed.pop(belt, None)
            if freed is not None and part in freed[1]:
                self.sample("advances", belt, "belt", (ev.t_ns - int(freed[0])) / NS, ev.t_ns)
            if ride is not None and ride[0] == belt:
                del self.riding[part]
                if ride[2]:
                    self.sample("transits", belt, "belt", (ev.t_ns - int(ride[1])) / NS, ev.t_ns)
            self.at_end[belt] = part
            if belt not in self.belts:
                for other in self.riding.values():
                    if other[0] == belt:
                        other[2] = False  # it may queue behind the part at the end
            return
        if ride is not None and ride[0] != belt:
            del self.riding[part]
        for name, seen in list(self.at_end.items()):
            if seen == part and belt != name:
                del self.at_end[name]  # it left the end: the belt runs free again
                self._freed(name, ev.t_ns)
        if belt and part not in self.riding:
            self.riding[part] = [belt, ev.t_ns, belt in self.belts or not self.at_end.get(belt)]

    def _freed(self, belt: str, t_ns: int) -> None:
        """``belt``'s end was freed: a ride that could have come up behind the part that left
        is no transit; the parts queued behind it then give the next queue advance."""
        times = self.belts.get(belt)
        if times is None:
            return
        reached = t_ns - round(times.reach_s * NS)
        queued = t_ns - round(QUEUED * times.ride_s * NS)
        for ride in self.riding.values():
            if ride[0] == belt and int(ride[1]) <= reached:
                ride[2] = False  # it may have waited behind the part that left
        behind = sorted(p for p, r in self.riding.items() if r[0] == belt and int(r[1]) <= queued)
        if times.ride_s > 0 and behind:
            self.freed[belt] = [t_ns, behind]
        else:
            self.freed.pop(belt, None)

    def jammed(self, belts: Collection[str]) -> None:
        """The belts the supervisor holds for jammed now: a ride through a jam says nothing
        of the belt, nor does an advance through one."""
        for ride in self.riding.values():
            if ride[0] in belts:
                ride[2] = False
        for belt in belts:
            self.freed.pop(belt, None)

    def snapshot(self) -> dict[str, Any]:
        """As plain data (keys of the health model's snapshot)."""
        return {
            "riding": dict(sorted(self.riding.items())),
            "at_end": dict(sorted(self.at_end.items())),
            "freed": dict(sorted(self.freed.items())),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.riding = {k: list(v) for k, v in data["riding"].items()}
        self.at_end = dict(data["at_end"])
        self.freed = {
            k: [int(v[0]), [str(p) for p in v[1]]] for k, v in data.get("freed", {}).items()
        }
