"""``lightsout factory run``: every line a real cell run, under one coordinator, in one process.

Each line runs ``cells.launch.run_cell`` (its own world, supervisor and
agents) on a thread of its own, fed through its ``LineGate``. At every
coordinator step (``factory.coordinator.step_times``) each line stops on its
world's thread at its first tick at or past that time and waits at a barrier;
the coordinator steps once all are there, then they go on. So what a line is
given depends only on the step, never on which thread ran ahead, and the same
factory file, seed and orders give the same event logs.

When every line has reached the end, the run is put together from the lines'
own files: each line's ``events.jsonl`` gives its units and parts
(``factory.genealogy.read_line_run``), its gate the lot of every part, the
units finished are pegged to their production orders in the order they were
finished, an order is shipped when its last unit is built, and the material
of every part kind is balanced. The factory run directory holds ``factory.json``
(what was run: file, seed, duration, orders, faults), ``lines/NAME`` (each a
cell run), ``genealogy.sqlite``, ``events.jsonl`` and ``kpis.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.errors import ConfigError, LightsoutError
from cells.calibrate import with_fidelity
from cells.faults import ScheduledFault
from cells.headless import RunFaults, plan_faults, write_chaos
from cells.launch import RunOptions, run_cell
from factory.control import FactoryControl
from factory.coordinator import NS, Arrival, Coordinator, step_times
from factory.genealogy import DB_NAME, Genealogy, LineRecord, read_line_run
from factory.orders import MAX_DUE_S, OrderBook
from factory.schema import FactorySpec, LineSpec
from factory.stores import scrap
from factory.supply import LateLot
from factory.view import factory_status, lines_view, orders_view, stores_view

BARRIER_S = 300.0
"""Wall seconds a line may keep the others waiting at a step before the run is given up."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrderLine:
    """An order given on the command line: ``CUSTOMER:PRODUCT:QUANTITY:DUE_S[:rush][@AT_S]``
    (``@AT_S``: it comes in at that sim time; default at the start)."""

    customer: str
    product: str
    quantity: int
    due_s: float
    rush: bool = False
    at_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> OrderLine:
        """Read one ``--order``; a bad one is one ``ConfigError`` naming it."""
        body, at, when = text.partition("@")
        bits = body.split(":")
        if len(bits) not in (4, 5) or (len(bits) == 5 and bits[4] != "rush"):
            raise ConfigError(
                "--order", text[:80], "expected CUSTOMER:PRODUCT:QUANTITY:DUE_S[:rush][@AT_S]"
            )
        try:
            qty, due, at_s = int(bits[2]), float(bits[3]), float(when) if at else 0.0
        except ValueError:
            raise ConfigError(
                "--order", text[:80], "QUANTITY is a whole number, DUE_S and AT_S seconds"
            ) from None
        if not (math.isfinite(at_s) and 0 <= at_s <= MAX_DUE_S):
            raise ConfigError("--order", text[:80], f"AT_S from 0 to {MAX_DUE_S:g} s")
        return cls(bits[0], bits[1], qty, due, len(bits) == 5, at_s)


def order_book(spec: FactorySpec, given: list[OrderLine]) -> tuple[OrderBook, list[Arrival]]:
    """An empty order book and the run's orders as arrivals, each checked now (customer
    known, product it takes, numbers in bounds), so a bad one fails before anything runs."""
    products = sorted({p for ln in spec.lines for p in ln.products})
    book, scratch = OrderBook(products, source="--order"), OrderBook(products, source="--order")
    customers = {c.name: c for c in spec.customers}
    if not given:
        raise ConfigError("--order", "", "a pull factory builds nothing without an order: give one")
    arrivals = []
    for o in given:
        c = customers.get(o.customer)
        if c is None:
            raise ConfigError(
                "--order", o.customer, f"unknown customer (known: {', '.join(customers)})"
            )
        if o.product not in c.products:
            raise ConfigError("--order", o.product, f"{o.customer} takes {', '.join(c.products)}")
        scratch.add(o.customer, o.product, o.quantity, due_s=o.due_s, now_ns=0, rush=o.rush)
        at = round(o.at_s * NS)
        arrivals.append(Arrival(at, o.customer, o.product, o.quantity, o.due_s, o.rush))
    return book, arrivals


def line_cells(spec: FactorySpec) -> dict[str, CellSpec]:
    """Every line's cell at its fidelity (at events fidelity with its calibration read and
    checked: one ``ConfigError`` naming the factory file and the line if it is not)."""
    cells = {}
    for ln in spec.lines:
        try:
            cells[ln.name] = with_fidelity(ln.cell, ln.cell_path, ln.fidelity.value)
        except ConfigError as bad:
            raise ConfigError(spec.source, f"lines.{ln.name}.fidelity", str(bad)) from None
    return cells


def plan_line(
    spec: FactorySpec,
    i: int,
    scenario: tuple[ScheduledFault, ...],
    chaos: float,
    duration_s: float,
    seed: int,
    wear: bool,
) -> RunFaults:
    """The faults of line ``i``: its scenario's and the chaos drawn from its own seed
    (``seed + i``), the same in one process and on a host of its own."""
    return plan_faults(
        spec.lines[i].cell,
        scenario=scenario,
        chaos_rate=chaos,
        duration_s=duration_s,
        seed=seed + i,
        killable=True,  # a line's members are processes, or stepped on its clock's thread
        wear=wear,
    )


def chaos_note(spec: FactorySpec, i: int, seed: int, chaos: float, wear: bool) -> str:
    """The head of line ``i``'s ``chaos.toml``: where its faults came from."""
    note = f"line {spec.lines[i].name} of factory {spec.name}: --chaos {chaos:g}"
    return note + f"{' --wear' if wear else ''} --seed {seed} (line seed {seed + i})"


def factory_meta(
    spec: FactorySpec,
    seed: int,
    duration_s: float,
    processes: bool,
    orders: list[OrderLine],
    faults: dict[str, tuple[ScheduledFault, ...]] | None,
    chaos: float,
    wear: bool,
    late: tuple[LateLot, ...],
) -> dict[str, Any]:
    """``factory.json``: what was run."""
    return {
        "factory": spec.source,
        "seed": seed,
        "duration_s": duration_s,
        "processes": processes,
        "orders": [dataclasses.asdict(o) for o in orders],
        "faults": {line: len(given) for line, given in sorted((faults or {}).items())},
        "chaos": chaos,
        "wear": wear,
        "late": [dataclasses.asdict(x) for x in late],
    }


def run_factory(
    spec: FactorySpec,
    out: Path,
    *,
    orders: list[OrderLine],
    duration_s: float,
    seed: int,
    processes: bool = False,
    faults: dict[str, tuple[ScheduledFault, ...]] | None = None,
    late: tuple[LateLot, ...] = (),
    endpoint: str | None = None,
    chaos: float = 0.0,
    wear: bool = False,
    guard_s: float = 10.0,
    keys_dir: Path | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every line of ``spec`` for ``duration_s`` under one coordinator; return the KPIs.

    With ``processes`` each line's supervisor and agents are OS processes of their own
    (its world and clock stay on its thread here, so its gate does too); ``faults`` are
    scenario faults per line name (``cells.faults``); ``chaos`` a rate of random faults on
    every line, drawn from the line's own seed as ``lightsout run --chaos`` draws them
    (``cells.headless.plan_faults``; with ``wear`` the degrading kinds too; its crashes and
    freezes kill processes with ``processes``, and members stepped on the line's clock's
    thread without, ``cells.residents``); ``guard_s`` the wall seconds a line's silent
    process is given before it is dropped (and the freeze past which a member is replaced); ``late`` lots that come late (``factory.supply``); ``endpoint`` an
    ``ipc://`` or ``tcp://`` base where the factory takes orders while it runs
    (``factory.control``; ``keys_dir`` its CURVE keys and client roles, which tcp needs);
    ``on_step`` is given the factory's view (``factory.view.factory_status``) after every
    coordinator step, every line waiting (the live console)."""
    cells = line_cells(spec)
    planned = {
        ln.name: plan_line(spec, i, (faults or {}).get(ln.name, ()), chaos, duration_s, seed, wear)
        for i, ln in enumerate(spec.lines)
    }
    book, arrivals = order_book(spec, orders)
    coord = Coordinator(spec, book, late=late, arrivals=arrivals)
    control = FactoryControl(endpoint, coord, keys_dir) if endpoint else None
    steps = step_times(duration_s)
    errors: dict[str, BaseException] = {}
    at = [0]

    def step(t_ns: int) -> None:
        if control is not None:  # nothing is journaled here: the answers go at once
            control.serve(t_ns)
            control.flush()
        coord.step(t_ns)
        if on_step is not None:
            on_step(factory_status(coord, t_ns))

    def all_there() -> None:
        step(steps[at[0]])
        at[0] += 1

    barrier = threading.Barrier(len(spec.lines), action=all_there)
    (out / "lines").mkdir(parents=True, exist_ok=False)
    meta = factory_meta(spec, seed, duration_s, processes, orders, faults, chaos, wear, late)
    meta["endpoint"] = endpoint
    (out / "factory.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    for i, ln in enumerate(spec.lines):
        if chaos:
            write_chaos(
                out / "lines" / ln.name, planned[ln.name], chaos_note(spec, i, seed, chaos, wear)
            )

    def line_thread(i: int, ln: LineSpec) -> None:
        pending = list(steps)

        def watch(world: Any) -> None:
            while pending and world.t_ns >= pending[0]:
                pending.pop(0)
                barrier.wait(timeout=BARRIER_S)

        opts = RunOptions(
            seed=seed + i,
            duration_s=duration_s,
            processes=processes,
            faults=planned[ln.name].faults,
            guard_s=guard_s,
            feed_gate=coord.gates[ln.name],
            on_event=coord.gates[ln.name].hear,
            on_kpis=coord.gates[ln.name].take_kpis,
            horizon=lambda: pending[0] if pending else 1 << 62,
        )
        try:
            run_cell(cells[ln.name], out / "lines" / ln.name, opts, watch=watch)
            if pending:
                raise LightsoutError(
                    f"line {ln.name} ended before the step at {pending[0] / NS:g} s"
                )
        except BaseException as exc:  # one line down stops them all, with its reason
            errors[ln.name] = exc
            barrier.abort()

    threads = [
        threading.Thread(target=line_thread, args=(i, ln), name=f"line-{ln.name}", daemon=True)
        for i, ln in enumerate(spec.lines)
    ]
    try:
        if control is not None:
            control.setup()
        step(0)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if control is not None:
            control.shutdown()
    if errors:
        # the line that failed, not those it left waiting at the barrier
        real = [
            n for n in sorted(errors) if not isinstance(errors[n], threading.BrokenBarrierError)
        ]
        first = (real or sorted(errors))[0]
        exc = errors[first]
        why = str(exc) or f"stopped waiting for the other lines ({type(exc).__name__})"
        raise LightsoutError(f"line {first}: {why}") from exc
    return finish(spec, coord, out, duration_s)


def finish(spec: FactorySpec, coord: Coordinator, out: Path, duration_s: float) -> dict[str, Any]:
    """Put the run together: what the lines said after the last step, then their own files
    (genealogy; any unit or scrap their logs hold that the coordinator did not hear, taken
    now in time order), the material balance and the KPIs."""
    coord.hear()
    records: dict[str, LineRecord] = {}
    unheard = []
    for ln in spec.lines:
        products = {r.base: r.product for r in ln.cell.recipes}
        rec = records[ln.name] = read_line_run(out / "lines" / ln.name, products=products)
        gate = coord.gates[ln.name]
        unlotted = [p.part for p in rec.parts if p.part not in gate.lot_of]
        logged = {p.part for p in rec.parts}
        gate.unlogged.update(k for p, k in gate.part_kind.items() if p not in logged)
        if unlotted:
            raise LightsoutError(f"line {ln.name}: part {unlotted[0]} came from no store")
        for u in rec.units:
            if u.status == "shipped" and u.ended_ns is not None and u.unit not in gate.finished:
                unheard.append((u.ended_ns, ln.name, u.unit, tuple(u.parts)))
        scrap(coord.material, gate.scrap(rec.scrapped))
    for t_ns, line, unit, parts in sorted(unheard):
        coord.unit_finished(spec.line(line), unit, parts, t_ns)
    book = coord.orders
    end_ns = round(duration_s * NS)
    coord._log(end_ns, "run_end", reason="duration reached")
    with Genealogy.create(out / DB_NAME) as g:
        g.add_lots(
            (lot.lot, lot.supplier, lot.kind, lot.size, lot.received_ns)
            for store in coord.stores.values()
            for lot in store.received
        )
        for ln in spec.lines:
            g.add_line(ln.name, records[ln.name], coord.gates[ln.name].lot_of)
        g.assign(
            (s, p.order_id, book.orders[p.order_id].shipment)
            for p in book.production
            for s in p.serials
        )
    coord.write_events(out / "events.jsonl")
    kpis = factory_kpis(spec, coord, out, end_ns)
    (out / "kpis.json").write_text(
        json.dumps(kpis, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return kpis


def fault_counts(cell: dict[str, Any]) -> dict[str, int]:
    """A line's faults injected, detected and recovered (its ``kpis.json`` pairs them)."""
    faults = [f for f in cell.get("faults") or () if isinstance(f, dict)]
    return {
        "injected": len(faults),
        "detected": sum(f.get("detected_at_s") is not None for f in faults),
        "recovered": sum(f.get("recovered_at_s") is not None for f in faults),
    }


def factory_kpis(spec: FactorySpec, coord: Coordinator, out: Path, end_ns: int) -> dict[str, Any]:
    """The factory's figures: every line's, every order's, every store's, the material."""
    book, material = coord.orders, coord.material
    view = lines_view(coord, end_ns)
    lines = {}
    for ln in spec.lines:
        cell = json.loads((out / "lines" / ln.name / "kpis.json").read_text(encoding="utf-8"))
        lines[ln.name] = {
            "state": view[ln.name]["state"],
            "built": view[ln.name]["built"],
            "units_shipped": cell.get("units_completed"),
            "units_scrapped": cell.get("units_scrapped"),
            "throughput_per_hour": cell.get("throughput_per_hour"),
            "oee": (cell.get("oee") or {}).get("oee"),
            "line_side": {k: len(q) for k, q in sorted(coord.gates[ln.name].side.items())},
            "made_unlogged": dict(sorted(coord.gates[ln.name].unlogged.items())),
            "ledger_balanced": cell.get("ledger_balanced"),
            "released": coord.released(ln.name),
            "built_unreleased": len(book.unreleased_units.get(ln.name, [])),
            "stockouts": {
                k.split("/")[1]: n
                for k, n in sorted(coord.stockouts.items())
                if k.startswith(f"{ln.name}/")
            },
            "faults": fault_counts(cell),
            "heard": dict(sorted(coord.gates[ln.name].counters.items())),
        }
    orders = orders_view(book, end_ns)
    stores = stores_view(coord)
    balance = {k: {**material.row(k), "balanced": material.balanced(k)} for k in material.kinds()}
    return {
        "factory": spec.name,
        "duration_s": end_ns / NS,
        "lines": lines,
        "orders": orders,
        "stores": stores,
        "material": balance,
        "material_balanced": all(v["balanced"] for v in balance.values()),
        "shipments": len(book.shipments),
    }
