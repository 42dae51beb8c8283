"""The event log: one JSON object per line, in sim-time order, byte-stable.

Keys are sorted and floats are written as Python prints them, so the same run
gives the same bytes (DESIGN principle 4); tests compare logs byte for byte.

Observers (the fault tracker) see every record the log holds, the history a
restored log starts with included, so what they derive from it survives a
restart without a snapshot of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

Observer = Callable[[Mapping[str, Any]], None]
"""Called with each record (``t_ns``, ``kind`` and the event's fields), in log order."""


class EventLog:
    """Appends events to ``events.jsonl`` (or only counts them when ``path`` is None)."""

    def __init__(
        self,
        path: Path | None,
        *,
        lines: list[str] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        """Start ``path`` afresh, or with ``lines`` (a restored supervisor's history).

        ``observers`` are shown ``lines`` first, then every event written.
        """
        self.path = path
        self.count = 0
        self.fresh: list[str] = []
        """Lines written since the last ``take_fresh`` (for telemetry)."""
        self.observers = tuple(observers)
        self._fh: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("w", encoding="utf-8")
        for line in lines or ():
            if self._fh is not None:
                self._fh.write(line + "\n")
            if self.observers:
                rec = json.loads(line)
                for observe in self.observers:
                    observe(rec)

    def write(self, t_ns: int, kind: str, **fields: Any) -> None:
        """Record one event at sim time ``t_ns``."""
        self.count += 1
        rec = {"t_ns": t_ns, "kind": kind, **fields}
        line = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        self.fresh.append(line)
        if self._fh is not None:
            self._fh.write(line + "\n")
        for observe in self.observers:
            observe(rec)

    def snapshot(self) -> dict[str, int]:
        """How many events were written (the lines themselves are the journal's)."""
        return {"count": self.count}

    def restore(self, data: dict[str, int]) -> None:
        """Carry on counting from a snapshot."""
        self.count = data["count"]

    def take_fresh(self) -> tuple[str, ...]:
        """The lines written since the last call."""
        out, self.fresh = tuple(self.fresh), []
        return out

    def flush(self) -> None:
        """Push buffered events to disk."""
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        """Flush and close."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
