"""CUSUM and Page-Hinkley side by side: delay to a shift, and false alarms on noise.

Synthetic series, seeded: Gaussian noise of mean 0 and sigma 1; every
detector learns its baseline from the first ``supervisor.drift.LEARN``
samples of each series (so its own estimation error is in the figures, as in
a cell). For the delay (ARL1), the mean shifts by ``d`` sigmas ``IN_CONTROL``
samples after the baseline (a wear starts once the cell has run a while: that
matters to Page-Hinkley, whose reference is the running mean) and the figure
is the samples from the shift to the first alarm, over ``SERIES`` series
(mean, median and the 95th percentile; alarms before the shift are false
ones, counted). For the false
alarms (ARL0), stationary series of ``NOISE_SAMPLES`` samples and the alarm
count: samples per false alarm (each alarm restarts the statistic). A ratio
printed beside each pair is Page-Hinkley's delay over CUSUM's.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time

from supervisor.drift import LEARN, Cusum, Detector, PageHinkley, first_alarm

SHIFTS = (0.5, 1.0, 2.0, 3.0)
"""Mean shifts to detect, in baseline sigmas."""
IN_CONTROL = 200
"""Samples judged before the shift."""
SERIES = 300
"""Series per shift."""
SHIFT_SAMPLES = 2000
"""Samples after the baseline in a shifted series (a detector that has not alarmed by then
counts as that many)."""
NOISE_SERIES = 20
NOISE_SAMPLES = 50_000


@dataclasses.dataclass(frozen=True, slots=True)
class Delay:
    """Samples from the shift to the first alarm, over many series."""

    shift: float
    mean: float
    median: float
    p95: float
    missed: int
    early: int
    """False alarms before the shift, over all series."""


@dataclasses.dataclass(frozen=True, slots=True)
class Method:
    """One statistic's figures."""

    name: str
    settings: str
    delays: tuple[Delay, ...]
    samples: int
    false_alarms: int
    wall_s: float

    @property
    def arl0(self) -> float:
        """Samples per false alarm (a lower bound when none came: the samples judged)."""
        return self.samples / self.false_alarms if self.false_alarms else float(self.samples)


def _series(rng: random.Random, shift: float, n: int, *, before: int = 0) -> list[float]:
    """A baseline, ``before`` samples more of the same, then ``n`` samples shifted by ``shift``."""
    base = [rng.gauss(0.0, 1.0) for _ in range(LEARN + before)]
    return base + [rng.gauss(shift, 1.0) for _ in range(n)]


def delays(make: type[Cusum] | type[PageHinkley], shift: float, seed: int) -> Delay:
    """The delay to a ``shift`` over ``SERIES`` seeded series."""
    rng = random.Random(f"drift/{shift}/{seed}")
    runs, missed, early = [], 0, 0
    change = LEARN + IN_CONTROL
    for _ in range(SERIES):
        xs = _series(rng, shift, SHIFT_SAMPLES, before=IN_CONTROL)
        n, false = first_alarm(make(), xs, change=change)
        early += false
        if n is None:
            missed += 1
            n = SHIFT_SAMPLES
        runs.append(n)
    runs.sort()
    p95 = runs[int(0.95 * (len(runs) - 1))]
    return Delay(shift, statistics.fmean(runs), statistics.median(runs), p95, missed, early)


def false_alarms(detector: Detector, xs: list[float]) -> int:
    """Alarms raised on ``xs`` (the statistic restarts after each)."""
    return sum(1 for x in xs if detector.update(x) is not None)


def measure(seed: int = 1) -> list[Method]:
    """Both statistics at their defaults."""
    out = []
    for make, settings in (
        (Cusum, f"k={Cusum().k:g}, h={Cusum().h:g}"),
        (PageHinkley, f"delta={PageHinkley().delta:g}, lambda={PageHinkley().lam:g}"),
    ):
        t0 = time.perf_counter()
        ds = tuple(delays(make, d, seed) for d in SHIFTS)
        rng = random.Random(f"noise/{seed}")
        alarms = 0
        for _ in range(NOISE_SERIES):
            alarms += false_alarms(make(), _series(rng, 0.0, NOISE_SAMPLES))
        wall = time.perf_counter() - t0
        out.append(Method(make.method, settings, ds, NOISE_SERIES * NOISE_SAMPLES, alarms, wall))
    return out
