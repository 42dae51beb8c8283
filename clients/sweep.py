"""Sweeps: many headless runs of a cell (seeds x variants) on Dask distributed.

Why Dask distributed (and not Ray): it is pure-Python wheels from PyPI
(``dask``, ``distributed``, ``tornado``, ``cloudpickle``), so the venv installs it
like everything else; ``LocalCluster`` starts worker *processes* on this
machine (each run owns its PyBullet client and zmq context, and a run's
threads never share an interpreter with another run's); ``as_completed``
hands results back as they finish, for the progress bar; and the scheduler
reschedules the tasks of a worker that dies, on a live worker, so a killed
worker loses no run. ``--cluster tcp://HOST:8786`` submits the same tasks to a
scheduler started with ``dask scheduler`` and workers with ``dask worker``.

Each task is one run of ``lightsout run`` (the launcher's ``run_cell``, with
the faults ``cells.headless.plan_faults`` plans, and the audit after chaos),
so a sweep's run of seed N is that seed's run alone: same event log, same
KPIs. A task is self-contained: it carries the variant's cell file as text and
writes it into its run directory, so workers need the lightsout package, not
the sweep's files. It returns the run's row of ``sweep.csv``.

A run directory is complete once ``row.json`` is in it (written last). A task
that finds its directory without one (a worker died in the middle of it)
removes it and runs again, and says so in its row (``redone``); one that
finds it complete returns that row (a task run twice writes nothing twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bus.errors import ConfigError, LightsoutError
from cells.faults import ScheduledFault
from cells.headless import RunFaults, plan_faults, write_chaos
from cells.variants import Variant, make_variants

log = logging.getLogger(__name__)

MAX_SEEDS = 100_000
"""The most seeds one sweep runs (per variant)."""
MAX_SEED = 2**32 - 1
CONNECT_S = 3.0
"""How long ``--cluster ADDRESS`` is waited for before it is called unreachable."""
WORKERS_S = 30.0
"""How long a scheduler without workers is waited on for its first (else the sweep would hang)."""
KPIS = (
    "units",
    "throughput_per_hour",
    "cycle_time_s",
    "oee",
    "availability",
    "utilisation",
)
"""The main KPIs of a sweep, the columns its report summarizes (``row`` says what each is)."""
COLUMNS = (
    "variant",
    "label",
    "seed",
    "status",
    *KPIS,
    "scrapped",
    "failures",
    "faults",
    "ledger_balanced",
    "audit",
    "exit_reason",
    "redone",
    "wall_s",
    "run",
    "error",
)
"""The columns of ``sweep.csv`` before the per-robot utilisations (``utilisation_R1``...)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One run of a sweep: everything a worker needs, and nothing it must find on disk."""

    variant: str
    label: str
    cell_text: str
    seed: int
    duration_s: float
    faults: tuple[ScheduledFault, ...]
    chaos: tuple[ScheduledFault, ...]
    processes: bool
    guard_s: float
    out: str
    """The run directory (under the sweep's ``runs/``)."""
    note: str
    """The command that makes this run alone (``chaos.toml``'s note)."""
    calibration: str = ""
    """At events fidelity: the cell's calibration file, whole (JSON text); "" for physics."""

    @property
    def key(self) -> str:
        """The task's key on the scheduler (unique in a sweep)."""
        return f"lightsout-run-{self.variant}-seed{self.seed}"


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """A checked sweep: its variants and one job per variant and seed; nothing written yet."""

    cell: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...]
    jobs: tuple[Job, ...]
    out: Path
    command: str


def parse_seeds(text: str) -> tuple[int, ...]:
    """``1-200``, ``7``, ``1,5,9-12``: the seeds in order, each once; else one clear error."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,10})\s*(?:-\s*(\d{1,10})\s*)?", part)
        if m is None:
            why = "expected seeds like 1-200, 7 or 1,5,9-12"
            raise ConfigError("--seeds", text[:40], why)
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise ConfigError("--seeds", text[:40], f"the range {first}-{last} runs backwards")
        if last > MAX_SEED:
            raise ConfigError("--seeds", text[:40], f"a seed is at most {MAX_SEED}")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ConfigError("--seeds", text[:40], f"at most {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    return tuple(dict.fromkeys(seeds))


def plan_sweep(
    cell_path: str,
    *,
    seeds: str,
    sets: list[str],
    duration_s: float,
    out: Path,
    scenario: str | None = None,
    chaos_rate: float = 0.0,
    processes: bool = False,
    guard_s: float = 10.0,
    command: str = "",
    fidelity: str = "physics",
) -> Plan:
    """Check everything a sweep takes (cell, ``--set``, seeds, faults, output) and plan its jobs."""
    out = out.absolute()  # the workers' working directory need not be this one
    seed_list = parse_seeds(seeds)
    variants = make_variants(cell_path, sets)
    calibration = ""
    if fidelity == "events":
        from cells.calibrate import load_calibration, with_fidelity

        with_fidelity(variants[0].cell, cell_path, fidelity)  # missing, stale or bad: one line
        calibration = json.dumps(load_calibration(cell_path), sort_keys=True)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError("--out", str(out), "exists already; a sweep is never overwritten")
    jobs = []
    for v in variants:
        for seed in seed_list:
            faults: RunFaults = plan_faults(
                v.cell,
                scenario=scenario,
                chaos_rate=chaos_rate,
                duration_s=duration_s,
                seed=seed,
                killable=True,  # as processes, or stepped in the worker's process
            )
            note = (
                f"lightsout run {cell_path} --seed {seed} --duration {duration_s:g}"
                + (" --processes" if processes else "")
                + (f" --chaos {chaos_rate:g}" if chaos_rate else "")
            )
            run = out / "runs" / f"{v.id}-seed{seed}"
            jobs.append(
                Job(
                    v.id,
                    v.label,
                    v.text,
                    seed,
                    duration_s,
                    faults.faults,
                    faults.chaos,
                    processes,
                    guard_s,
                    str(run),
                    note + (" --fidelity events" if calibration else ""),
                    calibration,
                )
            )
    return Plan(cell_path, tuple(variants), seed_list, tuple(jobs), out, command)


def run_job(job: Job) -> dict[str, Any]:
    """One run, as ``lightsout run`` makes it, on a worker; its row of ``sweep.csv``."""
    from cells.audit import audit_run
    from cells.launch import RunOptions, run_cell
    from cells.schema import load_cell

    out = Path(job.out)
    done = out / "row.json"
    if done.exists():
        row: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        return row
    redone = out.exists()
    if redone:
        log.warning("%s: a run left half-written (its worker died); running it again", out)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "cell.toml").write_text(job.cell_text, encoding="utf-8")
    cell = load_cell(out / "cell.toml")
    if job.calibration:
        from cells.calibrate import with_calibration_file

        (out / "calibration.json").write_text(job.calibration, encoding="utf-8")
        cell = with_calibration_file(cell, out / "calibration.json")
    if job.chaos:
        write_chaos(out, RunFaults(job.faults, job.chaos), job.note)
    opts = RunOptions(
        seed=job.seed,
        duration_s=job.duration_s,
        processes=job.processes,
        faults=job.faults,
        guard_s=job.guard_s,
    )
    start = time.perf_counter()
    kpis = run_cell(cell, out, opts)
    audit = ""
    if job.chaos:
        audit = "ok" if all(c.ok for c in audit_run(out)) else "failed"
    row = kpi_row(job, kpis)
    row.update(
        audit=audit,
        redone=redone,
        wall_s=round(time.perf_counter() - start, 3),
        run=str(out),
        worker=socket.gethostname(),
    )
    tmp = out / "row.json.tmp"
    tmp.write_text(json.dumps(row, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, done)
    return row


def kpi_row(job: Job, kpis: dict[str, Any]) -> dict[str, Any]:
    """The main KPIs of a run's ``kpis.json``, flat (``None`` where the run had none)."""
    robots: dict[str, Any] = kpis.get("robots", {})
    utils = {f"utilisation_{name}": r.get("utilisation") for name, r in sorted(robots.items())}
    known = [u for u in utils.values() if u is not None]
    return {
        "variant": job.variant,
        "label": job.label,
        "seed": job.seed,
        "status": "ok",
        "units": kpis.get("units_completed"),
        "throughput_per_hour": kpis.get("throughput_per_hour"),
        "cycle_time_s": (kpis.get("cycle_time_s") or {}).get("mean"),
        "oee": (kpis.get("oee") or {}).get("oee"),
        "availability": kpis.get("availability"),
        "utilisation": round(sum(known) / len(known), 4) if known else None,
        "scrapped": kpis.get("units_scrapped"),
        "failures": kpis.get("failures"),
        "faults": len(kpis.get("faults", ())),
        "ledger_balanced": kpis.get("ledger_balanced"),
        "exit_reason": kpis.get("sim", {}).get("exit_reason", ""),
        "error": "",
        **utils,
    }


def failed_row(job: Job, error: str) -> dict[str, Any]:
    """The row of a run that raised (or whose task the cluster gave up on)."""
    return {
        "variant": job.variant,
        "label": job.label,
        "seed": job.seed,
        "status": "failed",
        "run": job.out,
        "error": error.splitlines()[0][:300] if error else "failed",
    }


@contextlib.contextmanager
def cluster(address: str | None, *, workers: int) -> Iterator[Any]:
    """A Dask client: of a ``LocalCluster`` of ``workers`` processes, or of the scheduler at
    ``address`` (which must answer within ``CONNECT_S``, else one clear error)."""
    from distributed import Client

    # the scheduler runs in this process; its INFO lines are noise unless -v asked for them
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    logging.getLogger("distributed").setLevel(logging.WARNING if quiet else logging.INFO)
    if address is not None:
        try:
            client = Client(address, timeout=f"{CONNECT_S}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            why = f"no Dask scheduler answered within {CONNECT_S:g} s ({str(exc).splitlines()[0][:120]})"
            raise ConfigError("--cluster", address[:120], why) from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKERS_S)
            except TimeoutError:
                why = f"the scheduler has had no worker for {WORKERS_S:g} s (start `dask worker`)"
                raise ConfigError("--cluster", address[:120], why) from None
            yield client
        return
    local = local_cluster(workers)
    try:
        with Client(local, set_as_default=False) as client:
            yield client
    finally:
        local.close()


def local_cluster(workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` processes of one thread each (a run is one core's work).

    No dashboard (it needs bokeh) and its scheduler's HTTP port is any free one,
    so two sweeps on one machine never contend for 8787.
    """
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )


Progress = Callable[[dict[str, Any]], None]
"""Called with each run's row as it comes back (done and failed alike)."""


def run_sweep(plan: Plan, client: Any, *, on_row: Progress | None = None) -> list[dict[str, Any]]:
    """Submit every job, gather their rows as they finish; a run that raised is a failed row.

    A worker that dies takes its running and held tasks with it; the scheduler
    runs them again elsewhere (``distributed``'s ``allowed-failures``: a task
    that kills three workers is given up, and is a failed row here).
    """
    from distributed import as_completed

    futures = {}
    for job in plan.jobs:
        fut = client.submit(run_job, job, key=job.key, pure=False)
        futures[fut.key] = (fut, job)
    rows: dict[str, dict[str, Any]] = {}
    try:
        for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
            job = futures[fut.key][1]
            if fut.status == "finished":
                row = fut.result()
            else:
                exc = fut.exception()
                if not isinstance(exc, LightsoutError):
                    log.warning("%s failed: %r", job.key, exc)
                row = failed_row(job, f"{type(exc).__name__}: {exc}")
            rows[job.key] = row
            fut.release()
            if on_row is not None:
                on_row(row)
    finally:
        for fut, _ in futures.values():
            if not fut.done():
                fut.cancel()
    return [rows[job.key] for job in plan.jobs if job.key in rows]
