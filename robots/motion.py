"""Joint-space trajectories in sim time: what the arm follows between IK waypoints.

A ``Trajectory`` starts at a joint pose and visits waypoints one after the
other, stopping at each (zero velocity at both ends of a segment, quintic
time law), so a straight descent onto a part stays close to straight. A
segment lasts its largest joint displacement divided by the robot's speed,
never less than a small minimum. Time is integer nanoseconds of sim time; a
Hold pauses a trajectory and Unhold resumes it by shifting the rest of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bus.errors import PlanError
from bus.path import path_at, segment_at
from bus.simtime import NS

Q = tuple[float, ...]

MIN_SEGMENT_S = 0.25
"""The shortest move: even a tiny correction takes this long."""


def move_ns(q0: Sequence[float], q1: Sequence[float], speed: float, min_s: float) -> int:
    """How long a move from ``q0`` to ``q1`` takes: largest joint displacement / ``speed``."""
    if speed <= 0.0:
        raise PlanError(f"robot speed must be positive, got {speed}")
    if len(q0) != len(q1):
        raise PlanError(f"joint counts differ: {len(q0)} and {len(q1)}")
    span = max((abs(b - a) for a, b in zip(q0, q1, strict=True)), default=0.0)
    return round(max(span / speed, min_s) * NS)


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """From ``q0`` at ``t0_ns`` to ``q1`` at ``t1_ns`` (sim time before any pause shift)."""

    t0_ns: int
    t1_ns: int
    q0: Q
    q1: Q

    def at(self, t_ns: int) -> Q:
        """Joint positions at ``t_ns`` (clamped to the segment)."""
        return segment_at(self, t_ns)


class Trajectory:
    """A chain of joint-space segments that starts at ``start_ns`` at ``start_q``.

    Build it with ``move_to`` and ``wait``; read it with ``at``. ``pause`` and
    ``resume`` freeze it in place and then shift what is left by the time it
    was frozen (Hold / Unhold).
    """

    def __init__(self, start_ns: int, start_q: Sequence[float]) -> None:
        self.start_ns = start_ns
        self.start_q: Q = tuple(float(v) for v in start_q)
        self.segments: list[Segment] = []
        self._shift_ns = 0
        self._paused_at: int | None = None

    @classmethod
    def through(
        cls,
        start_ns: int,
        start_q: Sequence[float],
        waypoints: Sequence[Sequence[float]],
        *,
        speed: float,
        min_s: float = MIN_SEGMENT_S,
    ) -> Trajectory:
        """A trajectory from ``start_q`` through every waypoint in turn."""
        traj = cls(start_ns, start_q)
        for q in waypoints:
            traj.move_to(q, speed=speed, min_s=min_s)
        return traj

    # ------------------------------------------------------------ building

    @property
    def final_q(self) -> Q:
        """Where the trajectory ends."""
        return self.segments[-1].q1 if self.segments else self.start_q

    @property
    def _planned_end(self) -> int:
        return self.segments[-1].t1_ns if self.segments else self.start_ns

    def move_to(self, q: Sequence[float], *, speed: float, min_s: float = MIN_SEGMENT_S) -> None:
        """Append a move from the current end to ``q``."""
        q1 = tuple(float(v) for v in q)
        q0 = self.final_q
        if len(q1) != len(q0):
            raise PlanError(f"waypoint has {len(q1)} joints, trajectory has {len(q0)}")
        t0 = self._planned_end
        self.segments.append(Segment(t0, t0 + move_ns(q0, q1, speed, min_s), q0, q1))

    def wait(self, seconds: float) -> None:
        """Append a pause in place of ``seconds``."""
        t0 = self._planned_end
        q = self.final_q
        self.segments.append(Segment(t0, t0 + round(seconds * NS), q, q))

    # ------------------------------------------------------------ reading

    @property
    def duration_ns(self) -> int:
        """Planned length, not counting pauses."""
        return self._planned_end - self.start_ns

    @property
    def end_ns(self) -> int:
        """When the trajectory ends, counting pauses resumed so far."""
        return self._planned_end + self._shift_ns

    @property
    def shift_ns(self) -> int:
        """How far Holds resumed so far have pushed the rest of it back."""
        return self._shift_ns

    @property
    def paused(self) -> bool:
        """Whether it is frozen by ``pause``."""
        return self._paused_at is not None

    def at(self, t_ns: int) -> Q:
        """Joint positions at sim time ``t_ns`` (held at the ends and while paused)."""
        if self._paused_at is not None:
            t_ns = min(t_ns, self._paused_at)
        return path_at(self.segments, self._shift_ns, t_ns, self.final_q)

    def done(self, t_ns: int) -> bool:
        """Whether the trajectory has ended by ``t_ns`` (never while paused)."""
        return self._paused_at is None and t_ns >= self.end_ns

    # ------------------------------------------------------------ hold

    def pause(self, t_ns: int) -> None:
        """Freeze at the pose of ``t_ns`` (a second pause is ignored)."""
        if self._paused_at is None:
            self._paused_at = t_ns

    def resume(self, t_ns: int) -> None:
        """Go on from where it was frozen, shifting the rest by the time it stood still."""
        if self._paused_at is not None:
            self._shift_ns += max(0, t_ns - self._paused_at)
            self._paused_at = None
