"""Drift statistics: CUSUM and Page-Hinkley on a series with a learned baseline.

Pure and small on purpose: no I/O, no clock, no numpy, so the health model
(``supervisor.health``) can keep one detector per measured quantity (an
operation's duration for a robot, a belt's transit time, a joint's tracking
error) and snapshot them all in the journal.

Every detector first learns a **baseline** over its first ``learn`` samples:
the median and the median absolute deviation say which samples are outliers
(further than ``OUTLIER_MADS`` robust sigmas from the median), and the mean
and standard deviation of the others are the baseline's ``mean`` and
``sigma``, the latter widened to its upper 95% confidence bound
(``sigma_margin``: a sigma learned low is what makes most false alarms). A
few wild samples in the first minutes (a retried grasp, a part that queued)
so do not make a wide baseline that hides a later drift. After
that, every sample is standardized ``z = (x - mean) / sigma``, so the
settings below are in units of the baseline's sigma, whatever the quantity.
A ``cap`` (none by default) clips ``z`` to ``[-cap, cap]`` first, as a Huber
score does: then no single wild sample (an operation whose report waited out
a supervisor's restart, a part that rode through a jam) can raise an alarm
alone when ``cap - k < h``; a drift, which lasts, still does.

**CUSUM** (Page 1954, in the tabular form of Montgomery's *Introduction to
Statistical Quality Control*, ch. 9): ``S+ = max(0, S+ + z - k)``; alarm when
``S+ > h`` (and ``S- = max(0, S- - z - k)`` for a fall when two-sided).
``k`` is half the shift to detect fastest (``k = 0.5``: a shift of one
sigma), ``h`` the decision interval. After an alarm the sum restarts at 0.

**Page-Hinkley** (Page 1954; Hinkley 1971; as used for concept drift, Gama
et al. 2014): ``m_t = sum (z_i - zbar_t - delta)``, ``M_t = min m``; alarm
when ``m_t - M_t > lambda``. ``zbar_t`` is the running mean of the monitored
samples, so PH needs no baseline mean to be right (only its sigma, for the
units) and forgives a baseline learned a little off; in exchange its
reference creeps towards a drifted mean and it detects later than CUSUM,
the more so the later the drift starts. (With the baseline's mean in place
of the running mean, PH is CUSUM with ``k = delta``.)

The delays and false-alarm rates of the defaults, measured, are in
``docs/autonomy.md`` (``python -m bench --only drift`` measures them again).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol

Sides = Literal["up", "both"]
"""Which way a detector looks: a rise only (durations, drops, errors grow) or both ways."""

OUTLIER_MADS = 3.5
"""A learning sample further than this many robust sigmas (1.4826 MAD) from the median is
left out of the baseline (Iglewicz and Hoaglin's cut-off for modified z-scores)."""
REL_SIGMA_FLOOR = 1e-3
"""The baseline's sigma is at least this share of its mean's size: a series that did not vary
while it was learned (durations quantized to ticks) must not make every later wobble an
alarm."""
ABS_SIGMA_FLOOR = 1e-12
SIGMA_Z = 1.645
"""The normal quantile of the sigma margin's confidence (95%, one-sided)."""

CUSUM_K = 0.5
"""Default CUSUM reference value, in baseline sigmas: tuned to a one-sigma shift."""
CUSUM_H = 10.0
"""Default CUSUM decision interval, in baseline sigmas. At h = 5 (the textbook value) a
one-sided CUSUM raises a false alarm about every 900 samples on Gaussian noise; a cell
measures hundreds of operations an hour per robot, so that would be several false alarms
a shift. h = 10 keeps one sigma's delay near 20 samples and, with a baseline of 50 samples,
pushes the false alarms out to about one in 10^4 (``docs/autonomy.md`` has the measured
figures: the baseline's own error, not h, bounds them)."""
PH_DELTA = 0.5
"""Default Page-Hinkley tolerance, in baseline sigmas (the same role as CUSUM's k)."""
PH_LAMBDA = 10.0
"""Default Page-Hinkley threshold, in baseline sigmas (the same role as CUSUM's h)."""
LEARN = 50
"""Default baseline length: samples learned before anything is judged. The baseline's own
error is the largest source of false alarms: with 20 samples its mean is off by 0.22 sigma
(one standard error), near half of ``k``; at 50, by 0.14 (``docs/autonomy.md``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Alarm:
    """A detector's evidence that the series drifted: what crossed which threshold, when."""

    method: str
    """``cusum`` or ``page_hinkley``."""
    direction: str
    """``up`` (the series rose) or ``down``."""
    statistic: float
    """The statistic that crossed (baseline sigmas)."""
    threshold: float
    """``h`` or ``lambda`` (baseline sigmas)."""
    samples: int
    """Samples judged since the baseline was learned (or since the last alarm's restart)."""
    mean: float
    """The baseline's mean (the series' units)."""
    sigma: float
    """The baseline's sigma (the series' units)."""
    recent: float
    """The mean of the samples judged since the last restart (the series' units)."""

    def evidence(self) -> dict[str, Any]:
        """The alarm as plain data for the event log (rounded so logs read well)."""
        return {
            "method": self.method,
            "direction": self.direction,
            "statistic": round(self.statistic, 3),
            "threshold": self.threshold,
            "samples": self.samples,
            "baseline_mean": _round(self.mean),
            "baseline_sigma": _round(self.sigma),
            "recent_mean": _round(self.recent),
        }


class Detector(Protocol):
    """What the health model asks of a drift statistic."""

    baseline: Baseline

    def update(self, x: float) -> Alarm | None:
        """Take one sample; an alarm if the series has drifted."""

    def reset(self) -> None:
        """Forget everything, the baseline too (after maintenance the machine is another)."""

    def snapshot(self) -> dict[str, Any]:
        """The detector's state as plain data."""

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""


class Baseline:
    """Mean and sigma learned over the first ``learn`` samples, robust to a few outliers."""

    def __init__(
        self, learn: int = LEARN, *, min_sigma: float = 0.0, centre: float | None = None
    ) -> None:
        if learn < 3:
            raise ValueError(f"a baseline needs at least 3 samples, got {learn}")
        self.learn = learn
        self.min_sigma = min_sigma
        self.centre = centre
        """A mean known beforehand (a sound drive's tracking error is centred on 0): only the
        sigma is learned, about it. A mean learned from a few samples is off by a fifth of a
        sigma, and over a shift of samples that, not the noise, makes the false alarms."""
        self.samples: list[float] = []
        self.mean = 0.0
        self.sigma = 0.0
        self.ready = False

    def add(self, x: float) -> bool:
        """Learn from ``x``; True once the baseline is ready (then ``x`` was not learned)."""
        if self.ready:
            return True
        self.samples.append(x)
        if len(self.samples) >= self.learn:
            if self.centre is None:
                self.mean, self.sigma = robust_mean_sigma(self.samples, self.min_sigma)
            else:
                self.mean = self.centre
                self.sigma = robust_sigma_about(self.samples, self.centre, self.min_sigma)
            self.samples, self.ready = [], True
        return False

    def z(self, x: float) -> float:
        """``x`` in baseline sigmas from the baseline's mean."""
        return (x - self.mean) / self.sigma

    def reset(self) -> None:
        """Learn again from the next sample."""
        self.samples, self.mean, self.sigma, self.ready = [], 0.0, 0.0, False

    def snapshot(self) -> dict[str, Any]:
        """As plain data."""
        return {
            "samples": list(self.samples),
            "mean": self.mean,
            "sigma": self.sigma,
            "ready": self.ready,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self.samples = [float(x) for x in data["samples"]]
        self.mean, self.sigma = float(data["mean"]), float(data["sigma"])
        self.ready = bool(data["ready"])


def robust_mean_sigma(xs: list[float], min_sigma: float = 0.0) -> tuple[float, float]:
    """Mean and standard deviation of ``xs`` without its outliers (see the module docstring)."""
    med = statistics.median(xs)
    mad = 1.4826 * statistics.median(abs(x - med) for x in xs)
    # with no spread at all around the median (more than half the samples alike: a series of
    # 0/1 outcomes, times quantized to ticks) whatever differs from the median is the outlier
    kept = [x for x in xs if abs(x - med) <= OUTLIER_MADS * mad] if mad > 0 else []
    kept = kept or [x for x in xs if x == med]
    if len(kept) < 2:
        kept = list(xs)
    mean = statistics.fmean(kept)
    sigma = statistics.stdev(kept) * sigma_margin(len(kept))
    return mean, max(sigma, min_sigma, REL_SIGMA_FLOOR * abs(mean), ABS_SIGMA_FLOOR)


def robust_sigma_about(xs: list[float], centre: float, min_sigma: float = 0.0) -> float:
    """The root mean square deviation of ``xs`` from a known ``centre``, without outliers
    (further than ``OUTLIER_MADS`` robust sigmas from it), widened as ``robust_mean_sigma``
    widens (with one more degree of freedom: no mean was estimated)."""
    mad = 1.4826 * statistics.median(abs(x - centre) for x in xs)
    kept = [x for x in xs if abs(x - centre) <= OUTLIER_MADS * mad] if mad > 0 else list(xs)
    rms = math.sqrt(statistics.fmean((x - centre) ** 2 for x in kept))
    sigma = rms * sigma_margin(len(kept) + 1)
    return max(sigma, min_sigma, REL_SIGMA_FLOOR * abs(centre), ABS_SIGMA_FLOOR)


def sigma_margin(n: int) -> float:
    """How much a sigma estimated from ``n`` samples is widened: to its upper 95% confidence
    bound, ``sqrt((n - 1) / chi2_0.05(n - 1))`` (Wilson-Hilferty's chi-square quantile).

    A sigma learned a little low makes every later sample look further out than it is, and
    a CUSUM's false alarms grow fast with that: at 30 samples the estimate is 20% low one
    time in ten. Widened, it is low one time in twenty and by less; a drift's delay grows by
    a sample or two.
    """
    dof = max(n - 1, 1)
    c = 2.0 / (9.0 * dof)
    chi2 = dof * (1.0 - c - SIGMA_Z * math.sqrt(c)) ** 3
    return math.sqrt(dof / max(chi2, 1e-9))


class _Standardized:
    """What both statistics share: the baseline, the samples judged since the last restart,
    and the alarm's evidence."""

    method = ""

    def __init__(
        self,
        threshold: float,
        sides: Sides,
        learn: int,
        min_sigma: float,
        cap: float,
        centre: float | None = None,
    ) -> None:
        self.threshold, self.sides, self.cap = threshold, sides, cap
        self.baseline = Baseline(learn, min_sigma=min_sigma, centre=centre)
        self.n = 0
        self.total = 0.0

    def _z(self, x: float) -> float | None:
        """``x`` standardized, once the baseline is learned (None while it learns ``x``)."""
        if not self.baseline.add(x):
            return None
        self.n += 1
        self.total += x
        z = self.baseline.z(x)
        return max(-self.cap, min(self.cap, z)) if self.cap > 0 else z

    def _crossed(self, stats: list[tuple[str, float]]) -> Alarm | None:
        """The alarm of the first statistic over the threshold (and a restart), or None."""
        for direction, stat in stats:
            if stat > self.threshold:
                b = self.baseline
                alarm = Alarm(
                    self.method,
                    direction,
                    stat,
                    self.threshold,
                    self.n,
                    b.mean,
                    b.sigma,
                    self.total / self.n,
                )
                self._restart()
                return alarm
        return None

    def _restart(self) -> None:
        self.n, self.total = 0, 0.0

    def reset(self) -> None:
        """Forget the sums and the baseline."""
        self._restart()
        self.baseline.reset()

    def _snapshot(self, **sums: Any) -> dict[str, Any]:
        return {"baseline": self.baseline.snapshot(), "n": self.n, "total": self.total, **sums}

    def _restore(self, data: Mapping[str, Any]) -> None:
        self.baseline.restore(data["baseline"])
        self.n, self.total = int(data["n"]), float(data["total"])


class Cusum(_Standardized):
    """Tabular CUSUM on standardized samples (``k``, ``h`` in baseline sigmas)."""

    method = "cusum"

    def __init__(
        self,
        *,
        k: float = CUSUM_K,
        h: float = CUSUM_H,
        sides: Sides = "up",
        learn: int = LEARN,
        min_sigma: float = 0.0,
        cap: float = 0.0,
        centre: float | None = None,
    ) -> None:
        if not (k >= 0 and h > 0):
            raise ValueError(f"CUSUM needs k >= 0 and h > 0, got k={k}, h={h}")
        super().__init__(h, sides, learn, min_sigma, cap, centre)
        self.k, self.h = k, h
        self.up = 0.0
        self.down = 0.0

    def update(self, x: float) -> Alarm | None:
        """One sample: the sums move; an alarm (and a restart at 0) if one crosses ``h``."""
        z = self._z(x)
        if z is None:
            return None
        self.up = max(0.0, self.up + z - self.k)
        if self.sides == "both":
            self.down = max(0.0, self.down - z - self.k)
        return self._crossed([("up", self.up), ("down", self.down)])

    def _restart(self) -> None:
        super()._restart()
        self.up = self.down = 0.0

    def snapshot(self) -> dict[str, Any]:
        """As plain data."""
        return self._snapshot(up=self.up, down=self.down)

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self._restore(data)
        self.up, self.down = float(data["up"]), float(data["down"])


class PageHinkley(_Standardized):
    """Page-Hinkley on standardized samples against their running mean (``delta``, ``lam``
    in baseline sigmas)."""

    method = "page_hinkley"

    def __init__(
        self,
        *,
        delta: float = PH_DELTA,
        lam: float = PH_LAMBDA,
        sides: Sides = "up",
        learn: int = LEARN,
        min_sigma: float = 0.0,
        cap: float = 0.0,
        centre: float | None = None,
    ) -> None:
        if not (delta >= 0 and lam > 0):
            raise ValueError(f"Page-Hinkley needs delta >= 0 and lambda > 0, got {delta}, {lam}")
        super().__init__(lam, sides, learn, min_sigma, cap, centre)
        self.delta, self.lam = delta, lam
        self.zsum = 0.0
        self.m_up = self.min_up = 0.0
        self.m_down = self.max_down = 0.0

    def update(self, x: float) -> Alarm | None:
        """One sample: the cumulative deviations move; an alarm (and a restart) past ``lam``."""
        z = self._z(x)
        if z is None:
            return None
        self.zsum += z
        zbar = self.zsum / self.n
        self.m_up += z - zbar - self.delta
        self.min_up = min(self.min_up, self.m_up)
        stats = [("up", self.m_up - self.min_up)]
        if self.sides == "both":
            self.m_down += z - zbar + self.delta
            self.max_down = max(self.max_down, self.m_down)
            stats.append(("down", self.max_down - self.m_down))
        return self._crossed(stats)

    def _restart(self) -> None:
        super()._restart()
        self.zsum = 0.0
        self.m_up = self.min_up = self.m_down = self.max_down = 0.0

    def snapshot(self) -> dict[str, Any]:
        """As plain data."""
        return self._snapshot(
            zsum=self.zsum, m=[self.m_up, self.min_up, self.m_down, self.max_down]
        )

    def restore(self, data: Mapping[str, Any]) -> None:
        """Put back what ``snapshot`` wrote."""
        self._restore(data)
        self.zsum = float(data["zsum"])
        self.m_up, self.min_up, self.m_down, self.max_down = (float(v) for v in data["m"])


def make_detector(
    method: str,
    *,
    sides: Sides = "up",
    learn: int = LEARN,
    min_sigma: float = 0.0,
    threshold: float = 0.0,
    cap: float = 0.0,
    centre: float | None = None,
) -> Detector:
    """A detector by its method's name (``cusum``, ``page_hinkley``): the default settings,
    but for ``threshold`` (``h`` or ``lambda``; 0 for the default), ``cap`` and a known
    ``centre`` (``Baseline.centre``)."""
    common: dict[str, Any] = {
        "sides": sides,
        "learn": learn,
        "min_sigma": min_sigma,
        "cap": cap,
        "centre": centre,
    }
    if method == Cusum.method:
        return Cusum(h=threshold or CUSUM_H, **common)
    if method == PageHinkley.method:
        return PageHinkley(lam=threshold or PH_LAMBDA, **common)
    raise ValueError(f"no drift statistic {method!r} (cusum, page_hinkley)")


def first_alarm(detector: Detector, xs: Iterable[float], *, change: int) -> tuple[int | None, int]:
    """Feed ``xs``; samples from index ``change`` to the first alarm at or after it (None if
    none came), and how many alarms came before it (false ones, if ``change`` is where the
    series really changed)."""
    early = 0
    for i, x in enumerate(xs):
        if detector.update(x) is not None:
            if i >= change:
                return i - change + 1, early
            early += 1
    return None, early


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x
