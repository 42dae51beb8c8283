"""The cell's real-time factor with and without a ROS 2 bag recorder attached.

Both runs are the assembly cell in one process over ``ipc://`` (so another
process can subscribe), same seed and duration; the recorder is
``lightsout record`` in its own process, waited for before the first tick,
as ``lightsout run --record`` does.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bus.cellspec import CellSpec
from bus.endpoints import private_ipc_base
from cells.launch import RunOptions, run_cell


def _rtf(cell: CellSpec, duration_s: float, seed: int, *, record: bool) -> tuple[float, int]:
    base = private_ipc_base()
    with tempfile.TemporaryDirectory() as tmp:
        recorder = None
        if record:
            cmd = [
                sys.executable,
                "-m",
                "clients.cli",
                "record",
                "--endpoint",
                base,
                str(Path(tmp) / "bag"),
            ]
            recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opts = RunOptions(
            seed=seed, duration_s=duration_s, endpoint=base, subscribers=1 if record else 0
        )
        t0 = time.perf_counter()
        run_cell(cell, Path(tmp) / "run", opts)
        wall = time.perf_counter() - t0
        messages = 0
        if recorder is not None:
            recorder.wait(timeout=120)
            from rosbags.rosbag2 import Reader

            with Reader(Path(tmp) / "bag") as reader:
                messages = reader.message_count
    return duration_s / wall, messages


def run(cell: CellSpec, duration_s: float, seed: int) -> list[tuple[str, float, str]]:
    """(what, real-time factor, note) without and with the recorder."""
    plain, _ = _rtf(cell, duration_s, seed, record=False)
    recorded, messages = _rtf(cell, duration_s, seed, record=True)
    return [
        ("cell, one process, ipc", plain, ""),
        ("same, with --record", recorded, f"{messages} bag messages"),
    ]
