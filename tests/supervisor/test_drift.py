"""The drift statistics on seeded synthetic series: the delays and false-alarm rates that
``docs/autonomy.md`` documents hold, and the state survives a snapshot."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from supervisor.drift import (
    LEARN,
    Baseline,
    Cusum,
    Detector,
    PageHinkley,
    first_alarm,
    make_detector,
)

IN_CONTROL = 200
"""Samples judged before the shift (as ``bench/drift.py``)."""

DELAY_BOUNDS = {
    # method: {shift in sigmas: (median, 95th percentile) documented in docs/autonomy.md}
    "cusum": {1.0: (32, 120), 2.0: (10, 16), 3.0: (6, 9)},
    "page_hinkley": {1.0: (38, 10**6), 2.0: (10, 16), 3.0: (6, 9)},
}
ARL0_AT_LEAST = {"cusum": 50_000, "page_hinkley": 100_000}
"""Documented: samples per false alarm on stationary Gaussian noise, baseline of 50."""


def series(rng: random.Random, shift: float, n: int, before: int = IN_CONTROL) -> list[float]:
    xs = [rng.gauss(10.0, 2.0) for _ in range(LEARN + before)]
    return xs + [rng.gauss(10.0 + 2.0 * shift, 2.0) for _ in range(n)]


@pytest.mark.parametrize("method", ["cusum", "page_hinkley"])
@pytest.mark.parametrize("shift", [1.0, 2.0, 3.0])
def test_a_shift_is_caught_within_the_documented_delay(method: str, shift: float) -> None:
    rng = random.Random(f"test/{method}/{shift}")
    delays = []
    for _ in range(150):
        n, _early = first_alarm(
            make_detector(method), series(rng, shift, 300), change=LEARN + IN_CONTROL
        )
        delays.append(n if n is not None else 10**6)
    delays.sort()
    median, p95 = DELAY_BOUNDS[method][shift]
    assert statistics.median(delays) <= median
    assert delays[int(0.95 * (len(delays) - 1))] <= p95


@pytest.mark.parametrize("method", ["cusum", "page_hinkley"])
def test_stationary_noise_raises_no_more_false_alarms_than_documented(method: str) -> None:
    rng = random.Random(f"noise/{method}")
    samples = alarms = 0
    for _ in range(10):
        det = make_detector(method)
        xs = [rng.gauss(3.0, 0.5) for _ in range(LEARN + 40_000)]
        alarms += sum(1 for x in xs if det.update(x) is not None)
        samples += 40_000
    assert alarms <= samples / ARL0_AT_LEAST[method]


def test_a_detector_with_no_dead_band_is_caught_by_the_false_alarm_check() -> None:
    """The check above can fail: k = 0 alarms on noise all the time."""
    rng = random.Random("noise/k0")
    det = Cusum(k=0.0, h=10.0)
    xs = [rng.gauss(3.0, 0.5) for _ in range(LEARN + 40_000)]
    assert sum(1 for x in xs if det.update(x) is not None) > 40_000 / ARL0_AT_LEAST["cusum"]


def test_two_sided_detectors_see_a_fall_and_one_sided_ones_do_not() -> None:
    rng = random.Random("fall")
    xs = series(rng, -3.0, 200)
    for make in (Cusum, PageHinkley):
        n, _ = first_alarm(make(sides="both"), xs, change=LEARN + IN_CONTROL)
        assert n is not None and n <= 10
        up = make(sides="up")
        alarms = [a for a in (up.update(x) for x in xs[LEARN + IN_CONTROL :]) if a]
        assert alarms == []
    det = Cusum(sides="both")
    alarm = next(a for a in (det.update(x) for x in xs) if a)
    assert alarm.direction == "down" and alarm.recent < alarm.mean


def test_the_baseline_ignores_a_few_outliers() -> None:
    rng = random.Random("outliers")
    base = Baseline(50)
    xs = [rng.gauss(5.0, 0.1) for _ in range(47)] + [50.0, 80.0, -30.0]
    for x in xs:
        base.add(x)
    assert base.ready
    assert base.mean == pytest.approx(5.0, abs=0.05)
    assert base.sigma == pytest.approx(0.1, rel=0.3)


def test_a_constant_baseline_gets_a_floor_not_a_zero_sigma() -> None:
    det = Cusum(learn=10, min_sigma=0.04)
    for _ in range(10):
        det.update(2.0)
    assert det.baseline.sigma == 0.04
    assert det.update(2.04) is None  # one floor's worth is no alarm


def test_the_alarm_says_what_crossed_what() -> None:
    det = Cusum(learn=10)
    rng = random.Random("evidence")
    for _ in range(10):
        det.update(rng.gauss(1.0, 0.1))
    alarm = None
    while alarm is None:
        alarm = det.update(2.0)
    ev = alarm.evidence()
    assert ev["method"] == "cusum" and ev["direction"] == "up"
    assert ev["statistic"] > ev["threshold"] == 10.0
    assert ev["recent_mean"] == 2.0 and ev["samples"] == alarm.samples >= 1
    assert det.up == 0.0  # restarted after the alarm


@pytest.mark.parametrize("method", ["cusum", "page_hinkley"])
def test_a_restored_detector_carries_on_exactly(method: str) -> None:
    rng = random.Random(f"restore/{method}")
    xs = series(rng, 1.5, 200)
    whole: Detector = make_detector(method, sides="both")
    expected = [a.evidence() if (a := whole.update(x)) else None for x in xs]
    half: Detector = make_detector(method, sides="both")
    got = [a.evidence() if (a := half.update(x)) else None for x in xs[:30]]  # mid-baseline
    again: Detector = make_detector(method, sides="both")
    again.restore(json.loads(json.dumps(half.snapshot())))
    got += [a.evidence() if (a := again.update(x)) else None for x in xs[30:]]
    assert got == expected
    assert any(expected)


def test_reset_learns_the_baseline_again() -> None:
    det = PageHinkley(learn=5)
    for x in (1.0, 1.1, 0.9, 1.0, 1.05):
        det.update(x)
    assert det.baseline.ready
    det.reset()
    assert not det.baseline.ready and det.n == 0
    for x in (9.0, 9.1, 8.9, 9.0, 9.05):
        assert det.update(x) is None
    assert det.baseline.mean == pytest.approx(9.01)


def test_an_unknown_method_or_bad_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="no drift statistic"):
        make_detector("ewma")
    with pytest.raises(ValueError):
        Cusum(h=0.0)
    with pytest.raises(ValueError):
        PageHinkley(delta=-1.0)


def test_a_capped_score_lets_no_single_wild_sample_alarm_but_a_drift_does() -> None:
    rng = random.Random("cap")
    base = [rng.gauss(1.0, 0.1) for _ in range(20)]
    capped, plain = Cusum(learn=20, cap=4.0), Cusum(learn=20)
    for x in base:
        capped.update(x)
        plain.update(x)
    assert plain.update(50.0) is not None  # one wild sample is an alarm uncapped
    assert capped.update(50.0) is None  # not capped at 4 sigmas (4 - k < h)
    assert capped.update(50.0) is None
    assert capped.update(50.0) is not None  # three in a row are
