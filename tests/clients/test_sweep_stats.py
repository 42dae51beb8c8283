"""The t intervals of a sweep report, against the tables and by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from clients.stats import difference, summarize, t_cdf, t_quantile
from clients.sweep_report import write_report


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


def test_the_report_compares_variants_and_leaves_failed_runs_out(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    for vid, tputs in (("v1", (100, 110, 120)), ("v2", (130, 140, 150))):
        for seed, tput in enumerate(tputs, 1):
            rows.append({"variant": vid, "seed": seed, "status": "ok", "throughput_per_hour": tput})
    rows.append({"variant": "v2", "seed": 4, "status": "failed", "error": "boom"})
    variants = [("v1", "cell.policy=contract_net"), ("v2", "cell.policy=fcfs")]
    md, png = write_report(rows, tmp_path, variants=variants, title="t", command="c", wall_s=1.0)
    text = md.read_text(encoding="utf-8")
    assert "7 runs (6 finished, 1 failed)" in text
    # v2 - v1 = 30 units/h; Welch: se = sqrt(100/3 + 100/3), df = 4, t = 2.7764
    half = 2.7764451 * math.sqrt(200 / 3)
    assert f"**30.00 [{30 - half:.2f}, {30 + half:.2f}]**" in text
    assert "| throughput | units / h | 3 | 110.00 | [85.16, 134.84] |" in text
    assert "| v2 | 4 | boom |" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
