"""The memory benchmarks' own pieces: reading processes by pid, and the growth test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import procmem
from bench.memory import SLOPE_MB_H, Series

pytestmark = pytest.mark.skipif(not procmem.available(), reason="reads /proc (Linux)")

HOLD = "import sys; x = bytearray(64 << 20); x[::4096] = b'1' * len(x[::4096]); sys.stdin.read()"
"""A child that holds 64 MB resident until its stdin closes."""


@pytest.mark.timeout(60)
def test_a_childs_memory_is_read_by_pid_under_the_name_its_command_line_gives() -> None:
    argv = [sys.executable, "-c", HOLD, "-m", "cells.node", "agent", "--robot", "R7"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        while (procmem.status_kb(child.pid, "VmRSS") or 0) < 64 << 10:
            assert child.poll() is None, "the child died"
        assert procmem.tree(os.getpid())["R7"] == child.pid
        rss = procmem.sample(os.getpid())
        assert rss["R7"] >= 64 << 10 and rss[procmem.HOST] > 0
        with procmem.PeakWatch(period_s=0.01) as peaks:
            pass
        assert peaks.peaks["R7"] >= 64 << 10
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert "R7" not in procmem.sample(os.getpid())


def test_a_steady_series_does_not_grow_and_a_leaking_one_does() -> None:
    times = [300.0 * i for i in range(13)]
    steady = Series("R1", {t: 150_000 + (700 if i % 2 else 0) for i, t in enumerate(times)})
    assert steady.grows() is False
    leak = SLOPE_MB_H * 2 * 1024 / 3600  # kB per sim second: twice the threshold
    leaking = Series("R2", {t: 150_000 + round(leak * t) for t in times})
    assert leaking.grows() is True
    assert leaking.slope_mb_h() == pytest.approx(2 * SLOPE_MB_H, rel=0.01)
    assert Series("R3", {0.0: 1, 300.0: 2}).grows() is None, "too few samples to judge"
