"""Self-optimization's changes, listed and checked from the run's files alone.

``lightsout decisions RUN`` (with the diagnoses and maintenances,
``cells.decisions``) lists every ``allocation_changed``, ``station_yielded``
and ``speed_tuned`` with its reason and evidence, and checks them against the
log:

* **allocation by the learned times**: the robot a step moved to has the
  least learned time in the change's own evidence, and every robot in it did
  the step (it has samples) before the change;
* **stations yielded by the learned times**: an operation held back for
  another holds the station longer by the yield's own evidence
  (``2 ready_in_s + to_s < held_s``), the other is of another unit, neither
  was done yet, and the held operation was not running (started and not ended
  or given back);
* **speed within limits**: every tuned scale lies within the limits logged
  with it, moves by at most one step from the scale before it (the change
  before, or 1), and a lowering follows the drops it counts: at least that
  many of the robot's carries failed (``op_failed``, dropped or missed) in the
  log since its previous change;
* **off means off**: a run with optimization off (``kpis.json``
  ``optimize.enabled``) logged no change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bus.simtime import NS
from cells.audit import Check, load
from supervisor.health import LOST

KINDS = ("allocation_changed", "station_yielded", "speed_tuned")
STEP_SLACK = 1e-9


def audit_optimization(run_dir: Path) -> tuple[list[str], list[Check]]:
    """The listing and the checks for the run in ``run_dir``."""
    events, kpis = load(run_dir)
    return listing(events), checks(events, kpis)


def listing(events: list[dict[str, Any]]) -> list[str]:
    """One line per change with its reason, and one with its evidence."""
    lines = []
    for e in events:
        if e.get("kind") not in KINDS:
            continue
        t = int(e.get("t_ns", 0)) / NS
        if e["kind"] == "allocation_changed":
            head = f"{t:8.1f} s  {e.get('step', '')}: {e.get('src') or '-'} -> {e.get('dst', '')}"
        elif e["kind"] == "station_yielded":
            head = (
                f"{t:8.1f} s  {e.get('station', '')}: {e.get('op', '')} waits for {e.get('to', '')}"
            )
        else:
            head = f"{t:8.1f} s  {e.get('robot', '')} speed scale {e.get('src')} -> {e.get('dst')}"
        lines.append(f"{head}  ({e.get('reason', '')})\n{'':12}evidence {e.get('evidence', {})}")
    return lines


def _yield_faults(e: dict[str, Any], done: set[str], running: set[str]) -> list[str]:
    """What is wrong with one ``station_yielded`` given the log before it."""
    ev = e.get("evidence") or {}
    op, to = str(e.get("op", "")), str(e.get("to", ""))
    name = f"{op} for {to} at {int(e.get('t_ns', 0)) / NS:.1f} s"
    out = []
    held, short, wait = (float(ev.get(k, 0.0)) for k in ("held_s", "to_s", "ready_in_s"))
    if not 2 * wait + short < held + STEP_SLACK:
        out.append(f"{name}: 2 x {wait} + {short} is not less than {held}")
    if op.split("/", 1)[0] == to.split("/", 1)[0]:
        out.append(f"{name}: the same unit")
    for o in (op, to):
        if o in done:
            out.append(f"{name}: {o} was done already")
    if op in running:
        out.append(f"{name}: {op} was running")
    return out


def checks(events: list[dict[str, Any]], kpis: dict[str, Any]) -> list[Check]:
    """The checks of the module docstring (each passes with nothing to judge)."""
    changes = [e for e in events if e.get("kind") in KINDS]
    n = f"{len(changes)} changes"
    moved, limits, yielded = [], [], []
    done: dict[str, set[str]] = {}
    ops_done: set[str] = set()
    running: set[str] = set()
    for e in events:
        kind, t = e.get("kind"), int(e.get("t_ns", 0))
        if kind == "op_done":
            step = str(e.get("op", "")).split("/", 1)[-1].split("~", 1)[0]
            done.setdefault(step, set()).add(str(e.get("robot", "")))
            ops_done.add(str(e.get("op", "")))
        if kind in ("op_started", "op_readopted"):
            running.add(str(e.get("op", "")))
        elif kind in ("op_done", "op_failed", "op_requeued", "op_settled"):
            running.discard(str(e.get("op", "")))
        if kind == "station_yielded":
            yielded.extend(_yield_faults(e, ops_done, running))
        if kind != "allocation_changed":
            continue
        ev = e.get("evidence") or {}
        learned = {str(r): float(x) for r, x in (ev.get("learned_s") or {}).items()}
        step, dst = str(e.get("step", "")), str(e.get("dst", ""))
        name = f"{step} to {dst} at {t / NS:.1f} s"
        if dst not in learned or any(x < learned[dst] for x in learned.values()):
            moved.append(f"{name}: not the least learned time of {learned}")
        missing = sorted(set(learned) - done.get(step, set()))
        if missing:
            moved.append(f"{name}: {', '.join(missing)} never did {step} before")
    last: dict[str, tuple[float, int]] = {}
    for e in (c for c in changes if c["kind"] == "speed_tuned"):
        robot, t = str(e.get("robot", "")), int(e.get("t_ns", 0))
        ev = e.get("evidence") or {}
        lo, hi = (ev.get("limits") or [1.0, 1.0])[:2]
        was, now = float(e.get("src", 1.0)), float(e.get("dst", 1.0))
        before, since = last.get(robot, (1.0, -1))
        name = f"{robot} at {t / NS:.1f} s"
        if not float(lo) <= now <= float(hi):
            limits.append(f"{name}: {now} outside [{lo}, {hi}]")
        if (
            abs(was - before) > STEP_SLACK
            or abs(now - was) > float(ev.get("step", 1.0)) + STEP_SLACK
        ):
            limits.append(f"{name}: {was} -> {now} after {before}")
        if now < was:
            drops = sum(
                1
                for d in events
                if d.get("kind") == "op_failed"
                and d.get("robot") == robot
                and since < int(d.get("t_ns", 0)) <= t
                and str(d.get("detail", "")).startswith(LOST)
            )
            if drops < int(ev.get("drops", 0)):
                limits.append(f"{name}: {ev.get('drops')} drops counted, {drops} in the log")
        last[robot] = (now, t)
    off = not (kpis.get("optimize") or {}).get("enabled", True)
    return [
        Check("allocation by the learned times", not moved, "; ".join(moved[:5]) or n),
        Check(
            "stations yielded by the learned times",
            not yielded,
            "; ".join(yielded[:5]) or n,
        ),
        Check("speed within limits", not limits, "; ".join(limits[:5]) or n),
        Check(
            "optimization off changes nothing",
            not (off and changes),
            f"{len(changes)} changes with optimization off" if off and changes else n,
        ),
    ]
