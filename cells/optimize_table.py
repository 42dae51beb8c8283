"""The cell file's ``[optimize]`` table: what self-optimization may change, and within what.

Every key is checked on load and a bad one fails in one line naming the file,
the key and the reason (``docs/cell-file.md``)::

    [optimize]
    enabled = true          # false: nothing learned is acted on (as --no-optimize)
    alpha = 0.3             # weight of the newest operation time, (0, 1]
    min_samples = 2         # operations behind a learned time before it is used
    drop_window = 20        # carries a robot's drop share is judged over
    drops_high = 0.1        # a drop share at least this lowers the speed scale
    clean_carries = 30      # carries without a drop before the scale is raised
    speed_step = 0.1        # one change of the speed scale

    [optimize.speed]        # each tuned robot's [least, most] speed scale
    R1 = [0.6, 1.2]         # MIN_SPEED_SCALE <= least <= 1 <= most <= MAX_SPEED_SCALE
"""

from __future__ import annotations

from collections.abc import Collection

from bus.cellspec import MAX_SPEED_SCALE, MIN_SPEED_SCALE, OptimizeSpec
from cells.tables import _bool, _int, _pos, _Table, _vec

MAX_SAMPLES = 1000
"""The most operations ``min_samples`` may ask for."""
MAX_WINDOW = 10_000
"""The most carries ``drop_window`` and ``clean_carries`` may span."""
MAX_STEP = 0.5
"""The largest ``speed_step``."""


def parse_optimize(top: _Table, robots: Collection[str]) -> OptimizeSpec:
    """``[optimize]`` of a cell file (its defaults if there is none)."""
    if "optimize" not in top.data:
        return OptimizeSpec()
    t = top.sub("optimize")
    d = OptimizeSpec()
    enabled = t.get("enabled", _bool, d.enabled)
    alpha = t.get("alpha", _pos, d.alpha)
    if alpha > 1:
        raise t.fail("alpha", f"must be in (0, 1], got {alpha:g}")
    min_samples = _bounded(t, "min_samples", d.min_samples, MAX_SAMPLES)
    drop_window = _bounded(t, "drop_window", d.drop_window, MAX_WINDOW)
    clean_carries = _bounded(t, "clean_carries", d.clean_carries, MAX_WINDOW)
    drops_high = t.get("drops_high", _pos, d.drops_high)
    if drops_high > 1:
        raise t.fail("drops_high", f"a share of carries, in (0, 1], got {drops_high:g}")
    speed_step = t.get("speed_step", _pos, d.speed_step)
    if speed_step > MAX_STEP:
        raise t.fail("speed_step", f"at most {MAX_STEP:g}, got {speed_step:g}")
    speed: list[tuple[str, float, float]] = []
    if "speed" in t.data:
        st = t.sub("speed")
        for robot in sorted(st.data):
            if robot not in robots:
                raise st.fail(robot, f"not a robot of the cell ({', '.join(sorted(robots))})")
            lo, hi = st.get(robot, _vec(2))
            if not MIN_SPEED_SCALE <= lo <= 1.0 <= hi <= MAX_SPEED_SCALE:
                why = (
                    f"[least, most] speed scale with {MIN_SPEED_SCALE:g} <= least <= 1 <= most "
                    f"<= {MAX_SPEED_SCALE:g}, got [{lo:g}, {hi:g}]"
                )
                raise st.fail(robot, why)
            speed.append((robot, lo, hi))
        st.close()
    t.close()
    return OptimizeSpec(
        enabled=enabled,
        alpha=alpha,
        min_samples=min_samples,
        speed=tuple(speed),
        drop_window=drop_window,
        drops_high=drops_high,
        clean_carries=clean_carries,
        speed_step=speed_step,
    )


def _bounded(t: _Table, key: str, default: int, most: int) -> int:
    value = t.get(key, _int, default)
    if value > most:
        raise t.fail(key, f"at most {most}, got {value}")
    return value
