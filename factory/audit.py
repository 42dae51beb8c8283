"""An audit of a finished factory run from its files: the material, the shipments, the orders.

``lightsout factory audit`` answers what the issue asks of a shift: does the
material balance, did every shipment carry units the lines really built, and
was every order delivered on time or is its lateness explained. It reads only
the run's files and recounts from the event logs what the coordinator also
counted, so a bookkeeping error in the coordinator shows as a disagreement:

- **material**, per part kind: *received* is the sum of the coordinator's
  ``lot_received``; *consumed*, *scrapped*, *shipped* and the WIP inside the
  lines are counted from the lines' own logs (``part_created``,
  ``unit_shipped``, ``unit_scrapped``, ``part_scrapped``) and the shipments;
  only what is on a shelf (the stores' stock and the parts waiting at each
  line side, from ``kpis.json``) is not in any log, and the few parts the
  feeders made in a line's last ticks, after its supervisor's last step
  (``made_unlogged``, shown apart). Received must equal the
  sum, and each term must equal the coordinator's own row.
- **shipments**: every serial shipped is a unit its line's log says it
  shipped, no serial is shipped twice, a shipment carries its order's
  quantity, and each of its units was built for a production order of that
  order (the coordinator's ``unit_built`` and ``order_released``).
- **orders**: an order shipped by its due time is on time; one due after the
  run's end and still open is not due yet. Any other is late, and the audit
  gathers the evidence of why from the logs over the order's window (from its
  arrival to its shipment, or the end): stock-outs and late lots, the faults
  injected into the lines, and the capacity it met (the units of orders
  ahead of it or with it, still to build at its arrival, against the rate the
  lines built at over the window). A late order with none of these is
  unexplained, and fails the audit.

The lines' own ledgers are each line's audit's (``lightsout audit
lines/NAME``, which ``factory run --chaos`` runs at its end).
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bus.errors import LightsoutError

S = 1_000_000_000
STATES = ("wip", "consumed", "scrapped", "shipped")


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One line of the audit: what was checked, whether it holds, and the figures."""

    name: str
    ok: bool
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class OrderVerdict:
    """How one customer order ended, and for a late one the evidence of why."""

    order: str
    quantity: int
    due_s: float
    shipped_s: float | None
    verdict: str
    """``on time``, ``late``, ``not due yet``."""
    why: tuple[str, ...] = ()

    @property
    def explained(self) -> bool:
        """On time, not due, or late with evidence."""
        return self.verdict != "late" or bool(self.why)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise LightsoutError(f"{path}: missing (not a finished factory run?)")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise LightsoutError(f"{path}:{n}: not JSON ({exc.msg})") from None


@dataclasses.dataclass(slots=True)
class _Line:
    """What one line's log says: its parts' kinds, the units it shipped, faults by time."""

    kind: dict[str, str] = dataclasses.field(default_factory=dict)
    shipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    scrapped: list[str] = dataclasses.field(default_factory=list)
    faults: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def _read_line(path: Path) -> _Line:
    ln = _Line()
    for e in _jsonl(path):
        k = e.get("kind")
        if k == "part_created":
            ln.kind[e["part"]] = e["part_kind"]
        elif k == "unit_shipped":
            ln.shipped.setdefault(e["unit"], list(e["parts"]))
        elif k in ("unit_scrapped", "part_scrapped"):
            ln.scrapped.extend(str(p) for p in (e.get("parts") or [e.get("part")]) if p)
        elif k == "fault_injected":
            ln.faults.append((int(e["t_ns"]), str(e["fault"])))
    return ln


def audit_factory(run: Path) -> tuple[list[Check], list[OrderVerdict]]:
    """Audit the factory run in ``run``: the checks, and every order's verdict. Files that
    are missing, not JSON, or lack what a factory run's files hold are one error."""
    try:
        return _audit(run)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, LightsoutError):
            raise
        why = f"a key {exc} is missing" if isinstance(exc, KeyError) else str(exc)[:200]
        raise LightsoutError(f"{run}: not a factory run's files ({why})") from None


def _audit(run: Path) -> tuple[list[Check], list[OrderVerdict]]:
    kpis_path = run / "kpis.json"
    if not kpis_path.is_file():
        raise LightsoutError(f"{kpis_path}: missing (not a finished factory run?)")
    kpis = json.loads(kpis_path.read_text(encoding="utf-8"))
    events = list(_jsonl(run / "events.jsonl"))
    lines = {name: _read_line(run / "lines" / name / "events.jsonl") for name in kpis["lines"]}
    end_ns = int(kpis["duration_s"] * S)
    shipments = [e for e in events if e["kind"] == "shipment"]
    built = _built(events)
    checks = [
        _material(kpis, events, lines, shipments),
        *_shipments(events, lines, shipments, built),
    ]
    verdicts = _orders(events, lines, shipments, built, end_ns)
    late = [v for v in verdicts if v.verdict == "late"]
    unexplained = [v.order for v in late if not v.explained]
    on_time = sum(v.verdict == "on time" for v in verdicts)
    checks.append(
        Check(
            "every order delivered on time or its lateness explained",
            not unexplained,
            f"{len(verdicts)} orders: {on_time} on time, {len(late)} late"
            + (f", unexplained: {', '.join(unexplained)}" if unexplained else "")
            + f", {sum(v.verdict == 'not due yet' for v in verdicts)} not due yet",
        )
    )
    return checks, verdicts


def _built(events: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    """Every unit the coordinator took as built: its time, serial, and the customer order
    of the production order it was built for (``unit_built`` joined to ``order_released``)."""
    po_order = {e["production_order"]: e["order"] for e in events if e["kind"] == "order_released"}
    return [
        (int(e["t_ns"]), e["serial"], po_order.get(e.get("production_order") or ""))
        for e in events
        if e["kind"] == "unit_built"
    ]


def _material(
    kpis: dict[str, Any],
    events: list[dict[str, Any]],
    lines: dict[str, _Line],
    shipments: list[dict[str, Any]],
) -> Check:
    """received = on the shelves + WIP + consumed + scrapped + shipped, per kind."""
    delivered = {s for e in shipments for s in e["units"]}
    received: collections.Counter[str] = collections.Counter()
    for e in events:
        if e["kind"] == "lot_received":
            received[e["part_kind"]] += int(e["size"])
    counts = {s: collections.Counter[str]() for s in STATES}
    shelf: collections.Counter[str] = collections.Counter()
    for store in kpis["stores"].values():
        shelf.update({k: int(n) for k, n in store.get("stock", {}).items()})
    unlogged: collections.Counter[str] = collections.Counter()
    for name, ln in lines.items():
        inside: set[str] = set()
        for unit, parts in ln.shipped.items():
            state = "shipped" if f"{name}:{unit}" in delivered else "consumed"
            for p in parts:
                if p in ln.kind and p not in inside:
                    counts[state][ln.kind[p]] += 1
                    inside.add(p)
        for p in ln.scrapped:
            if p in ln.kind and p not in inside:
                counts["scrapped"][ln.kind[p]] += 1
                inside.add(p)
        for p, kd in ln.kind.items():
            if p not in inside:
                counts["wip"][kd] += 1
        for kd, n in kpis["lines"][name].get("line_side", {}).items():
            counts["wip"][kd] += int(n)
        for kd, n in kpis["lines"][name].get("made_unlogged", {}).items():
            counts["wip"][kd] += int(n)
            unlogged[kd] += int(n)
    bad, parts = [], []
    for kd in sorted(set(received) | set(kpis.get("material", {}))):
        terms = {s: counts[s][kd] for s in STATES}
        total = shelf[kd] + sum(terms.values())
        row = kpis.get("material", {}).get(kd, {})
        theirs = {s: row.get(s) for s in ("received", *STATES)}
        if total != received[kd]:
            bad.append(f"{kd}: received {received[kd]} but {total} accounted for")
        elif theirs != {"received": received[kd], **terms}:
            bad.append(f"{kd}: the coordinator counted {theirs}, the logs {terms}")
        parts.append(
            f"{kd}: {received[kd]} = {shelf[kd]} on shelves + {terms['wip']} WIP + "
            f"{terms['consumed']} consumed + {terms['scrapped']} scrapped + "
            f"{terms['shipped']} shipped"
            + (
                f" ({unlogged[kd]} of the WIP made after the last logged step)"
                if unlogged[kd]
                else ""
            )
        )
    return Check("material balances (recounted from the logs)", not bad, "; ".join(bad or parts))


def _shipments(
    events: list[dict[str, Any]],
    lines: dict[str, _Line],
    shipments: list[dict[str, Any]],
    built: list[tuple[int, str, str | None]],
) -> list[Check]:
    """Every shipped serial was built and shipped by its line, once, for that order."""
    quantity = {e["order"]: int(e["quantity"]) for e in events if e["kind"] == "order_added"}
    built_for = {serial: order for _t, serial, order in built}
    seen: set[str] = set()
    problems: list[str] = []
    for sh in shipments:
        order, units = sh["order"], sh["units"]
        if len(units) != quantity.get(order):
            problems.append(
                f"{sh['shipment']}: {len(units)} units for {order} of {quantity.get(order)}"
            )
        for serial in units:
            line, _, unit = serial.partition(":")
            if serial in seen:
                problems.append(f"{serial} shipped twice")
            elif line not in lines or unit not in lines[line].shipped:
                problems.append(f"{serial}: its line's log never shipped it")
            elif built_for.get(serial) != order:
                problems.append(f"{serial}: built for {built_for.get(serial)}, shipped for {order}")
            seen.add(serial)
    orders = collections.Counter(sh["order"] for sh in shipments)
    problems += [f"{o} shipped {n} times" for o, n in sorted(orders.items()) if n > 1]
    detail = f"{len(shipments)} shipments, {len(seen)} serials, each built and shipped by its line"
    shown = "; ".join(problems[:5]) + (
        f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    )
    return [
        Check("every shipment carries units its lines built for it", not problems, shown or detail)
    ]


def _orders(
    events: list[dict[str, Any]],
    lines: dict[str, _Line],
    shipments: list[dict[str, Any]],
    built: list[tuple[int, str, str | None]],
    end_ns: int,
) -> list[OrderVerdict]:
    """Each order's verdict; a late one's evidence from its window."""
    added = [e for e in events if e["kind"] == "order_added"]
    shipped = {e["order"]: int(e["t_ns"]) for e in shipments}
    out = []
    for o in added:
        oid, due, at = o["order"], int(o["due_ns"]), int(o["t_ns"])
        when = shipped.get(oid)
        base = (oid, int(o["quantity"]), due / S, when / S if when is not None else None)
        if when is not None and when <= due:
            out.append(OrderVerdict(*base, "on time"))
            continue
        if when is None and due >= end_ns:
            out.append(OrderVerdict(*base, "not due yet"))
            continue
        until = when if when is not None else end_ns
        why = _evidence(o, added, events, lines, built, at, until)
        out.append(OrderVerdict(*base, "late", tuple(why)))
    return out


def _evidence(
    order: dict[str, Any],
    added: list[dict[str, Any]],
    events: list[dict[str, Any]],
    lines: dict[str, _Line],
    built: list[tuple[int, str, str | None]],
    at: int,
    until: int,
) -> list[str]:
    """Why an order was late: what in its window [``at``, ``until``] held the lines back."""
    why = []
    inside = [e for e in events if at <= int(e["t_ns"]) <= until]
    outs = collections.Counter(
        f"{e['part_kind']} on {e['line']}" for e in inside if e["kind"] == "stockout"
    )
    if outs:
        why.append(
            f"stock-outs: {', '.join(f'{k} ({n})' if n > 1 else k for k, n in sorted(outs.items()))}"
        )
    late_lots = sorted({e.get("supplier", "?") for e in inside if e["kind"] == "lot_late"})
    if late_lots:
        why.append(f"late lots from {', '.join(late_lots)}")
    faults = collections.Counter(
        kind for ln in lines.values() for t, kind in ln.faults if at <= t <= until
    )
    if faults:
        listed = ", ".join(
            f"{n} {k}" for k, n in sorted(faults.items(), key=lambda x: (-x[1], x[0]))
        )
        why.append(f"{sum(faults.values())} faults injected into the lines: {listed}")
    mine = (not order["rush"], int(order["due_ns"]), at, order["order"])
    ahead = {
        o["order"]
        for o in added
        if int(o["t_ns"]) <= at
        and (not o["rush"], int(o["due_ns"]), int(o["t_ns"]), o["order"]) <= mine
    }
    quantity = {o["order"]: int(o["quantity"]) for o in added}
    done_before = collections.Counter(oid for t, _s, oid in built if t < at and oid in ahead)
    to_build = sum(quantity[o] - done_before[o] for o in ahead)
    due = int(order["due_ns"])
    made = sum(1 for t, _s, _o in built if at <= t <= due)
    if made < to_build:
        why.append(
            f"capacity: {to_build} units of it and the orders ahead of it to build at its "
            f"arrival; the lines built {made} units (for any order) from then to its due time"
        )
    return why


__all__ = ["Check", "OrderVerdict", "audit_factory"]
