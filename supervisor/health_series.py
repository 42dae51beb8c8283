"""The series the health model keeps (``supervisor.health``): what each one's drift names,
how much it learns first, its sigma floor, its threshold and its cap."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from supervisor.drift import Detector, Sides, make_detector


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """How one kind of series is judged."""

    component: str
    cause: str
    quantity: str
    sides: Sides
    learn: int
    min_sigma: float
    threshold: float
    cap: float = 0.0
    centre: float | None = None
    """A known baseline mean (``supervisor.drift.Baseline.centre``), else learned."""


SERIES: Mapping[str, Series] = {
    "tracking": Series(
        "joint", "joint_drift", "tracking error (rad)", "both", 30, 0.0, 40.0, centre=0.0
    ),
    "ops": Series(
        "motion", "cycle_creep", "operation time / learned time", "up", 30, 0.1, 10.0, 4.0
    ),
    "bids": Series(
        "motion", "cycle_creep", "planned operation time / first plan", "up", 20, 0.2, 10.0, 4.0
    ),
    "carries": Series("gripper", "gripper_wear", "part lost per carry (0/1)", "up", 5, 0.15, 10.0),
    "transits": Series("belt", "belt_wear", "transit time (s)", "up", 5, 0.25, 10.0, 4.0),
    "advances": Series("belt", "belt_wear", "queue advance time (s)", "up", 5, 0.1, 10.0, 4.0),
    "placements": Series(
        "placement", "joint_drift", "placement defect per checked step (0/1)", "up", 5, 0.15, 10.0
    ),
    "fastenings": Series(
        "screwdriver", "tool_wear", "fastening defect per checked step (0/1)", "up", 5, 0.15, 10.0
    ),
    "stations": Series("fixture", "station", "defective unit (0/1)", "up", 5, 0.15, 10.0),
}
"""The series: what a drift names, how much is learned first, the sigma floor, the
threshold (``h`` / ``lambda``, baseline sigmas) and the cap on a sample's score. The floors:
a tenth of an operation's time (a step's time differs by about that between the two
fixtures, and a baseline learned where most ratios were exactly 1 must not make that an
alarm; the bids' baseline is not learned but known, a ratio of 1 with a floor of 0.2, as a
plan is compared with the first one from the same start: ``supervisor.health``); a loss a carry counts as if losses varied by 0.15, so one lost part is no alarm
and two within about ten carries are; a quarter second of transit, a tenth of a queue advance (some 1.3 s on the assembly infeed). Operation times and
transits are capped at 4 sigmas: one operation that waited out a restart, one part that
rode through a short jam, is never an alarm alone; three in a row are. Tracking is judged
about a known mean of 0 (a sound drive follows its command: only the noise's sigma is
learned) with h = 40: 28 joint series a cell, one sample a second each, some 10^5 an hour, and
a drift grows to a trip at some 200 noise sigmas, so a high threshold costs seconds. Defects are judged as carries
are: one defect is no alarm, two within about ten checked steps are."""

DEFECTS = ("placements", "fastenings", "stations")
"""The defect series."""
KNOWN = (*DEFECTS, "bids")
"""Series whose baseline is known rather than learned (``expect``)."""


def detector(method: str, kind: str, false_reject: float) -> Detector:
    """A fresh detector for a series of ``kind``, with its known baseline if it has one."""
    spec = SERIES[kind]
    det = make_detector(
        method,
        sides=spec.sides,
        learn=spec.learn,
        min_sigma=spec.min_sigma,
        threshold=spec.threshold,
        cap=spec.cap,
        centre=spec.centre,
    )
    expect(kind, det, false_reject)
    return det


def expect(kind: str, det: Detector, false_reject: float) -> None:
    """Give a ``KNOWN`` series its baseline (others learn theirs). A defect series' is the
    share of sound work the inspection's own false rejects fail (a robot that fastens once a
    minute would take five minutes to learn, and a wear begun before would be learned as its
    normal); the bids' is a ratio of 1 with the series' sigma floor (a sound robot's plan for
    a step from the start its reference was planned from is that reference, and with a
    reference per step, stations and start a robot has few samples to learn from early on)."""
    if kind not in KNOWN:
        return
    if kind == "bids":
        mean, sigma = 1.0, SERIES[kind].min_sigma
    else:
        p0 = false_reject
        mean, sigma = p0, max(math.sqrt(p0 * (1 - p0)), SERIES["fastenings"].min_sigma)
    det.baseline.mean, det.baseline.sigma = mean, sigma
    det.baseline.samples, det.baseline.ready = [], True


__all__ = ["DEFECTS", "KNOWN", "SERIES", "Series", "detector", "expect"]
