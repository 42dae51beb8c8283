"""Self-optimization: what the supervisor changes from what it learned, and the log of it.

Two kinds of change, each an event with its reason and its evidence
(``docs/autonomy.md``, audited by ``lightsout decisions``):

* ``allocation_changed``: the robot that would do a step at its stations
  fastest by the learned times (``supervisor.learned``) is another than
  before: the ``learned`` policy gives that work to it from now on. Its
  evidence is every able robot's learned time and samples. Only under the
  ``learned`` policy (the others do not read learned times).
* ``speed_tuned``: a robot's motion speed scale is lowered by ``speed_step``
  when its drop share over its last ``drop_window`` carries reaches
  ``drops_high``, and raised by a step after ``clean_carries`` carries in a
  row without a drop, never past the cell file's ``[optimize.speed]`` limits
  for it. The new scale goes to the agent in a ``tune`` message, and the
  agent plans its motions at it (its bids and its operation times show it).
  Its evidence is the carries and drops counted.

With ``[optimize] enabled = false`` (``--no-optimize``) nothing is changed
and nothing is logged; the operation times are still learned (``kpis.json``
``optimize.learned``) but nothing reads them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import Skill
from bus.messages import Tune
from bus.participant import Outbox
from supervisor.allocation import in_production
from supervisor.eventlog import EventLog
from supervisor.health import LOST
from supervisor.learned import LATE, LearnedTimes
from supervisor.plan import Op
from supervisor.view import CellView

HYSTERESIS = 0.1
"""Another robot is logged as doing a step fastest once it is faster by this share (two
robots about as fast would take turns at every operation)."""
SCALE_DIGITS = 3
"""A speed scale is rounded to this many decimals (the log and the message are stable)."""


class Optimizer:
    """Watches the learned times and the carries; logs and applies the changes."""

    def __init__(
        self,
        cell: CellSpec,
        op_of: Callable[[str], Op | None],
        view: Callable[[], CellView],
        policy: str,
    ) -> None:
        """``op_of`` finds an operation by id; ``view`` gives the supervisor's view (who could
        do an operation); ``policy`` is the allocation policy's name (allocation changes are
        the ``learned`` policy's)."""
        self.spec = cell.optimize
        self.times = LearnedTimes(op_of, alpha=self.spec.alpha, min_samples=self.spec.min_samples)
        self.op_of = op_of
        self.view = view
        self.allocates = policy == "learned" and self.spec.enabled
        self.preferred: dict[str, str] = {}
        """Step -> the robot that does it fastest by the learned times now."""
        self.scale: dict[str, float] = {name: 1.0 for name, _lo, _hi in self.spec.speed}
        self.carries: dict[str, deque[int]] = {
            name: deque(maxlen=self.spec.drop_window) for name in self.scale
        }
        """Tuned robot -> its last carries since its last change (1: dropped)."""
        self.clean: dict[str, int] = dict.fromkeys(self.scale, 0)
        """Tuned robot -> carries in a row without a drop since its last change."""
        self.changes = 0

    # ------------------------------------------------------------------ inputs

    def reader(self) -> Callable[[str, Op], float | None] | None:
        """What the view reads a robot's learned time with; None with optimization off."""
        return self.times.mean if self.spec.enabled else None

    def feed(self, rec: Mapping[str, Any]) -> None:
        """An event-log observer: the operations' times, and each tuned robot's carries."""
        self.times.feed(rec)
        kind, robot = rec.get("kind"), str(rec.get("robot", ""))
        if robot not in self.carries or kind not in ("op_done", "op_failed"):
            return
        op = self.op_of(str(rec.get("op", "")))
        if op is None or op.spec.skill is not Skill.PICK_PLACE:
            return
        lost = kind == "op_failed" and str(rec.get("detail", "")).startswith(LOST)
        if kind == "op_done" or lost:
            self.carries[robot].append(int(lost))
            self.clean[robot] = 0 if lost else self.clean[robot] + 1

    # ------------------------------------------------------------------ each tick

    def watch(self, now: int, events: EventLog) -> None:
        """Before the tick's allocation: read the running operations' elapsed times (a robot
        whose operation runs far past its learned time is slower than its pace says,
        ``LearnedTimes.overdue``); where that moves a step's work, it is logged."""
        risen = self.times.overdue(now)
        if risen and self.allocates:
            self._preferred(now, events)

    def step(self, out: Outbox, now: int, events: EventLog) -> None:
        """Log the allocation changes the newest learned times make, and tune speeds."""
        fresh = self.times.take_fresh()
        if not self.spec.enabled:
            return
        if self.allocates and fresh:
            self._preferred(now, events)
        for robot in sorted(self.scale):
            self._tune(robot, out, now, events)

    def _preferred(self, now: int, events: EventLog) -> None:
        """Which robot does each step fastest by the learned times now; each change of it is
        an ``allocation_changed`` (the ``learned`` policy gives that robot the step first)."""
        view = self.view()
        paces = self.times.paces()
        up = {r.name for r in view.robots() if in_production(r)}
        for step in sorted(paces):
            known = {r: t for r, t in paces[step].items() if r in up}
            if not known:
                continue
            best = min(known, key=lambda r: (known[r], r))
            before = self.preferred.get(step, "")
            if best == before or known.get(before, math.inf) <= (1 + HYSTERESIS) * known[best]:
                continue  # the same, or not faster by enough to say the work moves
            self.preferred[step] = best
            self.changes += 1
            if before and before in known:
                why = (
                    f"{best} now does {step} fastest by the learned times ({known[best]:.2f} s "
                    f"against {before}'s {known[before]:.2f} s, {before}'s pace "
                    f"{self.times.pace_of(before):.2f}{self._late(before)}): its work of the "
                    f"step moves to {best}"
                )
            else:
                why = f"{best} does {step} fastest by the learned times ({known[best]:.2f} s)"
            samples = {r: int(self.times.by_step[f"{r} {step}"][0]) for r in known}
            events.write(
                now,
                "allocation_changed",
                step=step,
                src=before,
                dst=best,
                reason=why,
                evidence={
                    "learned_s": {r: round(t, 4) for r, t in sorted(known.items())},
                    "samples": dict(sorted(samples.items())),
                    "paces": {r: round(self.times.pace_of(r), 4) for r in sorted(known)},
                    "alpha": self.spec.alpha,
                },
            )

    def _late(self, robot: str) -> str:
        """Why a robot's pace is above what its operations done say, if it is."""
        late = self.times.late.get(robot, 0.0)
        if late <= self.times.pace.get(robot, 1.0):
            return ""
        return f", shown by its running operation, already {LATE * late:.2f} x its base time"

    def _tune(self, robot: str, out: Outbox, now: int, events: EventLog) -> None:
        bounds = self.spec.bounds(robot)
        window = self.carries[robot]
        if bounds is None or not window:
            return
        lo, hi = bounds
        scale, drops = self.scale[robot], sum(window)
        share = drops / len(window)
        new, why = scale, ""
        if len(window) >= self.spec.drop_window and share >= self.spec.drops_high and scale > lo:
            new = max(lo, scale - self.spec.speed_step)
            why = (
                f"{drops} drops in its last {len(window)} carries ({share:.2f} >= "
                f"{self.spec.drops_high:g}): slower"
            )
        elif self.clean[robot] >= self.spec.clean_carries and scale < hi:
            new = min(hi, scale + self.spec.speed_step)
            why = f"{self.clean[robot]} carries in a row without a drop: faster"
        new = round(new, SCALE_DIGITS)
        if new == scale:
            return
        self.scale[robot] = new
        evidence = {
            "carries": len(window),
            "drops": drops,
            "clean_in_a_row": self.clean[robot],
            "drops_high": self.spec.drops_high,
            "limits": [lo, hi],
            "step": self.spec.speed_step,
        }
        window.clear()
        self.clean[robot] = 0
        self.changes += 1
        events.write(
            now, "speed_tuned", robot=robot, src=scale, dst=new, reason=why, evidence=evidence
        )
        out.send(robot, Tune(robot, new, why))

    # ------------------------------------------------------------------ report, journal

    def report(self) -> dict[str, Any]:
        """For ``kpis.json``: whether it is on, the changes, the scales, the learned times."""
        return {
            "enabled": self.spec.enabled,
            "changes": self.changes,
            "speed_scale": dict(sorted(self.scale.items())),
            "preferred": dict(sorted(self.preferred.items())),
            "learned": self.times.report(),
            "paces": {r: round(self.times.pace_of(r), 4) for r in sorted(self.times.pace)},
            "by_step": {
                step: {r: round(t, 4) for r, t in sorted(by.items())}
                for step, by in self.times.paces().items()
            },
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "times": self.times.snapshot(),
            "preferred": self.preferred,
            "scale": self.scale,
            "carries": {r: list(c) for r, c in self.carries.items()},
            "clean": self.clean,
            "changes": self.changes,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.times.restore(data["times"])
        self.preferred = dict(data["preferred"])
        self.scale = {r: float(v) for r, v in data["scale"].items()}
        for r, c in data["carries"].items():
            if r in self.carries:
                self.carries[r].extend(int(x) for x in c)
        self.clean = {r: int(v) for r, v in data["clean"].items()}
        self.changes = int(data["changes"])
