"""The units in the making and their operations: one owner, one snapshot.

``Units`` holds every unit not yet forgotten (by its base part's id), the
index of their operations by id, and the units the world reported fastened
(so a restarted supervisor can settle a fastening it did not hear end).
Operations change state only through ``Op.move`` (``supervisor.plan``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from bus.cellspec import CellSpec
from bus.simtime import NS
from supervisor.journal import field_names
from supervisor.plan import Op, OpState, Unit

FORGET_AFTER_NS = 10 * NS
"""A finished unit is dropped this long after it finished (the snapshot stays the WIP's size;
the ledger keeps its parts' fate and the KPIs its cycle time)."""


class Units:
    """Units by id, their operations by id, and which units are fastened."""

    def __init__(self, cell: CellSpec) -> None:
        self.cell = cell
        self.units: dict[str, Unit] = {}
        self.ops: dict[str, Op] = {}
        self.fastened: set[str] = set()

    def __getitem__(self, unit_id: str) -> Unit:
        return self.units[unit_id]

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.units

    def add(self, unit: Unit) -> None:
        """A unit started: it and its operations are followed from now on."""
        self.units[unit.unit_id] = unit
        for op in unit.ops.values():
            self.ops[op.op_id] = op

    def open(self) -> Iterator[Unit]:
        """Units not finished yet, in the order they started."""
        return (u for u in self.units.values() if u.finished_ns < 0)

    def busy_fixtures(self) -> set[str]:
        """Fixtures that hold a unit in the making."""
        return {u.fixture for u in self.open() if u.fixture}

    def forget_finished(self, now_ns: int) -> None:
        """Drop units finished more than ``FORGET_AFTER_NS`` ago, with their operations."""
        old = [u for u in self.units.values() if 0 <= u.finished_ns < now_ns - FORGET_AFTER_NS]
        for unit in old:
            del self.units[unit.unit_id]
            for op in unit.ops.values():
                self.ops.pop(op.op_id, None)
            self.fastened.discard(unit.unit_id)

    def snapshot(self) -> dict[str, Any]:
        """Every unit with its operations' fields, and the fastened ones, as plain data."""
        units = {}
        op_names = [n for n in field_names(Op) if n not in ("spec", "unit")]
        unit_names = [n for n in field_names(Unit) if n != "unit_id"]
        for uid, u in self.units.items():
            ops = {}
            for name, op in u.ops.items():
                fields = {}
                for n in op_names:
                    v = getattr(op, n)
                    # enums as their values, tuples as lists (msgpack's own round trip)
                    fields[n] = (
                        v.value
                        if isinstance(v, enum.Enum)
                        else (list(v) if isinstance(v, tuple) else v)
                    )
                ops[name] = fields
            units[uid] = {n: ops if n == "ops" else getattr(u, n) for n in unit_names}
        return {"units": units, "fastened": sorted(self.fastened)}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote (each operation in the state it was in)."""
        self.units, self.ops = {}, {}
        for uid, u in data["units"].items():
            base_kind = u.get("base_kind") or self.cell.recipe.base
            specs = {s.name: s for s in self.cell.recipe_for(base_kind).ops}
            ops = {}
            for name, o in u["ops"].items():
                fields = dict(o)
                fields["state"] = OpState(o["state"])
                fields["pick"] = tuple(o.get("pick", ()))
                fields["base_kind"] = base_kind
                ops[name] = Op(unit=uid, spec=specs[name], **fields)
            unit = Unit(**{**u, "unit_id": uid, "ops": ops, "base_kind": base_kind})
            self.add(unit)
        self.fastened = set(data["fastened"])
