"""``lightsout factory run --chaos``: every line gets chaos faults from its own seed, and
every line keeps its promises through them (its audit), as a lone ``lightsout run --chaos``
cell does."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest

from cells.chaos import chaos_scenario
from cells.faults import parse_scenario
from cells.schema import load_cell
from clients.cli import main
from tests.factory.kit import CELLS, events_factory, jsonl, kpis

SEED, RATE, DURATION = 12, 0.15, 100
"""Line L1 (seed 12) draws five faults, a supervisor and an agent crash among them; L2
(seed 13) two; neither a freeze (each would cost the guard's wall seconds)."""


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("factory-chaos")
    argv = ["factory", "run", str(events_factory(tmp)), "--duration", str(DURATION)]
    argv += ["--order", "retail:phone:20:300", "--processes", "--chaos", str(RATE)]
    argv += ["--seed", str(SEED), "--window", "50", "--runs-dir", str(tmp), "--name", "c"]
    assert main(argv) == 0  # the material balances and every line's audit passes
    return tmp / "c"


@pytest.mark.timeout(300)
def test_every_line_gets_the_chaos_of_its_own_seed(out: Path) -> None:
    cell = load_cell(str(CELLS / "assembly.toml"))
    for i, line in enumerate(("L1", "L2")):
        drawn = chaos_scenario(cell, RATE, DURATION, SEED + i)
        text = (out / "lines" / line / "chaos.toml").read_text()
        assert parse_scenario(tomllib.loads(text), cell, source="chaos.toml") == drawn
        log = jsonl(out / "lines" / line / "events.jsonl")
        injected = Counter(e["fault"] for e in log if e["kind"] == "fault_injected")
        assert injected == Counter(f.kind.value for f in drawn), line
    assert len(chaos_scenario(cell, RATE, DURATION, SEED)) == 5


@pytest.mark.timeout(300)
def test_the_factory_counts_every_lines_faults_and_every_audit_passes(out: Path) -> None:
    k = kpis(out)
    for line in ("L1", "L2"):
        cell = kpis(out / "lines" / line)
        faults = cell["faults"]
        assert k["lines"][line]["faults"] == {
            "injected": len(faults),
            "detected": sum(f["detected_at_s"] is not None for f in faults),
            "recovered": sum(f["recovered_at_s"] is not None for f in faults),
        }
        assert k["lines"][line]["faults"]["injected"] >= 2
        assert main(["audit", str(out / "lines" / line), "--window", "50"]) == 0, line
    log = jsonl(out / "lines" / "L1" / "events.jsonl")
    restarts = [e for e in log if e["kind"] == "supervisor_restored"]
    assert restarts, "L1's supervisor was killed and carried on from its journal"
    assert k["material_balanced"] and k["orders"]["O00001"]["built"] >= 8


@pytest.mark.timeout(300)
def test_the_same_chaos_in_one_process_gives_every_lines_log(out: Path, tmp_path: Path) -> None:
    """Without ``--processes`` each line's crashes and freezes strike the members stepped on
    its clock's thread (``cells.residents``): the factory's log and every line's are the
    processes' byte for byte, L1's supervisor restored from its journal the same."""
    argv = ["factory", "run", str(events_factory(tmp_path)), "--duration", str(DURATION)]
    argv += ["--order", "retail:phone:20:300", "--chaos", str(RATE)]
    argv += ["--seed", str(SEED), "--window", "50", "--runs-dir", str(tmp_path), "--name", "c"]
    assert main(argv) == 0
    for rel in ("events.jsonl", "lines/L1/events.jsonl", "lines/L2/events.jsonl"):
        assert (tmp_path / "c" / rel).read_bytes() == (out / rel).read_bytes(), rel
