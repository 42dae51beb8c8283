"""Chaos runs: random faults of every kind, and the cell keeps its promises through them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.cellspec import CellSpec
from bus.enums import DEGRADING_KINDS, FaultKind
from bus.errors import ConfigError
from cells.audit import audit_run
from cells.chaos import CLASSIC_KINDS, QUIET_END_S, WARM_UP_S, chaos_scenario
from cells.faults import dump_scenario, parse_scenario
from cells.launch import RunOptions, run_cell
from clients.cli import main
from tests.reference import first_difference

ROOT = Path(__file__).resolve().parents[2]


def test_a_chaos_scenario_is_drawn_from_the_seed_with_every_kind(cell: CellSpec) -> None:
    faults = chaos_scenario(cell, 0.02, 1800, seed=7)
    assert faults == chaos_scenario(cell, 0.02, 1800, seed=7)
    assert faults != chaos_scenario(cell, 0.02, 1800, seed=8)
    assert 20 <= len(faults) <= 55  # about 0.02 x 1720 s = 34
    assert {f.kind for f in faults} == set(CLASSIC_KINDS)
    for f in faults:
        assert f.at_s >= WARM_UP_S
        assert f.at_s + f.duration_s <= 1800 - QUIET_END_S + 1e-6
    # written out, it reads back as the same scenario (a chaos run can be replayed with --faults)
    import tomllib

    again = parse_scenario(tomllib.loads(dump_scenario(faults, "a comment")), cell, source="x")
    assert again == faults


def test_chaos_with_wear_draws_the_degrading_kinds_too(cell: CellSpec) -> None:
    import tomllib

    plain = chaos_scenario(cell, 0.02, 1800, seed=7)
    faults = chaos_scenario(cell, 0.02, 1800, seed=7, wear=True)
    # every kind but tool_wear, which chaos does not draw (cells/chaos.py, WEAR_RANGES)
    assert {f.kind for f in faults} == set(FaultKind) - {FaultKind.TOOL_WEAR}
    assert faults != plain  # the rounds are longer, so the draws differ
    for f in faults:
        if f.kind in DEGRADING_KINDS:
            assert f.duration_s > 0
            assert f.kind is not FaultKind.CYCLE_CREEP or f.factor > 1
            if f.kind in (FaultKind.GRIPPER_WEAR, FaultKind.BELT_WEAR):
                assert 0 < f.share < 1
    again = parse_scenario(tomllib.loads(dump_scenario(faults)), cell, source="x")
    assert again == faults


@pytest.mark.parametrize(
    ("rate", "duration", "key"),
    [(0.0, 600, "--chaos"), (2.0, 600, "--chaos"), (0.02, 60, "--duration")],
)
def test_bad_chaos_arguments_fail_with_one_line(
    cell: CellSpec, rate: float, duration: float, key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        chaos_scenario(cell, rate, duration, seed=1)
    assert str(err.value).startswith(f"{key}:")


def test_chaos_with_members_on_threads_of_their_own_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over ipc without --processes the members are threads with sockets of their own, which
    nothing can kill or freeze alone: one line, nothing written."""
    cell_file = str(ROOT / "cells/assembly.toml")
    argv = ["run", cell_file, "--chaos", "0.02", "--endpoint", f"ipc://{tmp_path / 's'}"]
    code = main([*argv, "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        line.startswith("error: --chaos: 0.02: chaos kills and freezes") and "--processes" in line
    )
    assert not list(tmp_path.iterdir())  # nothing written


def test_wear_without_chaos_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cell_file = str(ROOT / "cells/assembly.toml")
    code = main(["run", cell_file, "--wear", "--processes", "--runs-dir", str(tmp_path), "-q"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --wear") and "--chaos" in line
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def chaos_runs(cell: CellSpec, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A short chaos run in real processes, freezes included, and its rerun in one process
    (its crashes and freezes those of the members stepped on the clock's thread)."""
    faults = chaos_scenario(cell, 0.06, 330, 1)
    assert {f.kind for f in faults} == set(CLASSIC_KINDS), "the seed must draw every kind"
    dirs = []
    for processes in (True, False):
        out = tmp_path_factory.mktemp("chaos-processes" if processes else "chaos-one")
        # a 5 s guard: each freeze (12 s or more) costs 5 s of wall time, not 10
        opts = RunOptions(seed=1, duration_s=330, processes=processes, faults=faults, guard_s=5.0)
        run_cell(cell, out, opts)
        dirs.append(out)
    return dirs


@pytest.mark.timeout(900)
def test_a_chaos_run_keeps_every_promise(cell: CellSpec, chaos_runs: list[Path]) -> None:
    """Every kind injected (freezes of an agent and of the supervisor too), the audit passes."""
    out = chaos_runs[0]
    faults = chaos_scenario(cell, 0.06, 330, 1)
    kpis = json.loads((out / "kpis.json").read_text())
    checks = audit_run(out, window_s=110)
    assert [c.name for c in checks if not c.ok] == [], [c for c in checks if not c.ok]
    log = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    injected = {e["fault"] for e in log if e["kind"] == "fault_injected"}
    assert injected == {k.value for k in CLASSIC_KINDS}
    assert first_difference("assembly-chaos-seed1-330s", out) == "", "the reference log"
    crashes = [f for f in faults if f.kind in (FaultKind.AGENT_CRASH, FaultKind.SUPERVISOR_CRASH)]
    assert len(kpis["sim"]["killed"]) == len(crashes)
    freezes = [f for f in faults if f.kind in (FaultKind.AGENT_FREEZE, FaultKind.SUPERVISOR_FREEZE)]
    frozen = kpis["sim"]["frozen"]  # at the first tick boundary at or after each fault
    assert [name for _t, name, _s in frozen] == [f.target for f in freezes]
    assert all(
        0 <= t - f.at_s * 1e9 < cell.tick_ns for (t, _n, _s), f in zip(frozen, freezes, strict=True)
    )
    # each freeze outlasted the guard: dropped, killed and restarted (the supervisor restored)
    assert sorted(kpis["sim"]["dropped"]) == sorted(f.target for f in (*crashes, *freezes))
    assert kpis["units_completed"] >= 5


@pytest.mark.timeout(900)
def test_the_same_chaos_in_one_process_gives_the_processes_log(chaos_runs: list[Path]) -> None:
    """The chaos of the processes' run, its members stepped in this process instead: each crash
    drops the object (the supervisor comes back from its journal), each freeze past the guard
    is one; the event log is the reference the processes wrote (so a freeze, which stops the
    wall, replays the same), byte for byte, and the kills, freezes, drops and restarts are
    theirs."""
    there, here = chaos_runs
    assert first_difference("assembly-chaos-seed1-330s", here) == "", "the reference log"
    assert (here / "events.jsonl").read_bytes() == (there / "events.jsonl").read_bytes()
    sims = [json.loads((d / "kpis.json").read_text())["sim"] for d in (here, there)]
    for key in ("killed", "frozen", "dropped", "restarts"):
        assert sims[0][key] == sims[1][key], key
    assert sims[0]["restarts"]["supervisor"] >= 1
