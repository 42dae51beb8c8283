"""The cost of CURVE on every socket: the same cell over tcp with keys and without.

Both runs are the whole assembly cell with ``--processes`` over ``tcp://`` on
loopback, same cell file, seed and duration, one after the other in the same
``python -m bench`` run: once with keys (CURVE and ZAP on the clock, the cell
bus, control and telemetry, every participant signing with its own key) and
once ``--insecure`` (the same sockets, plain). The figure is the ratio of their
real-time factors; the event logs must be the same byte for byte (security
changes who may speak, never what the cell does).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bus.cellspec import CellSpec
from bus.endpoints import free_loopback_base
from bus.security import create_key
from cells.launch import RunOptions, run_cell


def _one(cell: CellSpec, duration_s: float, seed: int, keys: Path | None, out: Path) -> float:
    opts = RunOptions(
        seed=seed,
        duration_s=duration_s,
        processes=True,
        endpoint=free_loopback_base(),
        keys_dir=keys,
        insecure=keys is None,
    )
    t0 = time.perf_counter()
    run_cell(cell, out, opts)
    return duration_s / (time.perf_counter() - t0)


def run(cell: CellSpec, duration_s: float, seed: int) -> list[tuple[str, float, str]]:
    """(name, real-time factor, note) for the cell without CURVE, then with it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = root / "keys"
        create_key(keys, "admin", "admin")
        plain = _one(cell, duration_s, seed, None, root / "plain")
        curve = _one(cell, duration_s, seed, keys, root / "curve")
        same = (root / "plain" / "events.jsonl").read_bytes() == (
            root / "curve" / "events.jsonl"
        ).read_bytes()
    note = "event log identical" if same else "EVENT LOGS DIFFER"
    return [
        ("tcp --insecure (no CURVE)", plain, ""),
        ("tcp --keys (CURVE on every socket)", curve, note),
    ]
