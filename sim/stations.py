"""Static stations: fixtures and feeder trays, with their presence sensors.

Both are mass-0 boxes from the floor up to the face a part rests on; what
matters to the world is whether a part rests on that face (classification,
presence sensors), which these classes answer from a part's pose alone.
"""

from __future__ import annotations

from bus.cellspec import (
    FIXTURE_FOOTPRINT,
    FIXTURE_RGBA,
    TRAY_MARGIN,
    TRAY_RGBA,
    FixtureSpec,
    PartKind,
    Pose,
)
from sim.parts import Part, Placed, Vec3, static_box, to_frame

FIXTURE_HALF = (FIXTURE_FOOTPRINT[0] / 2, FIXTURE_FOOTPRINT[1] / 2)
"""Half footprint of a fixture block (metres)."""
REST_Z = 0.007
"""How far a part's bottom may be above (or below) a face and still rest on it (metres):
more than the 5 mm a new part is dropped from, less than a frame's thickness, so a
part lying on another part is not taken to be in the fixture or on the tray."""
FIXTURE_XY = 0.03
"""How close (xy) a part's centre must be to a fixture's pose to be in the fixture (metres)."""
SENSOR_XY = 0.05
"""How close (xy) a part's centre must be to a fixture's pose for its sensor to see it."""


def _rests_on(part: Part, pos: Vec3, top: float) -> bool:
    return -REST_Z <= pos[2] - part.half[2] - top <= REST_Z


class Fixture:
    """A block whose top face holds a unit's base part at ``pose`` (also a test stand and a
    mount point: the same block, in another colour)."""

    def __init__(
        self,
        client: int,
        spec: FixtureSpec,
        *,
        rgba: tuple[float, float, float, float] = FIXTURE_RGBA,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.pose = spec.pose
        pz = spec.pose.z
        half = (FIXTURE_HALF[0], FIXTURE_HALF[1], pz / 2)
        self.body = static_box(
            client, half, (spec.pose.x, spec.pose.y, pz / 2), spec.pose.yaw, rgba
        )

    def _xy(self, pos: Vec3) -> float:
        return float(((pos[0] - self.pose.x) ** 2 + (pos[1] - self.pose.y) ** 2) ** 0.5)

    def holds(self, part: Part, pos: Vec3) -> bool:
        """Whether ``part`` (centre ``pos``) sits in the fixture."""
        return self._xy(pos) <= FIXTURE_XY and _rests_on(part, pos, self.pose.z)

    def sees(self, part: Part, pos: Vec3) -> float | None:
        """The sensor's distance to ``part`` if it sees it, else None."""
        d = self._xy(pos)
        return d if d <= SENSOR_XY and _rests_on(part, pos, self.pose.z) else None

    def sensor(self, free: list[Placed]) -> str:
        """The presence sensor: the part nearest the fixture's centre ("" for none)."""
        seen = [(d, pt.id) for pt, pos, _ in free if (d := self.sees(pt, pos)) is not None]
        return min(seen)[1] if seen else ""


class Tray:
    """A feeder's tray: one part waits on it at a time."""

    def __init__(self, client: int, name: str, pose: Pose, kind: PartKind) -> None:
        self.name = name
        self.pose = pose
        self.half = (kind.size[0] / 2 + TRAY_MARGIN, kind.size[1] / 2 + TRAY_MARGIN)
        half = (self.half[0], self.half[1], pose.z / 2)
        self.body = static_box(client, half, (pose.x, pose.y, pose.z / 2), pose.yaw, TRAY_RGBA)

    def holds(self, part: Part, pos: Vec3) -> bool:
        """Whether ``part`` (centre ``pos``) rests on the tray."""
        a, b = to_frame(pos[0], pos[1], self.pose.x, self.pose.y, self.pose.yaw)
        inside = abs(a) <= self.half[0] and abs(b) <= self.half[1]
        return inside and _rests_on(part, pos, self.pose.z)

    def sensor(self, free: list[Placed]) -> str:
        """The presence sensor: the part on the tray ("" for none)."""
        return next((pt.id for pt, pos, _ in free if self.holds(pt, pos)), "")
