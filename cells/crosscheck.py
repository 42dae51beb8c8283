"""The audit's cross-checks: the supervisor's log held against time, physics and the world.

The checks in ``cells.audit`` replay the event log; these ask whether the log
could be true at all, so a log that was edited (or a supervisor that lies)
fails:

* **sim time monotone**: no line is earlier than the one before it;
* **robots recovered**, judged from the outages in the log: a robot is down
  from ``robot_lost`` or a state outside Idle and Execute until it is heard
  in Idle or Execute again; none may be down at the end (unless a permanent
  fault failed it). The last state a robot reported is not trusted: a robot
  lost while in Execute still "reports" Execute;
* **physical minimum**: every operation done took at least the least time its
  skill can physically take (``MIN_S``: the motions and dwells of the
  robot's plan at their shortest), from the robot's first start (or award)
  of it to its ``op_done``;
* **the world saw it**: every operation reported done has the arm's own acts
  in ``world.jsonl`` (written by the world, not the supervisor) in that
  window: a grasp and a release for a pick-and-place, a fastening that took
  for a fasten, an inspection whose camera saw the unit for an inspect;
* **restored runs produce**: after every ``supervisor_restored`` (a restart or
  ``lightsout resume``) a unit completes within ``RESTORED_S``, if the run
  lasted that long and the cell had work then: a line of a pull factory with
  nothing released to it starts no unit, so a span in which units were in the
  making for less than the longest cycle of the run is not judged
  (``making``, ``busy_s``; a cell that is never idle is always judged).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from bus.enums import COMPLETED_EVENTS, Skill
from bus.errors import LightsoutError
from robots.motion import MIN_SEGMENT_S
from robots.plans import GRASP_S, INSPECT_DWELL_S, RELEASE_S, SCREW_S, SCREWS

NS = 1_000_000_000
UP_STATES = ("Idle", "Execute")
MIN_S: dict[Skill, float] = {
    # above, down, grasp, up, over + down, release, up: six moves and two dwells
    Skill.PICK_PLACE: 6 * MIN_SEGMENT_S + GRASP_S + RELEASE_S,
    # above + hover, every screw point and back to hover, up
    Skill.FASTEN: 3 * MIN_SEGMENT_S + (len(SCREWS) + 1) * SCREW_S,
    # over the unit, look
    Skill.INSPECT: MIN_SEGMENT_S + INSPECT_DWELL_S,
}
"""The least sim time each skill can take: the shortest moves (``MIN_SEGMENT_S``) and the
dwells of the robot's plan (``robots/plans.py``)."""
SLACK_NS = 2 * NS // 24
"""Two control ticks: a start is logged when its report arrives, up to a tick after it."""
EVIDENCE: dict[Skill, tuple[str, ...]] = {
    Skill.PICK_PLACE: ("grasp", "release"),
    Skill.FASTEN: ("fasten",),
    Skill.INSPECT: ("inspect",),
}
"""The world's records (``act``) an operation of each skill cannot be done without."""
RESTORED_S = 120.0
"""A restored supervisor completes a unit within this much sim time."""


def monotone(events: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether no event is earlier than the one before it.

    One exception: a restarted supervisor's first tick logs what the world saw while
    it was away at the world's own times, which go back to the journal's last commit
    (``from_t_ns``) but no further, and only until the log moves past the restart.
    """
    last = 0
    floor = -1
    back = 0
    for n, e in enumerate(events, 1):
        t = int(e.get("t_ns", 0))
        if e.get("kind") == "supervisor_restored":
            floor = int(e.get("from_t_ns", t))
        if t < last:
            if floor < 0 or t < floor:
                when = f"{t / NS:.3f} s after {last / NS:.3f} s"
                return False, f"line {n} ({e.get('kind')}) at {when}"
            back += 1
            continue
        if t > last:
            floor = -1 if e.get("kind") != "supervisor_restored" else floor
        last = t
    detail = f"{len(events)} lines in order"
    if back:
        detail += f" ({back} of the world's, logged late by a restarted supervisor)"
    return True, detail


def down_at_end(events: list[dict[str, Any]], failed: set[str]) -> tuple[list[str], str]:
    """Robots with an outage still open at the end of the log, and a summary of all of them."""
    state: dict[str, str] = {}
    lost: set[str] = set()
    since: dict[str, int] = {}
    outages: collections.Counter[str] = collections.Counter()
    for e in events:
        kind, robot = e.get("kind"), e.get("robot")
        if not isinstance(robot, str):
            continue
        t = int(e.get("t_ns", 0))
        was_up = robot in state and state[robot] in UP_STATES and robot not in lost
        if kind == "robot_state":
            state[robot] = str(e.get("dst", ""))
            lost.discard(robot)
        elif kind == "robot_lost":
            lost.add(robot)
        elif kind == "robot_joined":
            lost.discard(robot)
        else:
            continue
        up = state.get(robot) in UP_STATES and robot not in lost
        if was_up and not up:
            outages[robot] += 1
            since[robot] = t
    bad = []
    for robot in sorted(state):
        if robot in failed:
            continue
        if robot in lost or state[robot] not in UP_STATES:
            why = "lost" if robot in lost else state[robot]
            bad.append(f"{robot} down ({why}) from {since.get(robot, 0) / NS:.1f} s to the end")
    detail = ", ".join(f"{r}: {outages[r]} outages, all over" for r in sorted(state))
    return bad, detail


def step_skills(cell_path: str) -> dict[str, Skill]:
    """Each recipe step's skill, from the run's cell file."""
    from cells.schema import load_cell

    cell = load_cell(cell_path)
    return {op.name: op.skill for r in cell.recipes for op in r.ops}


def load_world(run_dir: Path) -> list[dict[str, Any]] | None:
    """The world's records of the run (None if the run kept none)."""
    path = run_dir / "world.jsonl"
    if not path.exists():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        # a power cut may leave a last line half written: it holds nothing the log relies on
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return [r for r in out if isinstance(r, dict)]
    except OSError as exc:
        raise LightsoutError(f"{path}: cannot read: {exc.strerror}") from None


def operations(
    events: list[dict[str, Any]], skills: dict[str, Skill]
) -> list[tuple[str, str, Skill, int, int]]:
    """Every ``op_done``: (op, robot, skill, first start or award by that robot, done)."""
    first: dict[tuple[str, str], int] = {}
    out = []
    for e in events:
        kind = e.get("kind")
        if kind not in ("op_awarded", "op_started", "op_done"):
            continue
        op, robot, t = str(e.get("op", "")), str(e.get("robot", "")), int(e.get("t_ns", 0))
        if kind != "op_done":
            first.setdefault((op, robot), t)
            continue
        skill = skills.get(op.split("/")[-1])
        if skill is not None:
            out.append((op, robot, skill, first.get((op, robot), -1), t))
    return out


def physical(ops: list[tuple[str, str, Skill, int, int]]) -> list[str]:
    """Operations done faster than their skill can be (or never given to their robot)."""
    problems = []
    for op, robot, skill, start, done in ops:
        if start < 0:
            problems.append(f"{op} done by {robot} at {done / NS:.1f} s, never given to it")
        elif done - start + SLACK_NS < MIN_S[skill] * NS:
            took = (done - start) / NS
            problems.append(f"{op} ({skill.value}) took {took:.2f} s < {MIN_S[skill]:.2f} s")
    return problems


def unseen(ops: list[tuple[str, str, Skill, int, int]], world: list[dict[str, Any]]) -> list[str]:
    """Operations done with no act of their robot's in the world's records to show for it."""
    acts: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for rec in world:
        acts[(str(rec.get("robot")), str(rec.get("act")))].append(rec)
    problems = []
    for op, robot, skill, start, done in ops:
        unit = op.split("/")[0]
        for act in EVIDENCE[skill]:
            recs = acts.get((robot, act), [])
            if skill is Skill.PICK_PLACE:
                ok = any(r.get("target") and start - SLACK_NS <= r["t_ns"] <= done for r in recs)
            else:
                ok = any(
                    r.get("target") == unit
                    and r.get("ok")
                    and start - SLACK_NS <= r["t_ns"] <= done
                    for r in recs
                )
            if not ok:
                problems.append(
                    f"{op} done by {robot} at {done / NS:.1f} s: the world saw no {act}"
                )
    return problems


def making(events: list[dict[str, Any]], end_ns: int) -> list[tuple[int, int]]:
    """The spans of sim time (ns) in which at least one unit was in the making: from a
    ``unit_started`` while none was, until the last open one completed or was scrapped."""
    open_units: set[str] = set()
    spans: list[tuple[int, int]] = []
    start = 0
    for e in events:
        kind, unit, t = e.get("kind"), e.get("unit"), int(e.get("t_ns", 0))
        if not isinstance(unit, str):
            continue
        if kind == "unit_started":
            if not open_units:
                start = t
            open_units.add(unit)
        elif kind in (*COMPLETED_EVENTS, "unit_scrapped") and unit in open_units:
            open_units.discard(unit)
            if not open_units:
                spans.append((start, t))
    if open_units:
        spans.append((start, end_ns))
    return spans


def busy_s(spans: list[tuple[int, int]], t0_ns: int, t1_ns: int) -> float:
    """Seconds of [``t0_ns``, ``t1_ns``] in which a unit was in the making (``making``)."""
    return sum(max(0, min(b, t1_ns) - max(a, t0_ns)) for a, b in spans) / NS


def longest_cycle_s(events: list[dict[str, Any]], default: float = 60.0) -> float:
    """The longest cycle time of a unit shipped in the run (``default`` if none shipped): the
    work a span must have held to be judged for not completing a unit."""
    cycles = [
        float(e["cycle_s"])
        for e in events
        if e.get("kind") == "unit_shipped" and isinstance(e.get("cycle_s"), int | float)
    ]
    return max(cycles, default=default)


def restored_producing(events: list[dict[str, Any]], end_ns: int) -> tuple[list[str], int]:
    """Restarts (``supervisor_restored``) not followed by a completed unit within ``RESTORED_S``
    while the cell had work (units in the making for at least the longest cycle)."""
    restored = [int(e["t_ns"]) for e in events if e.get("kind") == "supervisor_restored"]
    done = [int(e["t_ns"]) for e in events if e.get("kind") in COMPLETED_EVENTS]
    spans, cycle = making(events, end_ns), longest_cycle_s(events)
    bad = []
    for t in restored:
        limit = t + int(RESTORED_S * NS)
        if limit > end_ns:
            continue  # the run ended too soon after it to judge
        if busy_s(spans, t, limit) < cycle:
            continue  # nothing to build then (a pull line with nothing released)
        if not any(t < d <= limit for d in done):
            bad.append(f"restored at {t / NS:.1f} s, no unit done by {limit / NS:.1f} s")
    return bad, len(restored)
