"""Factory files for the factory's tests: the shipped two-line factory, its lines at events
fidelity (fast), read from a temporary copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CELLS = ROOT / "cells"


def events_factory(tmp_path: Path, **stock: int) -> Path:
    """``cells/factory_2.toml`` with both lines at events fidelity (and, per part kind given,
    that opening stock in the inbound store)."""
    text = (CELLS / "factory_2.toml").read_text()
    text = text.replace('fidelity = "physics"', 'fidelity = "events"')
    text = text.replace('cell = "assembly.toml"', f'cell = "{CELLS / "assembly.toml"}"')
    for kind, n in stock.items():
        text = text.replace(f"{kind} = 600", f"{kind} = {n}", 1)
    path = tmp_path / "phones2_events.toml"
    path.write_text(text)
    return path


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def kpis(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "kpis.json").read_text())
    return data
