"""The faults of a headless run, as ``lightsout run`` and ``lightsout sweep`` both plan them.

A run's faults are a scenario file (``--faults``) and, with ``--chaos RATE``,
random faults drawn from the seed (``cells.chaos``), merged in sim-time order.
Both commands call ``plan_faults`` so a sweep's run of seed N injects exactly
what ``lightsout run --seed N`` would, and its event log is the same byte for
byte; ``write_chaos`` leaves the drawn scenario in the run directory, where
the audit and a rerun by hand find it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bus.cellspec import CellSpec
from bus.errors import ConfigError
from cells.chaos import chaos_scenario
from cells.faults import ScheduledFault, dump_scenario, load_scenario


@dataclasses.dataclass(frozen=True, slots=True)
class RunFaults:
    """What a run injects: every fault in order, and which of them chaos drew."""

    faults: tuple[ScheduledFault, ...]
    chaos: tuple[ScheduledFault, ...]


def plan_faults(
    cell: CellSpec,
    *,
    scenario: str | tuple[ScheduledFault, ...] | None,
    chaos_rate: float,
    duration_s: float,
    seed: int,
    killable: bool,
    wear: bool = False,
) -> RunFaults:
    """The scenario's faults (a file, or faults already read from one) and the chaos drawn
    for ``seed`` (with the degrading kinds too if ``wear``), or one clear error.

    ``killable``: the run's agents and supervisor can be killed and frozen, as processes of
    their own (``cells.children``) or as members stepped in the launcher's process
    (``cells.residents``); chaos draws crashes and freezes, so it needs that."""
    given = load_scenario(scenario, cell) if isinstance(scenario, str) else scenario or ()
    if chaos_rate and not killable:
        why = (
            "chaos kills and freezes the agents and the supervisor: run with --processes, "
            "or in one process over inproc"
        )
        raise ConfigError("--chaos", str(chaos_rate), why)
    if wear and not chaos_rate:
        raise ConfigError("--wear", "", "--wear adds the degrading kinds to --chaos: give --chaos")
    chaos = chaos_scenario(cell, chaos_rate, duration_s, seed, wear=wear) if chaos_rate else ()
    merged = tuple(sorted((*given, *chaos), key=lambda f: (f.at_s, f.target, f.kind.value)))
    return RunFaults(merged, chaos)


def write_chaos(out: Path, faults: RunFaults, note: str) -> None:
    """``chaos.toml``: the faults chaos drew for this run (the directory is made here)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "chaos.toml").write_text(dump_scenario(faults.chaos, note), encoding="utf-8")
