"""Joint paths in sim time, evaluated the same way by the agent that plans and the world that
follows them.

A path is a chain of segments, each from ``q0`` at ``t0_ns`` to ``q1`` at ``t1_ns`` with
the quintic time law (zero velocity and acceleration at both ends), and a shift: the time a
Hold froze the path, added to every segment. The agent plans a ``robots.motion.Trajectory``
and sends it once as ``RobotAct.path``; between the ticks the clock opens for that robot,
the world reads its joint target off the path itself. Both sides go through
``segment_at`` and ``path_at``, so a target the world computes is bit for bit the one the
agent would have sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

Q = tuple[float, ...]

MAX_SEGMENTS = 64
"""Most segments a robot's path may have (a peer's message is bounded)."""


class SegmentLike(Protocol):
    """What a segment has (``robots.motion.Segment`` and ``bus.messages.PathSegment``)."""

    @property
    def t0_ns(self) -> int: ...
    @property
    def t1_ns(self) -> int: ...
    @property
    def q0(self) -> Q: ...
    @property
    def q1(self) -> Q: ...


def smoothstep5(s: float) -> float:
    """The quintic time law on [0, 1]: zero velocity and acceleration at both ends."""
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return 1.0
    # clamped: rounding can overshoot 1 by an ulp or two just below s = 1
    return min(1.0, s * s * s * (10.0 + s * (-15.0 + 6.0 * s)))


def segment_at(seg: SegmentLike, t_ns: int) -> Q:
    """Joint positions of ``seg`` at ``t_ns`` (clamped to the segment)."""
    span = seg.t1_ns - seg.t0_ns
    s = 1.0 if span <= 0 else smoothstep5((t_ns - seg.t0_ns) / span)
    return tuple(a + (b - a) * s for a, b in zip(seg.q0, seg.q1, strict=True))


def path_at(segments: Sequence[SegmentLike], shift_ns: int, t_ns: int, final: Q) -> Q:
    """Joint positions at ``t_ns`` of the path ``segments`` shifted by ``shift_ns``; ``final``
    after its end (and for an empty path)."""
    t = t_ns - shift_ns
    for seg in segments:
        if t < seg.t1_ns:
            return segment_at(seg, t) if t > seg.t0_ns else seg.q0
    return final


def path_end(segments: Sequence[SegmentLike], shift_ns: int) -> int:
    """When the path ends (``-1`` for an empty one)."""
    return segments[-1].t1_ns + shift_ns if segments else -1


def path_problem(segments: Sequence[SegmentLike], joints: int) -> str:
    """Why a path from a peer cannot be followed ("" if it can): too long, the wrong joint
    count, or segments out of order."""
    if len(segments) > MAX_SEGMENTS:
        return f"{len(segments)} segments, at most {MAX_SEGMENTS}"
    last = None
    for i, seg in enumerate(segments):
        if len(seg.q0) != joints or len(seg.q1) != joints:
            return f"segment {i} does not have {joints} joints"
        if seg.t1_ns < seg.t0_ns or (last is not None and seg.t0_ns < last):
            return f"segment {i} runs back in time"
        last = seg.t1_ns
    return ""
