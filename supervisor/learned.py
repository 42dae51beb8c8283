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

The ``learned`` allocation policy (``supervisor.allocation.Learned``) awards
by finish times computed from those means: a robot's finish for an operation is when it is free (what is left of its
running operation's learned time, plus the learned times of the one it has
queued) plus its learned time for this one. The earliest finish wins, ties to
the lower name; if that robot's queue is full the operation waits for it
rather than go to a robot that would finish later. Where any able robot has no
learned time yet for the step at those stations (its step elsewhere stands in
once it has one) the operation goes to a call for bids (contract net) as
before, so a cell starts on the robots' own estimates. With optimization off
(``[optimize] enabled = false``, ``--no-optimize``) no learned time is read:
the policy is contract net throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bus.simtime import NS
from supervisor.plan import Op

MAX_KEYS = 4096
"""Learned times kept at most (robot x step x stations): a bound on the table."""


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
        """``robot step`` -> [n, mean s]: stands in at stations not yet learned."""
        self.started: dict[str, list[Any]] = {}
        """Operations running: id -> [robot, start time]."""
        self.fresh: dict[str, Op] = {}
        """Keys updated since the optimizer last looked, with an operation of each."""

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
        op = self.op_of(op_id)
        if kind != "op_done" or began is None or began[0] != robot or op is None or op.pick:
            return
        self.add(robot, op, (t - int(began[1])) / NS, t)

    def add(self, robot: str, op: Op, seconds: float, t_ns: int) -> None:
        """One operation's time."""
        key = key_of(robot, op)
        if key not in self.table and len(self.table) >= MAX_KEYS:
            return
        n, mean, _ = self.table.get(key, (0.0, seconds, 0.0))
        self.table[key] = [n + 1, mean + self.alpha * (seconds - mean), float(t_ns)]
        step = f"{robot} {op.spec.name}"
        sn, smean = self.by_step.get(step, (0.0, seconds))
        self.by_step[step] = [sn + 1, smean + self.alpha * (seconds - smean)]
        self.fresh.setdefault(key, op)

    def mean(self, robot: str, op: Op) -> float | None:
        """The learned time of ``robot`` for ``op`` (s), or None without enough samples."""
        got = self.table.get(key_of(robot, op))
        if got is not None and got[0] >= self.min_samples:
            return got[1]
        step = self.by_step.get(f"{robot} {op.spec.name}")
        if step is not None and step[0] >= self.min_samples:
            return step[1]
        return None

    def paces(self) -> dict[str, dict[str, float]]:
        """Step -> robot -> its learned time at any stations (s): how it runs now."""
        out: dict[str, dict[str, float]] = {}
        for key, (_n, mean) in sorted(self.by_step.items()):
            robot, step = key.split(" ", 1)
            out.setdefault(step, {})[robot] = mean
        return out

    def take_fresh(self) -> dict[str, Op]:
        """Keys updated since the last call (in the order they were), an operation of each."""
        out, self.fresh = self.fresh, {}
        return out

    def report(self) -> dict[str, Any]:
        """``robot step stations`` -> {n, mean_s} (for ``kpis.json``)."""
        return {
            k: {"n": int(n), "mean_s": round(mean, 4)}
            for k, (n, mean, _) in sorted(self.table.items())
        }

    def snapshot(self) -> dict[str, Any]:
        return {"table": self.table, "by_step": self.by_step, "started": self.started}

    def restore(self, data: dict[str, Any]) -> None:
        self.table = {k: list(v) for k, v in data["table"].items()}
        self.by_step = {k: list(v) for k, v in data["by_step"].items()}
        self.started = {k: list(v) for k, v in data["started"].items()}


def fastest(times: LearnedTimes, robots: Iterable[str], op: Op) -> tuple[str, dict[str, float]]:
    """The robot with the least learned time for ``op`` among ``robots`` that have one ("" if
    none), and every such robot's time."""
    known = {r: t for r in robots if (t := times.mean(r, op)) is not None}
    best = min(known, key=lambda r: (known[r], r)) if known else ""
    return best, known
