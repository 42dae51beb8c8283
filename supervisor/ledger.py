"""The part ledger: every part has an id and exactly one location.

DESIGN principle 5: created = shipped + scrapped + work in progress, at every
moment. The ledger keeps the live parts by id (one location each) and the
running totals separately, and ``check()`` verifies they agree, so a bug that
loses or duplicates a part shows up as ``ledger_balanced: false`` rather than
as a silently wrong count.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from supervisor.errors import LedgerError

SHIPPED = "shipped"
SCRAP = "scrap"
CONSUMED = "consumed"
"""Built into a robot of the cell (the robot-building recipe's output)."""


@dataclasses.dataclass(slots=True)
class PartRecord:
    """A live part: its kind and where it is now."""

    part: str
    kind: str
    location: str


class Ledger:
    """Live parts with one location each, plus created / shipped / scrapped totals."""

    def __init__(self) -> None:
        self.live: dict[str, PartRecord] = {}
        self.created = 0
        self.shipped = 0
        self.scrapped = 0
        self.consumed = 0
        self.gone: dict[str, str] = {}
        """Parts that left the cell: id to ``shipped``, ``scrap`` or ``consumed``."""

    @property
    def wip(self) -> int:
        """Parts created and not yet shipped or scrapped."""
        return self.created - self.shipped - self.scrapped - self.consumed

    def create(self, part: str, kind: str, location: str) -> None:
        """A new part at ``location``."""
        if part in self.live or part in self.gone:
            raise LedgerError(f"part {part} created twice")
        self.live[part] = PartRecord(part, kind, location)
        self.created += 1

    def move(self, part: str, location: str) -> str:
        """Move a live part; returns where it was."""
        rec = self._live(part)
        old, rec.location = rec.location, location
        return old

    def ship(self, part: str) -> None:
        """The part left the cell as (part of) a good unit."""
        self._leave(part, SHIPPED)
        self.shipped += 1

    def scrap(self, part: str) -> None:
        """The part was scrapped."""
        self._leave(part, SCRAP)
        self.scrapped += 1

    def consume(self, part: str) -> None:
        """The part was built into a robot that joined the cell."""
        self._leave(part, CONSUMED)
        self.consumed += 1

    def at(self, location: str) -> list[str]:
        """Live parts at ``location``, sorted."""
        return sorted(p for p, r in self.live.items() if r.location == location)

    def location(self, part: str) -> str:
        """Where ``part`` is (``shipped`` / ``scrap`` for parts that left)."""
        if part in self.live:
            return self.live[part].location
        if part in self.gone:
            return self.gone[part]
        raise LedgerError(f"unknown part {part}")

    def kind(self, part: str) -> str:
        """The kind of a live part."""
        return self._live(part).kind

    def by_location(self) -> dict[str, int]:
        """Counts of live parts per location bucket (``fixture``, ``unit``, ...)."""
        return dict(
            sorted(Counter(r.location.split(":", 1)[0] for r in self.live.values()).items())
        )

    def report(self) -> dict[str, Any]:
        """The totals and where the live parts are (``kpis.json``'s ``ledger``)."""
        return {
            "created": self.created,
            "shipped": self.shipped,
            "scrapped": self.scrapped,
            "consumed": self.consumed,
            "wip": self.wip,
            "by_location": self.by_location(),
        }

    def check(self) -> bool:
        """Whether totals and live parts agree (created = shipped + scrapped + consumed + WIP)."""
        return (
            self.created == self.shipped + self.scrapped + self.consumed + len(self.live)
            and self.shipped == sum(1 for v in self.gone.values() if v == SHIPPED)
            and self.scrapped == sum(1 for v in self.gone.values() if v == SCRAP)
            and self.consumed == sum(1 for v in self.gone.values() if v == CONSUMED)
            and not (set(self.live) & set(self.gone))
        )

    def snapshot(self) -> dict[str, Any]:
        """Live parts, departed parts and totals, as plain data (the journal)."""
        return {
            "live": {p: [r.kind, r.location] for p, r in self.live.items()},
            "gone": dict(self.gone),
            "created": self.created,
            "shipped": self.shipped,
            "scrapped": self.scrapped,
            "consumed": self.consumed,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.live = {p: PartRecord(p, kind, loc) for p, (kind, loc) in data["live"].items()}
        self.gone = dict(data["gone"])
        self.created, self.shipped = data["created"], data["shipped"]
        self.scrapped, self.consumed = data["scrapped"], data.get("consumed", 0)

    def _live(self, part: str) -> PartRecord:
        rec = self.live.get(part)
        if rec is None:
            raise LedgerError(f"part {part} is not in the cell")
        return rec

    def _leave(self, part: str, where: str) -> None:
        self._live(part)
        del self.live[part]
        self.gone[part] = where
