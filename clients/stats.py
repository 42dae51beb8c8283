"""Confidence intervals for a sweep's KPIs: Student's t, written out (no SciPy in the venv).

A sweep's runs differ only by their seed, so each KPI over them is a sample of
independent runs; its mean's 95% interval is ``mean +- t(0.975, n-1) * sd /
sqrt(n)``. Two variants are compared by the difference of their means with
Welch's interval (no equal variances assumed, Welch-Satterthwaite degrees of
freedom): an interval that excludes 0 says the variants differ at the 5% level.

The t quantile is found by bisection on the t distribution's CDF, which is a
regularized incomplete beta function evaluated by its continued fraction
(Numerical Recipes' ``betacf``, Lentz's method); it matches the tables to
the fourth decimal (``tests/clients/test_sweep_stats.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

LEVEL = 0.95
"""The confidence level of every interval of a sweep report."""


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """One KPI over the runs of one variant."""

    n: int
    mean: float
    sd: float
    lo: float
    """The lower end of the mean's 95% interval (``nan`` with fewer than 2 runs)."""
    hi: float
    minimum: float
    median: float
    maximum: float


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """The difference of two variants' means (other minus baseline) and its 95% interval."""

    diff: float
    lo: float
    hi: float
    df: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return not (math.isnan(self.lo) or self.lo <= 0 <= self.hi)


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sd, the mean's t interval, and the spread of ``values`` (NaNs left out)."""
    xs = sorted(v for v in values if not math.isnan(v))
    n = len(xs)
    if n == 0:
        nan = math.nan
        return Summary(0, nan, nan, nan, nan, nan, nan, nan)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
    half = t_quantile(0.5 + LEVEL / 2, n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    mid = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return Summary(n, mean, sd, mean - half, mean + half, xs[0], mid, xs[-1])


def difference(base: Summary, other: Summary) -> Difference:
    """Welch's 95% interval of ``other.mean - base.mean``."""
    diff = other.mean - base.mean
    if base.n < 2 or other.n < 2:
        return Difference(diff, math.nan, math.nan, math.nan)
    va, vb = base.sd**2 / base.n, other.sd**2 / other.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(diff, diff, diff, math.inf)
    df = (va + vb) ** 2 / (va**2 / (base.n - 1) + vb**2 / (other.n - 1))
    half = t_quantile(0.5 + LEVEL / 2, df) * se
    return Difference(diff, diff - half, diff + half, df)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (``p`` in (0.5, 1); ``df`` > 0; ``inf`` gives the normal)."""
    if not 0.5 < p < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    if math.isinf(df):
        df = 1e12
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 3e-16:
            break
    return h
