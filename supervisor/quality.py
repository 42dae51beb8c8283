"""Quality in the words of ISO 22400-2: good units over units inspected, per cell, robot and station.

An event-log observer, like ``supervisor.faultstats``: everything comes from
the log in its order (who did which step of a unit from ``op_done``, where a
unit was built from ``unit_started``, the verdict from ``inspected``), so a
restored supervisor rebuilds the same figures from its journal's lines and
the report reads them back.

* A unit counts once, at its **first** inspection: it is good if it passed
  it. A unit reworked and passed the second time is counted reworked, not
  good (ISO 22400's rework quantity is not good quantity): quality is the
  first-pass yield.
* A robot's quality is over the units it worked on before their first
  inspection (any step but the inspection itself: the step done last before
  the ``inspected`` event, which the supervisor writes as it settles the
  inspection). A defect names the step, and so the robot that did it: a unit
  rejected only for other robots' steps is good work of this one; a unit
  rejected for something no step is named for (a part missing) counts against
  every robot that worked on it. A station's (the unit's fixture) is over the
  units built there.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

MAX_OPEN_UNITS = 4096
"""Units whose builders are remembered until their first inspection (the oldest go first): a
bound on what a long run or a hostile log can make this keep."""


@dataclasses.dataclass(slots=True)
class Tally:
    """Units inspected, good among them, and the defects named on them (by step)."""

    inspected: int = 0
    good: int = 0
    defects: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, ok: bool, steps: Iterable[str] = ()) -> None:
        """One unit inspected (``steps``: the defects counted against this tally)."""
        self.inspected += 1
        self.good += int(ok)
        for s in steps:
            self.defects[s] = self.defects.get(s, 0) + 1

    @property
    def quality(self) -> float | None:
        """Good over inspected (None before the first inspection)."""
        return round(self.good / self.inspected, 4) if self.inspected else None

    def report(self) -> dict[str, Any]:
        """As plain data (``kpis.json``)."""
        return {
            "inspected": self.inspected,
            "good": self.good,
            "defective": self.inspected - self.good,
            "quality": self.quality,
            "defects": dict(sorted(self.defects.items())),
        }


class QualityTracker:
    """Follows units from their steps to their first inspection."""

    def __init__(self) -> None:
        self.cell = Tally()
        self.robots: dict[str, Tally] = {}
        self.stations: dict[str, Tally] = {}
        self.reworked = 0
        """Units failed at their first inspection and passed at a later one."""
        self.scrapped_for_defects = 0
        """Units scrapped with defects named as the reason."""
        self.built: OrderedDict[str, dict[str, str]] = OrderedDict()
        """Unit -> step -> the robot that did it, until the unit's first inspection."""
        self.where: dict[str, str] = {}
        """Unit -> the fixture it is built in (until its first inspection)."""
        self.failed_first: set[str] = set()
        """Units that failed their first inspection and are not finished yet."""
        self.judged: set[str] = set()
        """Units inspected at least once and not finished yet (a second look is a re-check)."""

    def feed(self, rec: Mapping[str, Any]) -> None:
        """An event-log observer."""
        kind = rec.get("kind")
        unit = rec.get("unit")
        if kind == "op_done":
            unit_id, _, step = str(rec.get("op", "")).rpartition("/")
            step = step.partition("~")[0]  # a rework is the step done again
            robot = rec.get("robot")
            if unit_id and isinstance(robot, str) and unit_id not in self.judged:
                steps = self._steps(unit_id)
                steps.pop(step, None)
                steps[step] = robot  # the last step done comes last (the inspection's)
            return
        if not isinstance(unit, str):
            return
        if kind == "unit_started":
            self.where[unit] = str(rec.get("fixture", ""))
        elif kind == "inspected":
            self._inspected(unit, rec.get("ok") is True, rec.get("defects"))
        elif kind in ("unit_shipped", "unit_scrapped"):
            reason = str(rec.get("reason", ""))
            if kind == "unit_scrapped" and reason.startswith("defects:"):
                self.scrapped_for_defects += 1
            self.judged.discard(unit)
            self.failed_first.discard(unit)
            self.built.pop(unit, None)
            self.where.pop(unit, None)

    def _steps(self, unit: str) -> dict[str, str]:
        steps = self.built.get(unit)
        if steps is None:
            steps = self.built[unit] = {}
            while len(self.built) > MAX_OPEN_UNITS:
                old, _ = self.built.popitem(last=False)
                self.where.pop(old, None)
        return steps

    def _inspected(self, unit: str, ok: bool, defects: object) -> None:
        if unit in self.judged:
            if ok and unit in self.failed_first:
                self.reworked += 1
                self.failed_first.discard(unit)
            return
        self.judged.add(unit)
        if not ok:
            self.failed_first.add(unit)
        named = (
            [str(d[0]) for d in defects if isinstance(d, list | tuple) and d]
            if isinstance(defects, list)
            else []
        )
        steps = self.built.pop(unit, {})
        if steps:
            steps.pop(next(reversed(steps)))  # the inspection itself, settled just before
        self.cell.add(ok, named)
        for robot in sorted(set(steps.values())):
            mine = [s for s in named if steps.get(s) == robot]
            good = ok or bool(named and not mine)  # failed for another robot's steps only
            self.robots.setdefault(robot, Tally()).add(good, mine)
        station = self.where.pop(unit, "")
        if station:
            self.stations.setdefault(station, Tally()).add(ok, named)

    def robot_quality(self, robot: str) -> float | None:
        """Good over inspected of the units ``robot`` worked on (None if none was inspected)."""
        tally = self.robots.get(robot)
        return tally.quality if tally is not None else None

    def report(self) -> dict[str, Any]:
        """The cell's, each robot's and each station's tally (``kpis.json`` ``quality``)."""
        return {
            **self.cell.report(),
            "reworked": self.reworked,
            "scrapped_for_defects": self.scrapped_for_defects,
            "robots": {r: t.report() for r, t in sorted(self.robots.items())},
            "stations": {s: t.report() for s, t in sorted(self.stations.items())},
        }
