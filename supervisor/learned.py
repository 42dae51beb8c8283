"""Learned operation times, and the allocation policy that awards by them.

``LearnedTimes`` watches the event log (an observer, as the health model is)
and keeps, per robot, recipe step and stations (``R3 load_frame infeed,F2``),
an exponentially weighted mean of the operation's time from its
``op_started`` to its ``op_done``, with the count of operations behind it::

    mean <- mean + alpha (seconds - mean)      (the first sample is the mean)

``alpha`` (``[optimize] alpha``, default 0.3) weighs the newest time: after
a robot's pace changes, ``1 - (1 - alpha)^n`` of the change shows after ``n``
operations (half after two, 83% after five). A time counts once
``min_samples`` operations are behind it. An operation that picked a fallen
part off its station, or that failed, is not a usual time and is left out.

Two readings go past the operations done. A step a robot has not done
``min_samples`` times yet is priced by a speed model fitted to every time
learned (``log t = a_robot + w_step``: a robot slow at the steps it did is as
slow at this one), so a robot is priced by what it really takes after its
first operation or two, of any step, not after two of each. And an operation
still running is evidence too: once it has run ``LATE`` times its learned time,
its robot's pace is at least ``elapsed / (LATE x base)`` (``overdue``, read
before each tick's allocation), so a robot slowed out of sight of its bids is
priced slower while its first slow operation is still going, and that floor
stays when the operation ends and its time updates the pace.

The ``learned`` allocation policy (``supervisor.allocation.Learned``) awards
by finish times computed from those means: a robot's finish for an operation is when it is free (what is left of its
running operation's learned time, plus the learned times of the one it has
queued) plus its learned time for this one. The earliest finish wins, ties to
the lower name; if that robot's queue is full the operation waits for it
rather than go to a robot that would finish later. Where an able robot has no
learned time yet for the step at those stations (its step elsewhere stands in
once it has one, else the speed model's estimate) and nothing to estimate it
from, the operation goes to a call for bids (contract net) as before, so a
cell starts on the robots' own estimates. With optimization off
(``[optimize] enabled = false``, ``--no-optimize``) no learned time is read:
the policy is contract net throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bus.simtime import NS
from supervisor.plan import Op

MAX_PACE = 20.0
"""A robot's pace stays within [1 / MAX_PACE, MAX_PACE]."""
MAX_KEYS = 4096
"""Learned times kept at most (robot x step x stations): a bound on the table."""
LATE = 1.5
"""An operation running longer than this many times its learned time is evidence of a slower
pace by itself, before it ends: the robot's pace is at least ``elapsed / (LATE x learned)``
times what it was (short of that, an operation's time varies with its start and its
fixture and says nothing yet)."""
FIT_ROUNDS = 8
"""Rounds of the speed model's fit (``LearnedTimes.estimate``)."""


def key_of(robot: str, op: Op) -> str:
    """``robot step stations`` (names are safe: no blanks)."""
    return f"{robot} {op.spec.name} {','.join(op.stations)}"


class LearnedTimes:
    """Per robot, step and stations: [operations, their weighted mean time (s), last sample]."""

    def __init__(
        self, op_of: Callable[[str], Op | None], *, alpha: float = 0.3, min_samples: int = 2
    ) -> None:
        self.op_of = op_of
        self.alpha = alpha
        self.min_samples = min_samples
        self.table: dict[str, list[float]] = {}
        """key -> [n, mean s, sim time of the last sample (ns)]."""
        self.by_step: dict[str, list[float]] = {}
        """``robot step`` -> [n, base s, last sample]: stands in at stations not yet learned."""
        self.pace: dict[str, float] = {}
        """Robot -> how much slower than its base times it runs now (1: as learned)."""
        self.started: dict[str, list[Any]] = {}
        """Operations running: id -> [robot, start time]."""
        self.fresh: dict[str, Op] = {}
        """Keys updated since the optimizer last looked, with an operation of each."""
        self.late: dict[str, float] = {}
        """Robot -> the pace its running operation's elapsed time shows at least (``overdue``)."""
        self._fit: tuple[dict[str, float], dict[str, float]] | None = None
        """The speed model (robot factors, step works, logs), None: to be fitted again."""

    def feed(self, rec: Mapping[str, Any]) -> None:
        """An event-log observer: each operation's time from its start to its end."""
        kind, t = rec.get("kind"), rec.get("t_ns")
        if not isinstance(t, int):
            return
        op_id, robot = str(rec.get("op", "")), str(rec.get("robot", ""))
        if kind == "op_started":
            if op_id in self.started or len(self.started) < MAX_KEYS:
                self.started[op_id] = [robot, t]
            return
        if kind not in ("op_done", "op_failed"):
            return
        began = self.started.pop(op_id, None)
        late = self.late.pop(robot, None)
        if late is not None and kind == "op_done":
            # what its running past its time showed stays shown: the sample below moves the
            # pace from there (a pace is never lowered by the operation that raised it)
            self.pace[robot] = max(self.pace.get(robot, 1.0), late)
        op = self.op_of(op_id)
        if kind != "op_done" or began is None or began[0] != robot or op is None or op.pick:
            return
        self.add(robot, op, (t - int(began[1])) / NS, t)

    def add(self, robot: str, op: Op, seconds: float, t_ns: int) -> None:
        """One operation's time: the robot's pace first, then the step's base time."""
        key, step = key_of(robot, op), f"{robot} {op.spec.name}"
        if key not in self.table and len(self.table) >= MAX_KEYS:
            return
        pace = self.pace.get(robot, 1.0)
        got = self.table.get(key) or self.by_step.get(step)
        if got is not None and got[1] > 0:
            ratio = seconds / (got[1] * pace)
            pace = min(MAX_PACE, max(1 / MAX_PACE, pace * (1 + self.alpha * (ratio - 1))))
            self.pace[robot] = pace
        for table, k in ((self.table, key), (self.by_step, step)):
            n, base = table.get(k, (0.0, seconds / pace))[:2]
            table[k] = [n + 1, base + self.alpha * (seconds / pace - base), float(t_ns)]
        self.fresh.setdefault(key, op)
        self._fit = None

    def pace_of(self, robot: str) -> float:
        """How much slower than its base times ``robot`` runs now: its learned pace, or more
        where its running operation is already late by more than ``LATE``."""
        return max(self.pace.get(robot, 1.0), self.late.get(robot, 0.0))

    def overdue(self, now_ns: int, op_of: Callable[[str], Op | None] | None = None) -> list[str]:
        """Read the operations running at ``now_ns``: a robot whose operation has run more than
        ``LATE`` times its learned time runs at least that much slower than its pace says
        (``late``); the robots whose lower bound rose by a tenth or more, sorted."""
        find = op_of or self.op_of
        late: dict[str, float] = {}
        for op_id in sorted(self.started):
            robot, began = self.started[op_id]
            op = find(op_id)
            if op is None or op.pick:
                continue
            base = self._base(str(robot), op)
            pace = self.pace.get(str(robot), 1.0)
            if base is None or base <= 0:
                continue
            elapsed = (now_ns - int(began)) / NS
            if elapsed > LATE * base * pace:
                bound = min(MAX_PACE, elapsed / (LATE * base))
                late[str(robot)] = max(late.get(str(robot), 0.0), bound)
        risen = sorted(
            r
            for r, p in late.items()
            if p > 1.1 * max(self.late.get(r, 0.0), self.pace.get(r, 1.0))
        )
        if late != self.late:
            self._fit = None
        self.late = late
        return risen

    def _base(self, robot: str, op: Op) -> float | None:
        """``robot``'s base time for ``op`` (at these stations, else at any), if learned."""
        got = self.table.get(key_of(robot, op))
        if got is not None and got[0] >= self.min_samples:
            return got[1]
        step = self.by_step.get(f"{robot} {op.spec.name}")
        if step is not None and step[0] >= self.min_samples:
            return step[1]
        return None

    def mean(self, robot: str, op: Op) -> float | None:
        """The learned time of ``robot`` for ``op`` (s): its base time at these stations (else
        at any) times the robot's pace; without enough samples of its own, the speed model's
        estimate (``estimate``); None where that has nothing to go on either."""
        base = self._base(robot, op)
        if base is not None:
            return base * self.pace_of(robot)
        return self.estimate(robot, op.spec.name)

    def estimate(self, robot: str, step: str) -> float | None:
        """A time for a step ``robot`` has not done ``min_samples`` times yet, from the times
        learned so far, taken as a robot's factor times a step's work (a robot slow at one
        step is as slow at the others): ``log t = a_robot + w_step`` fitted, least squares by
        alternating means, to every robot's time for every step it did (one sample counts
        here). None if the robot has done no step yet, or no robot this one."""
        if self._fit is None:
            self._fit = self._model()
        factor, work = self._fit
        if robot not in factor or step not in work:
            return None
        return math.exp(factor[robot] + work[step])

    def _model(self) -> tuple[dict[str, float], dict[str, float]]:
        cells: dict[tuple[str, str], float] = {}
        for key, (n, base, _t) in sorted(self.by_step.items()):
            robot, step = key.split(" ", 1)
            if n >= 1 and base > 0:
                cells[(robot, step)] = math.log(base * self.pace_of(robot))
        robots = sorted({r for r, _s in cells})
        steps = sorted({s for _r, s in cells})
        factor = dict.fromkeys(robots, 0.0)
        work = {s: 0.0 for s in steps}
        for _ in range(FIT_ROUNDS):
            for s in steps:
                mine = [v - factor[r] for (r, t), v in cells.items() if t == s]
                work[s] = sum(mine) / len(mine)
            for r in robots:
                mine = [v - work[t] for (q, t), v in cells.items() if q == r]
                factor[r] = sum(mine) / len(mine)
        return factor, work

    def paces(self) -> dict[str, dict[str, float]]:
        """Step -> robot -> its learned time at any stations (s): how it runs now."""
        out: dict[str, dict[str, float]] = {}
        for key, (_n, base, _t) in sorted(self.by_step.items()):
            robot, step = key.split(" ", 1)
            out.setdefault(step, {})[robot] = base * self.pace_of(robot)
        return out

    def take_fresh(self) -> dict[str, Op]:
        """Keys updated since the last call (in the order they were), an operation of each."""
        out, self.fresh = self.fresh, {}
        return out

    def report(self) -> dict[str, Any]:
        """``robot step stations`` -> {n, mean_s} (for ``kpis.json``): the learned times as
        the policy reads them (base times the robot's pace)."""
        return {
            k: {"n": int(n), "mean_s": round(base * self.pace_of(k.split(" ", 1)[0]), 4)}
            for k, (n, base, _) in sorted(self.table.items())
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "by_step": self.by_step,
            "pace": self.pace,
            "started": self.started,
            "late": self.late,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.table = {k: list(v) for k, v in data["table"].items()}
        self.by_step = {k: list(v) for k, v in data["by_step"].items()}
        self.pace = {k: float(v) for k, v in data["pace"].items()}
        self.started = {k: list(v) for k, v in data["started"].items()}
        self.late = {k: float(v) for k, v in data.get("late", {}).items()}
        self._fit = None
