"""Where loose parts came to rest, from the world's events, until they are picked up.

The world says when a part that fell has settled (its pose, the parts it
touches, whether a gripper can come down to it); ``Rests`` keeps the last
such word per part, for the recovery policy (``supervisor.recovery``) to judge
whether the part can be picked up again where it lies.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from bus.cellspec import Pose
from bus.enums import WorldEventKind
from bus.messages import PartPose, WorldEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Rest:
    """How the world last saw a part lie at rest."""

    pose: PartPose
    touching: tuple[str, ...]
    blocked: bool

    @property
    def position(self) -> Pose:
        """Its centre and its heading (the turn of its long side about z)."""
        pp = self.pose
        yaw = math.atan2(2.0 * (pp.qw * pp.qz + pp.qx * pp.qy), 1.0 - 2.0 * (pp.qy**2 + pp.qz**2))
        return Pose(pp.x, pp.y, pp.z, yaw)


class Rests:
    """Where each loose part came to rest, from the world's events, until it is picked up."""

    def __init__(self) -> None:
        self.parts: dict[str, Rest] = {}

    def note(self, ev: WorldEvent) -> None:
        """Follow one world event: a rest is recorded, a grasp or a retirement forgets it."""
        if ev.kind in (WorldEventKind.SETTLED, WorldEventKind.ATTACHED) and ev.pose is not None:
            self.parts[ev.part] = Rest(ev.pose, ev.touching, ev.blocked)
        elif ev.kind in (WorldEventKind.GRASPED, WorldEventKind.RETIRED):
            self.parts.pop(ev.part, None)

    def get(self, part: str) -> Rest | None:
        """How ``part`` last came to rest, if the world said."""
        return self.parts.get(part)

    def snapshot(self) -> dict[str, Any]:
        """As plain JSON-able data, for the journal."""
        return {
            pid: {
                "pose": [r.pose.x, r.pose.y, r.pose.z, r.pose.qx, r.pose.qy, r.pose.qz, r.pose.qw],
                "kind": r.pose.kind,
                "touching": list(r.touching),
                "blocked": r.blocked,
            }
            for pid, r in sorted(self.parts.items())
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.parts = {
            pid: Rest(PartPose(pid, d["kind"], *d["pose"]), tuple(d["touching"]), d["blocked"])
            for pid, d in data.items()
        }
