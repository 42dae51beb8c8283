"""The t intervals of a sweep report, against the tables and by hand."""

from __future__ import annotations

import math

import pytest

from clients.stats import difference, summarize, t_cdf, t_quantile


@pytest.mark.parametrize(
    ("df", "t975"),
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423), (199, 1.9720)],
)
def test_the_t_quantile_is_the_table_s(df: int, t975: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(t975, abs=1e-4)
    assert t_cdf(t975, df) == pytest.approx(0.975, abs=1e-5)


def test_a_huge_df_is_the_normal() -> None:
    assert t_quantile(0.975, math.inf) == pytest.approx(1.95996, abs=1e-4)


def test_a_mean_s_interval_is_t_times_the_standard_error() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, math.nan])
    assert (s.n, s.mean, s.median, s.minimum, s.maximum) == (5, 3.0, 3.0, 1.0, 5.0)
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert (s.lo, s.hi) == pytest.approx((3 - half, 3 + half), abs=1e-6)


def test_one_run_has_no_interval_and_none_has_no_mean() -> None:
    assert math.isnan(summarize([4.0]).lo)
    assert summarize([]).n == 0


def test_welch_s_difference_of_means() -> None:
    a, b = summarize([1.0, 2.0, 3.0, 4.0, 5.0]), summarize([3.0, 4.0, 5.0, 6.0, 7.0])
    d = difference(a, b)
    assert d.diff == 2.0 and d.df == pytest.approx(8.0)
    assert (d.lo, d.hi) == pytest.approx((2 - 2.306004, 2 + 2.306004), abs=1e-5)
    assert not d.significant
    far = difference(a, summarize([13.0, 14.0, 15.0, 16.0, 17.0]))
    assert far.significant and far.lo > 0
