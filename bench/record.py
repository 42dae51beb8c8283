"""The cell's real-time factor alone, with a bag recorder, and with the console attached.

All runs are the assembly cell in one process over ``ipc://`` (so another
process can subscribe), same seed and duration. The recorder is
``lightsout record`` in its own process, waited for before the first tick, as
``lightsout run --record`` does; the console is the live view in its own
process, drawing to a 120x50 virtual terminal at its usual rate.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bus.cellspec import CellSpec
from bus.endpoints import private_ipc_base
from cells.launch import RunOptions, run_cell
from clients.cli import lower_priority

CONSOLE = """
import os, sys
from rich.console import Console
from clients.console import run_console
console = Console(file=open(os.devnull, "w"), force_terminal=True, width=120, height=50)
run_console(sys.argv[1], console=console, stdin=open(os.devnull), max_s=float(sys.argv[2]))
"""


def _observer(kind: str, base: str, tmp: Path, cell: CellSpec) -> subprocess.Popen[bytes] | None:
    if kind == "record":
        # with the cell file, as ``lightsout run --record`` does: URDFs, link tree, scene
        cmd = [sys.executable, "-m", "clients.cli", "record", "--endpoint", base, str(tmp / "bag")]
        cmd += ["--cell", cell.source]
    elif kind == "console":
        cmd = [sys.executable, "-c", CONSOLE, base, "600"]
    else:
        return None
    # observers run below the cell's priority, as ``lightsout run --record`` starts them
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lower_priority
    )


def _rtf(cell: CellSpec, duration_s: float, seed: int, observer: str) -> tuple[float, int]:
    """Real-time factor with ``observer`` ("", "record" or "console") attached; bag messages."""
    base = private_ipc_base()
    with tempfile.TemporaryDirectory() as tmp:
        proc = _observer(observer, base, Path(tmp), cell)
        opts = RunOptions(
            seed=seed, duration_s=duration_s, endpoint=base, subscribers=1 if proc else 0
        )
        t0 = time.perf_counter()
        run_cell(cell, Path(tmp) / "run", opts)
        wall = time.perf_counter() - t0
        messages = 0
        if proc is not None and observer == "console":
            proc.terminate()
            proc.wait(timeout=30)
        elif proc is not None:
            proc.wait(timeout=120)
            from rosbags.rosbag2 import Reader

            with Reader(Path(tmp) / "bag") as reader:
                messages = reader.message_count
    return duration_s / wall, messages


def run(
    cell: CellSpec, duration_s: float, seed: int, *, rounds: int = 3
) -> list[tuple[str, float, str]]:
    """(what, real-time factor, note) alone, with the recorder, with the console.

    The three runs alternate ``rounds`` times and each figure is the median:
    on a shared machine one run alone says little.
    """
    rtf: dict[str, list[float]] = {"": [], "record": [], "console": []}
    messages = 0
    for _ in range(rounds):
        for observer in rtf:
            value, n = _rtf(cell, duration_s, seed, observer)
            rtf[observer].append(value)
            messages = max(messages, n)
    med = {k: statistics.median(v) for k, v in rtf.items()}
    spread = {k: f"{min(v):.2f} to {max(v):.2f}" for k, v in rtf.items()}
    return [
        ("cell, one process, ipc", med[""], f"median of {rounds}: {spread['']}"),
        ("same, with --record", med["record"], f"{spread['record']}; {messages} bag messages"),
        ("same, with the console attached", med["console"], spread["console"]),
    ]
