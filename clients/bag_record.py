"""Record a live cell: subscribe to its telemetry and write a bag (``clients.bag``) until it ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.errors import ConfigError, LightsoutError
from bus.messages import EventFrame, JointsFrame, Message

log = logging.getLogger(__name__)


def record(
    endpoint_base: str,
    path: Path,
    *,
    cell: CellSpec | None = None,
    cell_file: str | Path | None = None,
    stop: threading.Event | None = None,
    idle_s: float | None = None,
    probe_s: float | None = 5.0,
    until_ns: int | None = None,
    on_frame: Callable[[Message], None] | None = None,
    ready: threading.Event | None = None,
    ctx: Any = None,
) -> RecordResult:
    """Subscribe to a cell's telemetry and write every frame to a bag at ``path``.

    Stops at the cell's ``run_end`` event, when ``stop`` is set, after
    ``idle_s`` wall seconds without a frame once frames have come, at the
    first joints frame at or past ``until_ns`` of sim time, or when the cell
    is gone: after ``probe_s`` seconds of silence the control endpoint is
    asked for its status (a paused cell answers and is waited for; a cell
    that ended does not). Ctrl-C also ends it, with the bag closed and
    complete. ``ready`` is set once the subscription is on its way.

    The subscription comes first: a cell waits for its recorders before its
    first tick, and a recorder runs at idle priority, so everything it can do
    later (the cell file, ``cell_file``, read in place of ``cell``; the ROS
    type store; the URDFs) waits until the cell is under way, its frames
    queueing meanwhile.
    """
    from bus.messages import TOPICS
    from clients.control import Subscriber

    result = RecordResult(path=Path(path))
    if Path(path).exists():
        raise ConfigError(str(path), "", "exists already; a bag is never overwritten")
    with Subscriber(endpoint_base, TOPICS, ctx=ctx, hwm=1_000_000) as sub:
        if ready is not None:
            ready.set()
        if cell_file is not None:
            from cells.schema import load_cell

            cell = load_cell(cell_file)
        from clients.bag import BagRecorder

        with BagRecorder(path, cell=cell) as bag:
            _loop(bag, sub, result, endpoint_base, stop, idle_s, probe_s, until_ns, on_frame, ctx)
    return result


def _loop(
    bag: Any,
    sub: Any,
    result: RecordResult,
    endpoint_base: str,
    stop: threading.Event | None,
    idle_s: float | None,
    probe_s: float | None,
    until_ns: int | None,
    on_frame: Callable[[Message], None] | None,
    ctx: Any,
) -> None:
    """Take frames until the run ends (``record`` says when); fill ``result`` as it goes."""
    from clients.control import ControlClient, NoAnswer

    last_frame = last_probe = time.monotonic()
    try:
        while stop is None or not stop.is_set():
            frames = sub.poll(0.2)
            now = time.monotonic()
            if frames:
                last_frame = now
            elif idle_s is not None and bag.frames and now - last_frame > idle_s:
                result.reason = f"no telemetry for {idle_s:g} s"
                break
            elif (
                probe_s is not None
                and bag.frames
                and min(now - last_frame, now - last_probe) > probe_s
            ):
                last_probe = now
                try:
                    with ControlClient(endpoint_base, timeout_s=2.0, retries=0, ctx=ctx) as cc:
                        cc.status()
                except NoAnswer:
                    result.reason = "the cell is gone"
                    break
                except LightsoutError as exc:  # answered, though not as hoped: alive
                    log.debug("record: status probe: %s", exc)
            done = False
            for f in frames:
                bag.write(f)
                if on_frame is not None:
                    on_frame(f)
                if isinstance(f, EventFrame) and f.kind == "run_end":
                    result.reason, done = "run_end", True
                elif isinstance(f, JointsFrame) and until_ns is not None and f.t_ns >= until_ns:
                    result.reason, done = "reached the end time", True
            if done:
                break
        else:
            result.reason = result.reason or "stopped"
    except KeyboardInterrupt:
        result.reason = "interrupted"
    finally:
        result.frames = bag.frames
        result.counts = dict(bag.counts)
        result.last_t_ns = bag.last_t_ns
        result.lost = sub.lost
        result.gaps = sub.gap_count
        result.malformed = sub.malformed


class RecordResult:
    """What ``record`` wrote and why it stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reason = ""
        self.frames = 0
        self.counts: dict[str, int] = {}
        self.last_t_ns = -1
        self.lost = 0
        self.gaps = 0
        self.malformed = 0
