"""The cell's sensors as the supervisor last read them, and which have fallen silent.

A sensor reports every tick; one silent for longer than ``STALE_NS`` (a
blackout) is stale, and the supervisor plans on nothing it says until it
reports again: a station whose end sensor is stale is held.
"""

from __future__ import annotations

from typing import Any

from bus.messages import SensorReading
from bus.simtime import NS
from supervisor.eventlog import EventLog

STALE_NS = NS // 2
"""A sensor silent for longer than this is stale (readings come every tick)."""


class Sensors:
    """Last reading and last report of every sensor, and the stale ones."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.parts: dict[str, str] = {}
        """Sensor -> the part it sees ("" for none)."""
        self.seen: dict[str, int] = {}
        """When each sensor last reported (a blacked-out sensor reports nothing)."""
        self.stale: set[str] = set()

    def read(self, reading: SensorReading, now_ns: int) -> None:
        """One reading of this tick."""
        self.parts[reading.sensor] = reading.part
        self.seen[reading.sensor] = now_ns

    def quiet(self, sensor: str, last_ns: int) -> None:
        """The world says ``sensor`` reports nothing now and last reported at ``last_ns``
        (this supervisor may not have been ticked since: its silence is judged from then)."""
        if last_ns > self.seen.get(sensor, -1):
            self.seen[sensor] = last_ns

    def at_end(self, station: str) -> str:
        """The part the sensor at the end of ``station`` sees, or "" (none, or stale)."""
        if self.blind(station):
            return ""
        return self.parts.get(f"{station}.end", "")

    def blind(self, station: str) -> bool:
        """Whether the sensor at the end of ``station`` is stale."""
        return f"{station}.end" in self.stale

    def watch(self, now_ns: int) -> None:
        """Notice sensors that fell silent (and came back), and log it."""
        for sensor, seen in sorted(self.seen.items()):
            silent = now_ns - seen > STALE_NS
            if silent and sensor not in self.stale:
                self.stale.add(sensor)
                self.events.write(now_ns, "sensor_stale", sensor=sensor, last_ns=seen)
            elif not silent and sensor in self.stale:
                self.stale.discard(sensor)
                self.events.write(now_ns, "sensor_restored", sensor=sensor)

    def forget_readings(self) -> None:
        """A world rebuilt (a resumed run): no part is seen anywhere until a sensor says so."""
        self.parts = {}

    def snapshot(self) -> dict[str, Any]:
        """As plain data (the journal)."""
        return {"parts": dict(self.parts), "seen": dict(self.seen), "stale": sorted(self.stale)}

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.parts, self.seen = dict(data["parts"]), dict(data["seen"])
        self.stale = set(data["stale"])
