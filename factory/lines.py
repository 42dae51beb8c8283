"""A line as the coordinator sees it: its line side (the gate its feeders draw through) and
what it has said of its units since the last step.

``LineGate`` implements ``sim.feeders.FeedGate`` (structurally: the factory does
not import ``sim``): a feeder makes a part only while one of its kind waits at
the line side, and each part it makes takes the lot of the oldest there. It
also hears every line the line's supervisor writes to its event log
(``cells.launch.RunOptions.on_event``: the lines the world is sent, the same in
one process or many) and keeps the few the coordinator acts on, a unit
finished (``unit_shipped``: it left the line for the finished store) or
scrapped, and a part scrapped alone (a drop no recovery could save), until the
next step takes them. Both run on the line's world thread between steps and
the coordinator takes them at a step, never both at once (the lines wait at a
barrier during a step), so what the coordinator does with them depends on the
step alone and a factory run stays reproducible.

A line that is our own process can still send a damaged line: one that is not
JSON, or whose fields are not of their types, is counted (``bad_events``) and
skipped, never raised on the world's thread.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from typing import Any

from factory.schema import LineSpec

HEARD_KINDS = ("unit_shipped", "unit_scrapped", "part_scrapped")
"""The kinds of a line's event log its gate keeps for the coordinator."""
MAX_HEARD = 100_000
"""Heard events kept between two steps (a line that floods is cut, and counted)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Heard:
    """A unit finished or scrapped, or a part scrapped, as the line's supervisor logged it."""

    t_ns: int
    kind: str
    item: str
    """The unit (its base part's id), or the part scrapped alone."""
    parts: tuple[str, ...]
    """A unit's parts (the base first as logged); a lone part: itself."""
    reason: str = ""


def parse_heard(line: str) -> Heard | None:
    """The event of ``line`` if it is one the coordinator acts on and well formed, else None
    (``ValueError`` if it is one of those kinds but damaged)."""
    if not any(f'"kind":"{k}"' in line for k in HEARD_KINDS):
        return None  # most lines: no JSON decoded
    rec: Any = json.loads(line)
    if not isinstance(rec, dict) or rec.get("kind") not in HEARD_KINDS:
        return None
    t_ns, kind, reason = rec.get("t_ns"), rec["kind"], rec.get("reason", "")
    item = rec.get("part") if kind == "part_scrapped" else rec.get("unit")
    parts = [item] if kind == "part_scrapped" else rec.get("parts")
    if not (isinstance(t_ns, int) and not isinstance(t_ns, bool) and isinstance(item, str)):
        raise ValueError(f"{kind} without t_ns or its id")
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"{kind} of {item[:64]!r} with parts not a list of ids")
    return Heard(t_ns, kind, item, tuple(parts), reason if isinstance(reason, str) else "")


class LineGate:
    """A line's side of its store, and what the line said since the coordinator last looked."""

    def __init__(self, line: LineSpec) -> None:
        self.line = line
        self.base = line.cell.recipe.base
        self.kind_of = {f.name: f.part for f in line.cell.feeders}
        self.side: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        """Per part kind: the lot of each part drawn and not yet made, oldest first."""
        self.drawn: collections.Counter[str] = collections.Counter()
        self.made: collections.Counter[str] = collections.Counter()
        self.lot_of: dict[str, str] = {}
        """Part id (the line's own) -> the lot it was drawn from."""
        self.part_kind: dict[str, str] = {}
        """Part id -> its kind, for every part the line's feeders made."""
        self.scrapped: collections.Counter[str] = collections.Counter()
        """Per part kind: parts made here and scrapped since (alone or in a unit): replaced."""
        self.scrapped_parts: set[str] = set()
        self.finished: set[str] = set()
        """Units the coordinator has taken as finished (each once)."""
        self.heard: list[Heard] = []
        self.kpis: dict[str, Any] = {}
        """The last KPI snapshot the line's supervisor sent (``RunOptions.on_kpis``)."""
        self.counters: collections.Counter[str] = collections.Counter()
        self.unlogged: collections.Counter[str] = collections.Counter()
        """At the end, per kind: parts the feeders made in the last ticks that the line's log
        does not hold (its supervisor had no step after them); they are in WIP."""

    def may_feed(self, feeder: str) -> bool:
        """A feeder may make a part while its kind waits at the line side."""
        return bool(self.side[self.kind_of[feeder]])

    def fed(self, feeder: str, part: str) -> None:
        """A part was made: it takes the oldest lot at the line side."""
        kind = self.kind_of[feeder]
        self.lot_of[part] = self.side[kind].popleft()
        self.part_kind[part] = kind
        self.made[kind] += 1

    def hear(self, line: str) -> None:
        """One line of the line's event log (``RunOptions.on_event``)."""
        try:
            ev = parse_heard(line)
        except (ValueError, TypeError):  # json.JSONDecodeError is a ValueError
            self.counters["bad_events"] += 1
            return
        if ev is None:
            return
        if len(self.heard) >= MAX_HEARD:
            self.counters["heard_dropped"] += 1
            return
        self.heard.append(ev)

    def take_kpis(self, kpis: dict[str, Any]) -> None:
        """A KPI snapshot of the line (for the factory's view, not its decisions)."""
        self.kpis = kpis

    def take_heard(self) -> list[Heard]:
        """What was heard since the last call, in the line's log order."""
        out, self.heard = self.heard, []
        return out

    def scrap(self, parts: tuple[str, ...]) -> list[str]:
        """Count ``parts`` scrapped (those made here, each once); return their kinds."""
        kinds = []
        for p in parts:
            kind = self.part_kind.get(p)
            if kind is None or p in self.scrapped_parts:
                continue
            self.scrapped_parts.add(p)
            self.scrapped[kind] += 1
            kinds.append(kind)
        return kinds

    def kept(self, kind: str) -> int:
        """Parts of ``kind`` drawn for the line and not scrapped: built, in work or waiting."""
        return self.drawn[kind] - self.scrapped[kind]

    @property
    def started(self) -> int:
        """Units begun (base parts made) and not scrapped: built or still in work."""
        return self.made[self.base] - self.scrapped[self.base]
