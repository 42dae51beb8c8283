"""Units into and out of the cell: started at the intake, shipped or mounted at the end.

A unit starts when a base part waits at its recipe's intake and a fixture is
free (an arm also needs a free mount point, kept for it from then on). A
finished unit ships when it reaches the end of an outfeed (its parts leave
the ledger as shipped, or as scrap if inspection rejected it); an arm
becomes a robot when its last step has put it on its mount point.
"""

from __future__ import annotations

from collections.abc import Callable

from bus.cellspec import CellSpec, Output, RecipeSpec, StationKind
from bus.messages import Commission
from bus.simtime import NS
from supervisor.builds import Builds
from supervisor.eventlog import EventLog
from supervisor.kpis import Kpis
from supervisor.ledger import Ledger
from supervisor.plan import finished, make_unit
from supervisor.sensors import Sensors
from supervisor.units import Units
from supervisor.view import SimTime
from supervisor.work import Work


def intake_station(recipe: RecipeSpec) -> str:
    """The infeed a recipe's base parts arrive on ("" if none)."""
    for op in recipe.ops:
        if op.part == recipe.base and op.dst == "fixture":
            return op.src
    return ""


class Flow:
    """Starts, ships and mounts units, from what the sensors and the ledger show."""

    def __init__(
        self,
        cell: CellSpec,
        time: SimTime,
        work: Work,
        *,
        sensors: Sensors,
        ledger: Ledger,
        units: Units,
        builds: Builds,
        kpis: Kpis,
        events: EventLog,
        shipped: Callable[[], None],
    ) -> None:
        self.cell = cell
        self.time = time
        self.work = work
        self.sensors = sensors
        self.ledger = ledger
        self.units = units
        self.builds = builds
        self.kpis = kpis
        self.events = events
        self.shipped = shipped
        """Called for every good unit shipped (the orders count it)."""
        self.intakes = {r.base: intake_station(r) for r in cell.recipes}
        """Each recipe's base kind -> the infeed its base parts arrive on."""
        self.outfeeds = sorted(c.name for c in cell.conveyors if c.role is StationKind.OUTFEED)
        self.commission: list[Commission] = []
        """Arms to be replaced by robots in the world at the end of this tick."""

    def start(self) -> None:
        """Start a unit for each base part waiting at its intake, if a fixture is free.

        An arm (a recipe that builds robots) also needs a free mount point, kept for
        it from now on: an arm with nowhere to go is not started.
        """
        now = self.time.ns
        for recipe in self.cell.recipes:
            intake = self.intakes[recipe.base]
            if not intake or self.sensors.blind(intake):
                continue  # hold the intake: its sensor is blind, a part there may not be what it says
            part = self.sensors.at_end(intake)
            if not part or part in self.units.units or part not in self.ledger.live:
                continue
            if self.ledger.kind(part) != recipe.base:
                continue
            busy = self.units.busy_fixtures()
            free = [f for f in self.cell.fixtures_for(recipe) if f not in busy]
            if not free:
                continue
            mount = overflow = ""
            if recipe.output is Output.COMMISSION:
                mount = self.builds.free_mount()
                if not mount and not recipe.overflow:
                    continue
                if mount:
                    self.builds.keep(mount, part)
                else:
                    overflow = recipe.overflow  # the bay is full: this arm ships
            self.units.add(make_unit(recipe, part, free[0], now, mount=mount, overflow=overflow))
            if mount or overflow:
                where = {"mount": mount} if mount else {"ships_to": overflow}
                self.events.write(now, "unit_started", unit=part, fixture=free[0], **where)
            else:
                self.events.write(now, "unit_started", unit=part, fixture=free[0])

    def mounted(self) -> None:
        """Arms whose last step put them on their mount point become robots.

        Their parts are consumed in the ledger (with the genealogy: which robot did
        which step when) and the world is told to replace them by the robot.
        """
        now = self.time.ns
        for unit in self.units.units.values():
            if not unit.mount or unit.finished_ns >= 0 or unit.rejected or not finished(unit):
                continue
            if self.ledger.location(unit.unit_id) != f"mount:{unit.mount}":
                continue  # still settling onto the plate
            ids = self.work.unit_parts(unit.unit_id)
            parts = [[p, self.ledger.kind(p)] for p in ids]
            for p in ids:
                self.ledger.consume(p)
            unit.finished_ns = now
            built, spec = self.builds.commission(unit.unit_id, unit.mount, parts, now)
            self.commission.append(Commission(unit.unit_id, spec.name, unit.mount))
            self.kpis.commissioned(unit.created_ns, now)
            self.events.write(
                now,
                "arm_commissioned",
                unit=unit.unit_id,
                serial=built.serial,
                robot=spec.name,
                mount=unit.mount,
                model=built.model,
                parts=ids,
                ops=built.ops,
                cycle_s=round((now - unit.created_ns) / NS, 3),
            )

    def ship(self) -> None:
        """Retire finished units that reached the end of an outfeed."""
        now, retire = self.time.ns, self.work.retire
        for conveyor in self.outfeeds:
            if self.sensors.blind(conveyor):
                continue  # units wait at the stop until the sensor sees them again
            part = self.sensors.at_end(conveyor)
            unit = self.units.units.get(part)
            if unit is None and part in self.ledger.live and part not in retire:
                # not a unit at all: a part that rode out on another; reject it
                self.ledger.scrap(part)
                retire.append(part)
                self.events.write(now, "part_scrapped", part=part, reason=f"stray on {conveyor}")
                continue
            if unit is None or unit.finished_ns >= 0 or not finished(unit):
                continue
            if part not in self.ledger.live:
                continue
            parts = self.work.unit_parts(part)
            for p in parts:
                if unit.rejected:
                    self.ledger.scrap(p)
                else:
                    self.ledger.ship(p)
            unit.finished_ns = now
            if unit.rejected:
                self.kpis.units_scrapped += 1
                self.events.write(now, "unit_scrapped", unit=part, parts=parts, reason=unit.reason)
            else:
                self.kpis.shipped(unit.created_ns, now)
                self.shipped()
                cycle = round((now - unit.created_ns) / NS, 3)
                self.events.write(now, "unit_shipped", unit=part, parts=parts, cycle_s=cycle)
            retire.append(part)
