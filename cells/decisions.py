"""The cell's own decisions on its wear, audited from the run's files alone.

``lightsout decisions RUN`` lists every diagnosis (``events.jsonl``) with the
evidence that triggered it and what became of it: a maintenance (started,
in mode Maintenance, done), a diagnosis logged as wanting maintenance with
why, one still waiting. Then it checks each maintenance against evidence the
supervisor did not write itself:

* **acted on a diagnosis**: every ``maintenance_started`` follows a
  ``diagnosis`` of that robot, with the same cause and component, whose
  statistic crossed its threshold;
* **the robot said so**: the robot's own mode reports (its ``mode_changed``
  and heartbeats, logged as ``robot_mode``) put it in Maintenance after the
  maintenance started and back in Production by the time it was done;
* **no work in Maintenance**: no operation was awarded to the robot from the
  start of its maintenance to its end, and it started none from the time it
  was in mode Maintenance; in the world's records (``world.jsonl``, written
  by the world from the robot's acts) the robot's mode was Maintenance over
  that time and it grasped, released, fastened and inspected nothing while
  it was;
* **restored by the world**: the world's records show the robot maintained
  while it was in Maintenance, and say what was taken off it;
* **before the failure**: no permanent fault of the robot came before its
  maintenance began (a drive that tripped first is not maintained).

``lightsout audit RUN`` runs the same checks among its own. Self-optimization's
changes (allocation, speed) are listed and checked after them, by
``cells.optimize_audit``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bus.simtime import NS
from cells import crosscheck
from cells.audit import Check, load

BUSY_ACTS = ("grasp", "release", "fasten", "inspect")
"""World records of an arm doing work."""
SLACK_NS = NS // 4
"""An act of the tick the mode changed on may be on either side of it."""


@dataclasses.dataclass(slots=True)
class Episode:
    """One maintenance, from the log: its times (-1: not reached) and the diagnosis it acts on."""

    robot: str
    cause: str
    component: str
    started_ns: int
    diagnosed_ns: int
    evidence: dict[str, Any]
    begun_ns: int = -1
    done_ns: int = -1
    cancelled: str = ""


def episodes(events: list[dict[str, Any]]) -> list[Episode]:
    """Every maintenance of the log, in the order they started."""
    out: list[Episode] = []
    open_: dict[str, Episode] = {}
    for e in events:
        kind, robot, t = e.get("kind"), str(e.get("robot", "")), int(e.get("t_ns", 0))
        if kind == "maintenance_started":
            ep = Episode(
                robot,
                str(e.get("cause", "")),
                str(e.get("component", "")),
                t,
                int(e.get("diagnosed_ns", -1)),
                dict(e.get("evidence") or {}),
            )
            open_[robot] = ep
            out.append(ep)
        elif kind == "maintenance_begun" and robot in open_:
            open_[robot].begun_ns = t
        elif kind == "maintenance_done" and robot in open_:
            open_.pop(robot).done_ns = t
        elif kind == "maintenance_cancelled" and robot in open_:
            open_.pop(robot).cancelled = str(e.get("reason", "cancelled"))
    return out


def listing(events: list[dict[str, Any]], end_ns: int) -> list[str]:
    """One line per diagnosis and what was done about it, in log order."""
    eps = episodes(events)
    lines = []
    for e in events:
        if e.get("kind") != "diagnosis":
            continue
        t, target = int(e.get("t_ns", 0)), str(e.get("target", ""))
        ev = e.get("evidence") or {}
        why = (
            f"{ev.get('method', '?')} {ev.get('statistic', '?')} > {ev.get('threshold', '?')}"
            f" after {ev.get('samples', '?')} samples, recent mean {ev.get('recent_mean', '?')}"
            f" against {ev.get('baseline_mean', '?')} +- {ev.get('baseline_sigma', '?')}"
        )
        head = f"{t / NS:8.1f} s  {target} {e.get('component', '')}: {e.get('cause', '')} ({why})"
        ep = next((p for p in eps if p.robot == target and p.diagnosed_ns == t), None)
        wanted = next(
            (
                w
                for w in events
                if w.get("kind") == "maintenance_wanted"
                and w.get("target") == target
                and int(w.get("t_ns", 0)) >= t
            ),
            None,
        )
        if ep is not None:
            done = f"done at {ep.done_ns / NS:.1f} s" if ep.done_ns >= 0 else "not done by the end"
            if ep.cancelled:
                done = f"cancelled: {ep.cancelled}"
            begun = f"in Maintenance at {ep.begun_ns / NS:.1f} s, " if ep.begun_ns >= 0 else ""
            act = f"maintenance: taken out at {ep.started_ns / NS:.1f} s, {begun}{done}"
        elif wanted is not None:
            act = f"not acted on: {wanted.get('reason', '')}"
        else:
            act = f"waiting at the end ({end_ns / NS:.1f} s)"
        lines.append(f"{head}\n{'':12}-> {act}")
    return lines


def _intervals(events: list[dict[str, Any]], robot: str, end_ns: int) -> list[tuple[int, int]]:
    """When the robot's own reports had it in Maintenance (from the ``robot_mode`` lines)."""
    out, since = [], -1
    for e in events:
        if e.get("kind") != "robot_mode" or e.get("robot") != robot:
            continue
        t = int(e.get("t_ns", 0))
        if e.get("dst") == "Maintenance" and since < 0:
            since = t
        elif e.get("dst") != "Maintenance" and since >= 0:
            out.append((since, t))
            since = -1
    if since >= 0:
        out.append((since, end_ns))
    return out


def _world_modes(world: list[dict[str, Any]], robot: str, end_ns: int) -> list[tuple[int, int]]:
    """When the world's records had the robot's acts in mode Maintenance."""
    out, since = [], -1
    for r in world:
        if r.get("robot") != robot or r.get("act") != "mode":
            continue
        t = int(r.get("t_ns", 0))
        if r.get("target") == "Maintenance" and since < 0:
            since = t
        elif r.get("target") != "Maintenance" and since >= 0:
            out.append((since, t))
            since = -1
    if since >= 0:
        out.append((since, end_ns))
    return out


def checks(
    events: list[dict[str, Any]], world: list[dict[str, Any]] | None, end_ns: int
) -> list[Check]:
    """The checks of the module docstring (each passes with nothing to judge)."""
    eps = episodes(events)
    n = f"{len(eps)} maintenances"
    acted, said, idle, seen, early = [], [], [], [], []
    diagnoses = [e for e in events if e.get("kind") == "diagnosis"]
    for ep in eps:
        name = f"{ep.robot} at {ep.started_ns / NS:.1f} s"
        diag = next(
            (
                d
                for d in diagnoses
                if d.get("target") == ep.robot
                and int(d.get("t_ns", 0)) == ep.diagnosed_ns <= ep.started_ns
                and d.get("cause") == ep.cause
                and d.get("component") == ep.component
            ),
            None,
        )
        ev = (diag or {}).get("evidence") or {}
        if diag is None or not float(ev.get("statistic", 0)) > float(ev.get("threshold", 0)):
            acted.append(f"{name}: no diagnosis of {ep.cause} ({ep.component}) that crossed")
        if ep.cancelled:
            continue
        end = ep.done_ns if ep.done_ns >= 0 else end_ns
        spans = _intervals(events, ep.robot, end_ns)
        inside = [s for s in spans if ep.started_ns <= s[0] <= end]
        if ep.begun_ns >= 0 and not inside:
            said.append(f"{name}: the robot never said it was in Maintenance")
        if ep.done_ns >= 0 and any(s[1] > ep.done_ns for s in inside):
            said.append(f"{name}: still in Maintenance, by its own word, when done")
        in_mode = inside[0][0] if inside else end
        for e in events:
            t = int(e.get("t_ns", 0))
            if e.get("robot") != ep.robot or not ep.started_ns <= t <= end:
                continue
            if e.get("kind") == "op_awarded" or (e.get("kind") == "op_started" and t >= in_mode):
                idle.append(f"{name}: {e.get('kind')} {e.get('op')} at {t / NS:.1f} s")
        if world is not None and ep.begun_ns >= 0:
            w_spans = [s for s in _world_modes(world, ep.robot, end_ns) if s[0] <= end]
            w_spans = [s for s in w_spans if s[1] >= ep.started_ns]
            if not w_spans:
                seen.append(f"{name}: the world never saw its acts in mode Maintenance")
            for r in world:
                t = int(r.get("t_ns", 0))
                busy = r.get("robot") == ep.robot and r.get("act") in BUSY_ACTS
                if busy and any(a + SLACK_NS < t < b - SLACK_NS for a, b in w_spans):
                    idle.append(f"{name}: the world saw it {r.get('act')} at {t / NS:.1f} s")
            fixed = [
                r
                for r in world
                if r.get("robot") == ep.robot
                and r.get("act") == "maintained"
                and ep.begun_ns <= int(r.get("t_ns", 0)) <= end
            ]
            if not fixed:
                seen.append(f"{name}: the world has no record of maintaining it")
            elif any(r.get("target") == "tripped" for r in fixed):
                seen.append(f"{name}: the world found its drive tripped: nothing was undone")
        for e in events:
            if (
                e.get("kind") == "fault_injected"
                and e.get("target") == ep.robot
                and e.get("permanent")
                and int(e.get("t_ns", 0)) < (ep.begun_ns if ep.begun_ns >= 0 else end)
            ):
                early.append(f"{name}: it failed for good at {int(e['t_ns']) / NS:.1f} s first")
    if world is None and eps:
        seen.append("no world.jsonl: the world's records are missing")
    return [
        Check("maintenance acted on a diagnosis", not acted, "; ".join(acted[:5]) or n),
        Check("maintenance in the robot's own word", not said, "; ".join(said[:5]) or n),
        Check("no work in Maintenance", not idle, "; ".join(idle[:5]) or n),
        Check("the world maintained it", not seen, "; ".join(seen[:5]) or n),
        Check("maintained before it failed", not early, "; ".join(early[:5]) or n),
    ]


def audit_decisions(run_dir: Path) -> tuple[list[str], list[Check]]:
    """The listing and the checks for the run in ``run_dir``."""
    events, kpis = load(run_dir)
    end = round(float(kpis.get("duration_s", 0.0)) * NS)
    return listing(events, end), checks(events, crosscheck.load_world(run_dir), end)
