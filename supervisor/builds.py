"""Robots built in the cell: mount points, serials, commissioning and genealogy.

A recipe with ``output = "commission"`` builds arms. Each arm is given a free
mount point of the commissioning bay when its unit starts (a unit is only
started while one is free), so it always has somewhere to go. Once its last
step has put it on that mount point, the supervisor consumes its parts in
the ledger and tells the world to replace it by a working robot; the launcher
checks the new robot (``cells.commission``) and starts its agent; the check
comes back through the world, and a robot that passed it is added to the
fleet: from its first heartbeat on it is brought up and bids like any other.

``Builds`` owns that state (mounts kept, robots built, the genealogy of every
unit it follows) and snapshots and restores it itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bus.cellspec import CellSpec, RobotSpec
from bus.simtime import NS


@dataclasses.dataclass(slots=True)
class Built:
    """One robot built in the cell, and what it was built from."""

    serial: str
    robot: str
    unit: str
    mount: str
    model: str
    commissioned_ns: int
    parts: list[list[str]]
    """[part id, kind] of every part consumed."""
    ops: list[list[Any]]
    """[step, robot, sim time ns] of every step done on it, in order."""
    check: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The commissioning check's evidence (empty until it comes back)."""
    joined_ns: int = -1
    """When the fleet took it in (its check passed); -1 before, or if it failed."""


class Builds:
    """Mount points, serials and the genealogy of built robots; one per supervisor."""

    def __init__(self, cell: CellSpec) -> None:
        self.cell = cell
        recipe = cell.builder()
        self.prefix = recipe.robot.prefix if recipe is not None and recipe.robot else ""
        self.product = recipe.product if recipe is not None else ""
        self.overflow = recipe.overflow if recipe is not None else ""
        self.kept: dict[str, str] = {}
        """Mount point -> the unit it is kept for (or the robot now standing on it)."""
        self.history: dict[str, list[list[Any]]] = {}
        """Unit -> [step, robot, t_ns] of every step done on it (arms only)."""
        self.built: list[Built] = []

    @property
    def active(self) -> bool:
        """Whether this cell builds robots at all."""
        return bool(self.prefix)

    def free_mount(self) -> str:
        """The first mount point neither kept for an arm nor taken by a robot ("" if none)."""
        for m in self.cell.mounts:
            if m.name not in self.kept:
                return m.name
        return ""

    def keep(self, mount: str, unit: str) -> None:
        """Keep ``mount`` for ``unit``."""
        self.kept[mount] = unit
        self.history[unit] = []

    def free(self, unit: str) -> None:
        """``unit`` will not become a robot (scrapped): its mount point is free again."""
        for m, u in list(self.kept.items()):
            if u == unit:
                del self.kept[m]
        self.history.pop(unit, None)

    def note(self, unit: str, step: str, robot: str, t_ns: int) -> None:
        """A step of an arm was done by ``robot`` at ``t_ns``."""
        if unit in self.history:
            self.history[unit].append([step, robot, t_ns])

    def commission(
        self, unit: str, mount: str, parts: list[list[str]], now_ns: int
    ) -> tuple[Built, RobotSpec]:
        """``unit`` on ``mount`` becomes a robot: its name, serial and genealogy."""
        name = self.cell.built_names()[len(self.built)]
        spec = self.cell.built_robot(name, mount)
        serial = f"{self.product}-{len(self.built) + 1:04d}"
        built = Built(
            serial=serial,
            robot=name,
            unit=unit,
            mount=mount,
            model=spec.model.value,
            commissioned_ns=now_ns,
            parts=parts,
            ops=self.history.pop(unit, []),
        )
        self.built.append(built)
        self.kept[mount] = name
        return built, spec

    def checked(
        self, robot: str, evidence: dict[str, Any], passed: bool, now_ns: int
    ) -> Built | None:
        """The commissioning check of ``robot`` came back; the record it belongs to."""
        for b in self.built:
            if b.robot == robot and not b.check:
                b.check = evidence
                if passed:
                    b.joined_ns = now_ns
                return b
        return None

    def fleet(self) -> list[RobotSpec]:
        """The specs of built robots that joined the fleet, in order."""
        return [self.cell.built_robot(b.robot, b.mount) for b in self.built if b.joined_ns >= 0]

    def report(self, cell_robots: int) -> dict[str, Any]:
        """Genealogy and fleet size over time, for ``kpis.json``."""
        fleet = [[0.0, cell_robots]]
        size = cell_robots
        for b in sorted(self.built, key=lambda b: b.joined_ns):
            if b.joined_ns >= 0:
                size += 1
                fleet.append([round(b.joined_ns / NS, 3), size])
        return {
            "built_robots": [
                {
                    "serial": b.serial,
                    "robot": b.robot,
                    "unit": b.unit,
                    "mount": b.mount,
                    "model": b.model,
                    "commissioned_s": round(b.commissioned_ns / NS, 3),
                    "joined_s": round(b.joined_ns / NS, 3) if b.joined_ns >= 0 else None,
                    "parts": b.parts,
                    "ops": [[s, r, round(t / NS, 3)] for s, r, t in b.ops],
                    "check": b.check,
                }
                for b in self.built
            ],
            "fleet": fleet,
            "mounts": [m.name for m in self.cell.mounts],
            "overflow": self.overflow,
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain data (the journal)."""
        return {
            "kept": dict(self.kept),
            "history": {u: [list(x) for x in h] for u, h in self.history.items()},
            "built": [dataclasses.asdict(b) for b in self.built],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Put a snapshot back (``fleet()`` then names the built robots that joined)."""
        self.kept = dict(state.get("kept", {}))
        self.history = {u: [list(x) for x in h] for u, h in state.get("history", {}).items()}
        self.built = [Built(**b) for b in state.get("built", [])]
