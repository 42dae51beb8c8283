"""Sweeps on a real Dask cluster: each seed as it runs alone, a killed worker, bad input.

One ``LocalCluster`` of two worker processes serves the module. ``swept`` runs
``lightsout sweep`` against it (``--cluster``) while the same seeds run alone
as ``lightsout run`` processes beside it; ``killed`` sweeps the same seeds
again through ``clients.sweep`` and SIGKILLs a worker in the middle of a
run. Runs are 15 s of sim time: every agent boots, the first frame is
auctioned, carried and fixed, and the event logs hold a hundred-odd lines
each to compare byte for byte.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.cli import main
from clients.sweep import local_cluster, plan_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]
CELL = str(ROOT / "cells" / "assembly.toml")
SEEDS = (1, 2, 3)
DURATION = "15"
POLL_S = 120.0

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from distributed import Client

    cluster = local_cluster(2)
    try:
        with Client(cluster, set_as_default=False) as client:
            yield cluster, client
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    """Each seed run alone by ``lightsout run`` (started here, waited for by ``solo``)."""
    root = tmp_path_factory.mktemp("alone")
    procs = {}
    for seed in SEEDS:
        cmd = [sys.executable, "-m", "clients.cli", "run", CELL, "--duration", DURATION]
        cmd += ["--seed", str(seed), "-q", "--runs-dir", str(root), "--name", f"s{seed}"]
        procs[seed] = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    yield {seed: root / f"s{seed}" for seed in SEEDS}
    for p in procs.values():
        if p.poll() is None:
            p.kill()
    for seed, p in procs.items():
        _, err = p.communicate(timeout=POLL_S)
        assert p.returncode == 0, f"seed {seed} alone: {err.decode()[-2000:]}"


def solo(alone: dict[int, Path], seed: int) -> Path:
    """The run of ``seed`` alone, once its ``kpis.json`` is written."""
    out = alone[seed]
    deadline = time.monotonic() + POLL_S
    while not (out / "report.html").exists():  # written after kpis.json
        assert time.monotonic() < deadline, f"the run of seed {seed} alone never finished"
        time.sleep(0.1)
    return out


@pytest.fixture(scope="module")
def swept(
    dask_cluster: Any, alone: dict[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``lightsout sweep --cluster`` of the seeds, on the module's cluster."""
    cluster, _ = dask_cluster
    out = tmp_path_factory.mktemp("sweep") / "sw"
    argv = ["sweep", CELL, "--seeds", "1-3", "--duration", DURATION]
    code = main([*argv, "--cluster", cluster.scheduler_address, "--out", str(out), "-q"])
    assert code == 0
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def same_run(a: Path, b: Path) -> None:
    """Same event log byte for byte, same KPIs (every figure of ``kpis.json``)."""
    assert (a / "events.jsonl").read_bytes() == (b / "events.jsonl").read_bytes()
    ka = json.loads((a / "kpis.json").read_text(encoding="utf-8"))
    kb = json.loads((b / "kpis.json").read_text(encoding="utf-8"))
    assert ka == kb


def test_every_seed_of_a_sweep_is_that_seed_run_alone(swept: Path, alone: dict[int, Path]) -> None:
    table = rows(swept / "sweep.csv")
    assert [int(r["seed"]) for r in table] == list(SEEDS)
    for r in table:
        seed = int(r["seed"])
        assert r["status"] == "ok" and r["ledger_balanced"] == "True"
        same_run(Path(r["run"]), solo(alone, seed))
        kpis = json.loads((solo(alone, seed) / "kpis.json").read_text(encoding="utf-8"))
        assert float(r["availability"]) == kpis["availability"]
        robots = kpis["robots"]
        mean = sum(x["utilisation"] for x in robots.values()) / len(robots)
        assert float(r["utilisation"]) == pytest.approx(mean, abs=1e-4)


def test_a_sweep_writes_its_table_and_report(swept: Path) -> None:
    head = (swept / "sweep.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    for col in ("seed", "variant", "units", "throughput_per_hour", "cycle_time_s", "oee"):
        assert col in head
    assert "utilisation_R1" in head
    md = (swept / "report.md").read_text(encoding="utf-8")
    assert "| utilisation | share (mean of robots) | 3 |" in md
    assert "95% CI" in md and "sweep.png" in md
    assert "`lightsout sweep " in md and f"--seeds 1-3 --duration {DURATION}`" in md
    assert (swept / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_worker_killed_mid_sweep_loses_no_run(
    dask_cluster: Any, alone: dict[int, Path], tmp_path: Path
) -> None:
    _, client = dask_cluster
    plan = plan_sweep(CELL, seeds="1-2", sets=[], duration_s=float(DURATION), out=tmp_path / "k")
    killed: list[str] = []

    def kill_one() -> None:
        """SIGKILL the worker of the first run seen in the middle of its work."""
        deadline = time.monotonic() + POLL_S
        while time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                for job in plan.jobs:
                    run = Path(job.out)
                    started = (run / "events.jsonl").exists()
                    if job.key in keys and started and not (run / "row.json").exists():
                        pid = client.run(os.getpid, workers=[addr])[addr]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(job.key)
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        got = run_sweep(plan, client)
    finally:
        killer.join()
    assert killed, "no worker was ever in the middle of a run"
    assert [r["seed"] for r in got] == [1, 2]
    assert all(r["status"] == "ok" for r in got)
    redone = [r for r in got if r["redone"]]
    assert [f"lightsout-run-v1-seed{r['seed']}" for r in redone] == killed
    for r in got:
        same_run(Path(r["run"]), solo(alone, r["seed"]))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "conveyors.C1.speed=0.1"], "unknown key conveyors.C1"),
        (["--set", "cell.polcy=fcfs"], "cell.polcy: unknown key"),
        (["--set", "conveyors.infeed.speed=fast"], "expected a number"),
        (["--set", "cell.policy=nope"], "'nope' is not one of"),
        (["--set", "speed"], "expected KEY=VALUE"),
        (["--seeds", "1-"], "--seeds: 1-: expected seeds like"),
        (["--seeds", "5-2"], "runs backwards"),
        (["--seeds", "a"], "--seeds: a: expected seeds like"),
        (["--cluster", "tcp://127.0.0.1:9"], "--cluster: tcp://127.0.0.1:9: no Dask scheduler"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", CELL, "--seeds", "1-2", "--duration", "5", "-q", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert list(tmp_path.iterdir()) == []  # no sweeps/ directory, nothing half-written


def test_an_events_sweep_runs_each_seed_as_it_runs_alone(dask_cluster: Any, tmp_path: Path) -> None:
    """At events fidelity too (the calibration travels with the task): seeds 1 and 2, 60 s."""
    cluster, _ = dask_cluster
    common = ["--duration", "60", "--fidelity", "events", "-q"]
    out = tmp_path / "sw"
    argv = ["sweep", CELL, "--seeds", "1-2", *common]
    assert main([*argv, "--cluster", cluster.scheduler_address, "--out", str(out)]) == 0
    for r in rows(out / "sweep.csv"):
        assert r["status"] == "ok" and r["ledger_balanced"] == "True"
        seed = r["seed"]
        runs = tmp_path / "alone"
        alone = ["run", CELL, "--seed", seed, *common, "--runs-dir", str(runs), "--name", seed]
        assert main(alone) == 0
        same_run(Path(r["run"]), runs / seed)
        assert json.loads((runs / seed / "kpis.json").read_text())["sim"]["fidelity"] == "events"


def test_events_fidelity_without_a_calibration_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    cell = tmp_path / "copy.toml"
    cell.write_bytes(Path(CELL).read_bytes())
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", str(cell), "--seeds", "1-2", "--duration", "5", "-q", "--fidelity", "events"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no calibration for" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.toml"]


def test_a_sweep_never_writes_over_another(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "sweep.csv").write_text("kept\n", encoding="utf-8")
    assert main(["sweep", CELL, "--seeds", "1", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --out: {out}: exists already; a sweep is never overwritten"]
    assert [p.name for p in out.iterdir()] == ["sweep.csv"]
    assert (out / "sweep.csv").read_text(encoding="utf-8") == "kept\n"
