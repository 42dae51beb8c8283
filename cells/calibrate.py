"""Calibration: what physics runs say an operation takes and where a dropped part lands.

A discrete-event model of a cell replaces motions by durations and falls by
outcomes, so both must come from the physics they stand in for. ``measure``
reads finished runs' event logs (``events.jsonl``) and gathers, for every
(robot, operation, stations) the cell did, the sim seconds from
``op_started`` to ``op_done`` (and, for a move, to the grasp and to the
release), and for every dropped part where it came to rest relative to its
operation and what became of it. ``write_calibration`` puts that beside the
cell file (``cells/assembly.toml`` -> ``cells/assembly.calib.json``), naming
the SHA-256 of the cell file it was measured on; ``load_calibration`` refuses
one that is missing, of another format or version, or stale (the cell file
changed since), with one line that says how to make it again.
``docs/calibration.md`` documents the format.

Only operations done at the first try are timed: a failed attempt (a drop,
a fault) is not an operation's duration, and a recovery (picking a dropped
part up where it lies) is timed under its own source, ``recovery:WHERE``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bus.cellspec import Calibration, CellSpec, OperationSpec, OpTiming, RecipeSpec, start_key
from bus.enums import FaultKind
from bus.errors import ConfigError
from bus.eventkinds import EventKind as K
from cells.faults import ScheduledFault

FORMAT = "lightsout-calibration"
VERSION = 1
"""Bumped whenever a key changes meaning; ``load_calibration`` refuses any other."""
MAX_SAMPLES = 2000
"""The most samples kept per distribution (an even subsample of the sorted samples beyond)."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
NS = 1_000_000_000
FATES = {
    K.OP_RECOVERY: "recovered",
    K.OP_SETTLED: "settled in place",
    K.PART_SCRAPPED: "scrapped",
    K.UNIT_SCRAPPED: "scrapped",
    K.AUCTION: "picked again where it fell",
    K.OP_DONE: "done",
}
"""What became of a dropped part: the first of these events about it or its operation."""
_ENDED = (K.OP_FAILED, K.OP_REQUEUED, K.OP_SETTLED, K.OP_REFUSED)
"""Events that end an attempt at an operation without it being done."""
DROP_WARM_UP_S = 5.0
"""No calibration drop before this (the robots are still starting)."""


def calibration_path(cell_path: str | Path) -> Path:
    """Where the calibration of a cell file lives: beside it, ``NAME.calib.json``."""
    p = Path(cell_path)
    return p.with_name(p.name.removesuffix(".toml") + ".calib.json")


def cell_sha256(cell_path: str | Path) -> str:
    """The SHA-256 of the cell file's bytes (a calibration names the file it was made on)."""
    try:
        return hashlib.sha256(Path(cell_path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(str(cell_path), "", f"cannot read: {exc.strerror or exc}") from None


def drop_scenario(
    cell: CellSpec, rate: float, duration_s: float, seed: int
) -> tuple[ScheduledFault, ...]:
    """Gripper drops at random times (``rate`` per sim second), on robots drawn at random.

    A drop armed on a robot holding nothing lets go of the next part it
    carries (``docs/faults.md``), so every one of them is a drop somewhere in
    the cell's work; the draw is the seed's, so the runs are reproducible.
    """
    if rate <= 0:
        return ()
    rng = random.Random(f"calibrate/{cell.name}/{seed}")
    robots = sorted(r.name for r in cell.robots)
    out = []
    t = DROP_WARM_UP_S
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            break
        out.append(ScheduledFault(round(t, 3), rng.choice(robots), FaultKind.GRIPPER_DROP))
    return tuple(out)


def distribution(samples: Iterable[float]) -> dict[str, Any]:
    """Count, mean, sd, min, quantiles, max and the (sorted) samples to draw from."""
    xs = sorted(round(x, 6) for x in samples)  # sim ticks of 1/24 s; a microsecond is plenty
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    kept = xs if n <= MAX_SAMPLES else [xs[i * n // MAX_SAMPLES] for i in range(MAX_SAMPLES)]
    out: dict[str, Any] = {"count": n, "mean": round(mean, 6), "sd": round(sd, 6), "min": xs[0]}
    for q in QUANTILES:
        out[f"p{round(q * 100):02d}"] = round(_quantile(xs, q), 6)
    out["max"] = xs[-1]
    out["samples"] = kept
    return out


def _quantile(xs: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``xs``, linear between order statistics."""
    pos = q * (len(xs) - 1)
    i = int(pos)
    return xs[i] if i + 1 >= len(xs) else xs[i] + (xs[i + 1] - xs[i]) * (pos - i)


class _Log:
    """One run's event log, read in order: operations timed, drops followed to their end."""

    def __init__(self, cell: CellSpec) -> None:
        self.recipes: dict[str, RecipeSpec] = {r.base: r for r in (cell.recipe, *cell.others)}
        self.kinds: dict[str, str] = {}
        self.unit_fixture: dict[str, str] = {}
        self.station: dict[str, str] = {}
        """Where each part last rested at a station (``F1``, ``S1``...)."""
        self.open: dict[str, dict[str, Any]] = {}
        """Operations started and not yet done, by op id."""
        self.recovering: dict[str, str] = {}
        self.durations: dict[tuple[str, str, str, str, str], dict[str, list[float]]] = {}
        self.bids: dict[tuple[str, str, str, str, str], dict[str, list[float]]] = {}
        """What idle robots promised in their bids, by the same keys (and by start)."""
        self.drops: list[dict[str, Any]] = []
        self.pending: dict[str, dict[str, Any]] = {}
        """Dropped parts not yet come to rest, by part id."""
        self.following: dict[str, dict[str, Any]] = {}
        """Dropped parts at rest whose fate is still to come, by part id."""
        self.tick_s = cell.tick_ns / NS
        self.ended_at: dict[str, str] = {}
        """Where each robot's last operation left its arm (a station; ``home`` after a reset):
        an operation's time depends on where the arm starts."""
        self.ended_step: dict[str, str] = {}
        """The same, finer: the step that left it there (``start_key``): the arm leaves a
        fixture in another pose after fastening than after placing a part, and an IK plan
        from one is a second or two longer than from the other."""

    def step(self, op_id: str) -> tuple[str, OperationSpec | None]:
        unit, _, name = op_id.partition("/")
        recipe = self.recipes.get(self.kinds.get(unit, ""))
        for r in (recipe,) if recipe is not None else self.recipes.values():
            for o in r.ops:
                if o.name == name:
                    return unit, o
        return unit, None

    def stations(self, unit: str, op: OperationSpec) -> tuple[str, str]:
        def resolve(name: str) -> str:
            if name == "fixture":
                return self.unit_fixture.get(unit, name)
            if name == "unit":
                return self.station.get(unit, self.unit_fixture.get(unit, name))
            return name

        if op.src or op.dst:
            return resolve(op.src), resolve(op.dst)
        return resolve(op.at), ""

    def feed(self, e: dict[str, Any]) -> None:
        kind, t = e["kind"], e["t_ns"] / NS
        if kind == K.PART_CREATED:
            self.kinds[e["part"]] = e["part_kind"]
        elif kind == K.UNIT_STARTED:
            self.unit_fixture[e["unit"]] = e["fixture"]
            self.station[e["unit"]] = e["fixture"]
        elif kind == K.OP_RECOVERY:
            self.recovering[e["op"]] = str(e.get("at", "floor"))
        elif kind == K.OP_STARTED:
            unit, spec = self.step(e["op"])
            if spec is not None:
                src, dst = self.stations(unit, spec)
                if e["op"] in self.recovering:
                    src = f"recovery:{self.recovering.pop(e['op'])}"
                self.open[e["op"]] = {
                    "robot": e["robot"],
                    "t": t,
                    "op": spec,
                    "src": src,
                    "dst": dst,
                    "unit": unit,
                    "from": self.ended_at.get(e["robot"], "home"),
                    "from_step": self.ended_step.get(e["robot"], ""),
                }
                self.ended_at[e["robot"]] = dst or src
                self.ended_step[e["robot"]] = start_key(spec.name, dst or src)
        elif kind == K.OP_AWARDED:
            self._bids(e, t)
        elif kind == K.ROBOT_STATE and e.get("dst") == "Resetting":
            self.ended_at[str(e.get("robot", ""))] = "home"
            self.ended_step.pop(str(e.get("robot", "")), None)
        elif kind == K.OP_DONE:
            run = self.open.pop(e["op"], None)
            if run is not None and run["robot"] == e["robot"]:
                op: OperationSpec = run["op"]
                key = (run["robot"], op.name, op.skill.value, run["src"], run["dst"])
                got = self.durations.setdefault(key, {"duration_s": []})
                got["duration_s"].append(t - run["t"])
                for start in (run["from"], run["from_step"]):
                    if start:
                        got.setdefault(f"from:{start}", []).append(t - run["t"])
                for phase in ("grasp_s", "release_s"):
                    if phase in run:
                        got.setdefault(phase, []).append(run[phase])
        elif kind in _ENDED:
            run = self.open.pop(e["op"], None)
            detail = str(e.get("detail", ""))
            if kind == K.OP_FAILED and run is not None and detail.startswith("dropped "):
                part = detail.split()[1].rstrip(":")
                self.pending[part] = {**run, "part": part, "t_drop": t}
        elif kind == K.PART_MOVED:
            self._moved(e, t)
        if kind in FATES:
            self._fate(e)

    def _bids(self, e: dict[str, Any], t: float) -> None:
        """What each idle bidder promised for the operation awarded at ``t``: its estimate is
        its finish time less the tick it bid at (the one before the award)."""
        unit, spec = self.step(e["op"])
        if spec is None:
            return
        src, dst = self.stations(unit, spec)
        if e["op"] in self.recovering:
            src = f"recovery:{self.recovering[e['op']]}"
        busy = {run["robot"] for run in self.open.values()}
        for robot, finish in e.get("bids", ()):
            if not isinstance(finish, int) or finish < 0 or robot in busy:
                continue
            est = finish / NS - (t - self.tick_s)
            if 0 < est <= MAX_DURATION_S:
                key = (robot, spec.name, spec.skill.value, src, dst)
                got = self.bids.setdefault(key, {})
                got.setdefault("bid_s", []).append(est)
                for start in (self.ended_at.get(robot, "home"), self.ended_step.get(robot, "")):
                    if start:
                        got.setdefault(f"from:{start}", []).append(est)

    def _moved(self, e: dict[str, Any], t: float) -> None:
        part, src, dst = e["part"], str(e.get("src", "")), str(e.get("dst", ""))
        prefix, _, name = dst.partition(":")
        if prefix in ("fixture", "stand", "mount"):
            self.station[part] = name
        for run in self.open.values():
            if dst == f"gripper:{run['robot']}" and "grasp_s" not in run:
                run["grasp_s"] = t - run["t"]
            elif src == f"gripper:{run['robot']}" and "release_s" not in run:
                run["release_s"] = t - run["t"]
        drop = self.pending.pop(part, None)
        if drop is not None and src.startswith("gripper:"):
            op: OperationSpec = drop["op"]
            if name and name == drop["src"]:
                landed = "source"
            elif name and (
                name == drop["dst"] or (dst == f"unit:{drop['unit']}" and op.dst == "unit")
            ):
                landed = "destination"
            else:
                landed = prefix or dst
            rec = {"op": op.name, "skill": op.skill.value, "part_kind": self.kinds.get(part, "")}
            rec.update(landed=landed, location=dst, fate="")
            self.drops.append(rec)
            self.following[part] = {"rec": rec, "op_id": f"{drop['unit']}/{op.name}"}

    def _fate(self, e: dict[str, Any]) -> None:
        for part, f in list(self.following.items()):
            mine = e.get("op") == f["op_id"] or part in (e.get("part"), e.get("unit"))
            if not mine and part not in e.get("parts", ()):
                continue
            f["rec"]["fate"] = FATES[e["kind"]]
            del self.following[part]


def measure(runs: Iterable[Path], cell: CellSpec) -> dict[str, Any]:
    """The operations' duration distributions and the drops' outcome shares over ``runs``."""
    durations: dict[tuple[str, str, str, str, str], dict[str, list[float]]] = {}
    bids: dict[tuple[str, str, str, str, str], dict[str, list[float]]] = {}
    drops: list[dict[str, Any]] = []
    for run in runs:
        log = _Log(cell)
        with (run / "events.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                log.feed(json.loads(line))
        for key, got in log.durations.items():
            mine = durations.setdefault(key, {})
            for phase, xs in got.items():
                mine.setdefault(phase, []).extend(xs)
        for key, got in log.bids.items():
            theirs = bids.setdefault(key, {})
            for phase, xs in got.items():
                theirs.setdefault(phase, []).extend(xs)
        drops.extend(log.drops)
    ops = []
    for (robot, op, skill, src, dst), got in sorted(durations.items()):
        entry: dict[str, Any] = {
            "robot": robot,
            "op": op,
            "skill": skill,
            "src": src,
            "dst": dst,
            "stations": f"{src}->{dst}" if dst else src,
        }
        for phase in ("duration_s", "grasp_s", "release_s"):
            if got.get(phase):
                entry[phase] = distribution(got[phase])
        starts = {k[5:]: v for k, v in sorted(got.items()) if k.startswith("from:")}
        if starts:
            entry["by_start"] = {k: distribution(v) for k, v in starts.items()}
        bid = bids.get((robot, op, skill, src, dst), {})
        if bid.get("bid_s"):
            entry["bid_s"] = distribution(bid["bid_s"])
            entry["bid_by_start"] = {
                k[5:]: distribution(v) for k, v in sorted(bid.items()) if k.startswith("from:")
            }
        ops.append(entry)
    return {"operations": ops, "drops": drop_shares(drops)}


def drop_shares(drops: list[dict[str, Any]]) -> dict[str, Any]:
    """Where dropped parts came to rest and what became of them, as shares, overall and per op."""

    def shares(items: list[dict[str, Any]], field: str) -> dict[str, float]:
        counts: dict[str, int] = {}
        for d in items:
            key = d[field] or "unknown"
            counts[key] = counts.get(key, 0) + 1
        return {k: round(v / len(items), 6) for k, v in sorted(counts.items())}

    by_op: dict[str, list[dict[str, Any]]] = {}
    for d in drops:
        by_op.setdefault(d["op"], []).append(d)
    out: dict[str, Any] = {"count": len(drops)}
    if drops:
        out["landed"] = shares(drops, "landed")
        out["fate"] = shares(drops, "fate")
    out["by_op"] = {
        op: {"count": len(ds), "landed": shares(ds, "landed"), "fate": shares(ds, "fate")}
        for op, ds in sorted(by_op.items())
    }
    return out


def write_calibration(
    cell_path: str | Path, cell: CellSpec, measured: dict[str, Any], made: dict[str, Any]
) -> Path:
    """The calibration file beside the cell file (written whole, then moved into place)."""
    path = calibration_path(cell_path)
    data = {
        "format": FORMAT,
        "version": VERSION,
        "cell": cell.name,
        "cell_file": Path(cell_path).name,
        "cell_sha256": cell_sha256(cell_path),
        "made": made,
        **measured,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_calibration(cell_path: str | Path) -> dict[str, Any]:
    """The calibration of the cell file at ``cell_path``, or one clear error (``ConfigError``)
    if it is missing, unreadable, of another format or version, or stale."""
    path = calibration_path(cell_path)
    again = f"make it with: lightsout calibrate {cell_path}"
    if not path.exists():
        raise ConfigError(str(path), "", f"no calibration for {cell_path}; {again}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "", f"not a calibration ({exc}); {again}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(str(path), "format", f"not a {FORMAT} file; {again}")
    if data.get("version") != VERSION:
        why = f"version {data.get('version')!r}, this lightsout reads version {VERSION}; {again}"
        raise ConfigError(str(path), "version", why)
    if data.get("cell_sha256") != cell_sha256(cell_path):
        why = f"stale: {cell_path} changed since it was calibrated (its SHA-256 differs); {again}"
        raise ConfigError(str(path), "cell_sha256", why)
    return data


MAX_DURATION_S = 3600.0
"""The longest operation a calibration may time (sim seconds): past it, the file is wrong."""
FIDELITIES = ("physics", "events")
"""The world models a cell runs over (``--fidelity``)."""


def with_fidelity(
    cell: CellSpec, cell_path: str | Path, fidelity: str, *, borrowed: str | Path | None = None
) -> CellSpec:
    """``cell`` at ``fidelity``: at events fidelity with its calibration read and checked
    (``ConfigError`` in one line if it is missing, stale or holds a bad entry).

    ``borrowed``: the calibration file of another cell whose steps are named the same (a
    generated cell of many islands, ``cells.islands``), checked against its own cell file.
    """
    if fidelity not in FIDELITIES:
        raise ConfigError("--fidelity", fidelity, f"not one of {', '.join(FIDELITIES)}")
    if fidelity == "physics":
        if borrowed is not None:
            raise ConfigError("--calibration", str(borrowed), "only with --fidelity events")
        return dataclasses.replace(cell, fidelity="physics", calibration=None)
    if cell.mounts:
        why = "a cell that builds robots has no events fidelity yet (commissioning needs physics)"
        raise ConfigError(cell.source, "mounts", why)
    if borrowed is not None:
        data = _read_calibration(Path(borrowed))
        own = Path(borrowed).with_name(str(data.get("cell_file", "")))
        if own.is_file() and own.suffix == ".toml" and data.get("cell_sha256") != cell_sha256(own):
            why = f"stale: {own} changed since it was calibrated; lightsout calibrate {own}"
            raise ConfigError(str(borrowed), "cell_sha256", why)
        calibration = calibration_of(data, cell, str(borrowed), speeds=_measured_speeds(own))
        return dataclasses.replace(cell, fidelity="events", calibration=calibration)
    data = load_calibration(cell_path)
    path = str(calibration_path(cell_path))
    return dataclasses.replace(
        cell, fidelity="events", calibration=calibration_of(data, cell, path)
    )


def with_calibration_file(cell: CellSpec, path: str | Path) -> CellSpec:
    """``cell`` at events fidelity with the calibration file at ``path`` (a participant process
    whose launcher already checked that file against the cell file)."""
    data = _read_calibration(Path(path))
    own = Path(path).with_name(str(data.get("cell_file", "")))
    calibration = calibration_of(data, cell, str(path), speeds=_measured_speeds(own))
    return dataclasses.replace(cell, fidelity="events", calibration=calibration)


def _read_calibration(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "", f"not a calibration ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ConfigError(str(path), "format", f"not a {FORMAT} file of version {VERSION}")
    return data


def _measured_speeds(cell_file: Path) -> dict[str, float] | None:
    """Each robot's speed in the cell file a calibration was measured on (beside it), so that
    a borrowing cell whose robots run at other speeds stretches the measured moves by the
    ratio; None where that file is not there (the cell's own speeds are taken)."""
    if not (cell_file.is_file() and cell_file.suffix == ".toml"):
        return None
    from cells.schema import load_cell

    return {r.name: r.speed for r in load_cell(cell_file).robots}


def calibration_of(
    data: dict[str, Any], cell: CellSpec, path: str, *, speeds: dict[str, float] | None = None
) -> Calibration:
    """The calibration file's contents as the world and the agents use them, every entry
    checked: names the cell knows, finite positive durations in bounds, shares in [0, 1].

    ``speeds``: robot -> its speed when measured (a borrowed calibration's own cell file);
    by default ``cell``'s own robots' speeds."""
    robots = {r.name: r for r in cell.robots}
    measured = speeds or {}
    timings = []
    ops = data.get("operations")
    if not isinstance(ops, list):
        raise ConfigError(path, "operations", "must be a list")
    for i, entry in enumerate(ops):
        key = f"operations[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, key, "must be an object")
        names = [entry.get(k) for k in ("robot", "op", "skill", "src", "dst")]
        if not all(isinstance(n, str) and len(n) <= 128 for n in names):
            raise ConfigError(path, key, "robot, op, skill, src and dst must be short strings")
        robot, op, skill, src, dst = (str(n) for n in names)
        if robot not in robots:
            continue  # a built robot, or one the cell no longer has: not used here
        samples = _seconds(path, f"{key}.duration_s", entry.get("duration_s"), samples=True)
        grasp = _seconds(path, f"{key}.grasp_s", entry.get("grasp_s"), required=False)
        release = _seconds(path, f"{key}.release_s", entry.get("release_s"), required=False)
        starts = entry.get("by_start", {})
        if not isinstance(starts, dict) or len(starts) > 64:
            raise ConfigError(path, f"{key}.by_start", "must be an object of at most 64 starts")
        by_start = tuple(
            (str(k), tuple(sorted(_seconds(path, f"{key}.by_start.{k}", v, samples=True))))
            for k, v in sorted(starts.items())
        )
        bid = _seconds(path, f"{key}.bid_s", entry.get("bid_s"), required=False)
        bid_starts = entry.get("bid_by_start", {})
        if not isinstance(bid_starts, dict) or len(bid_starts) > 64:
            raise ConfigError(path, f"{key}.bid_by_start", "must be an object of at most 64 starts")
        bids = tuple(
            (str(k), tuple(sorted(_seconds(path, f"{key}.bid_by_start.{k}", v, samples=True))))
            for k, v in sorted(bid_starts.items())
        )
        timings.append(
            OpTiming(
                robot,
                op,
                skill,
                src,
                dst,
                tuple(sorted(samples)),
                grasp[0] if grasp else 0.0,
                release[0] if release else 0.0,
                measured.get(robot, robots[robot].speed),
                by_start,
                bid[0] if bid else 0.0,
                bids,
            )
        )
    drops = data.get("drops", {})
    if not isinstance(drops, dict):
        raise ConfigError(path, "drops", "must be an object")
    landed = [("", _shares(path, "drops.landed", drops.get("landed", {})))]
    fates = [("", _shares(path, "drops.fate", drops.get("fate", {})))]
    by_op = drops.get("by_op", {})
    if not isinstance(by_op, dict):
        raise ConfigError(path, "drops.by_op", "must be an object")
    for op, got in sorted(by_op.items()):
        if not isinstance(got, dict):
            raise ConfigError(path, f"drops.by_op.{op}", "must be an object")
        landed.append((str(op), _shares(path, f"drops.by_op.{op}.landed", got.get("landed", {}))))
        fates.append((str(op), _shares(path, f"drops.by_op.{op}.fate", got.get("fate", {}))))
    return Calibration(tuple(timings), tuple(landed), tuple(fates), path)


def _seconds(
    path: str, key: str, dist: object, *, samples: bool = False, required: bool = True
) -> tuple[float, ...]:
    """A distribution's samples (or its mean alone), each finite, > 0 and at most an hour."""
    if dist is None and not required:
        return ()
    if not isinstance(dist, dict):
        raise ConfigError(path, key, "must be a distribution object")
    raw = dist.get("samples") if samples else [dist.get("mean")]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SAMPLES:
        raise ConfigError(path, key, f"needs 1 to {MAX_SAMPLES} samples")
    out = []
    for x in raw:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ConfigError(path, key, f"{x!r} is not a finite number of seconds")
        if not 0 < x <= MAX_DURATION_S:
            raise ConfigError(path, key, f"{x!r} s is not within (0, {MAX_DURATION_S:g}]")
        out.append(float(x))
    return tuple(out)


def _shares(path: str, key: str, table: object) -> tuple[tuple[str, float], ...]:
    if not isinstance(table, dict):
        raise ConfigError(path, key, "must be an object of shares")
    out = []
    for name, share in sorted(table.items()):
        ok = isinstance(share, int | float) and not isinstance(share, bool)
        if not ok or not math.isfinite(share) or not 0.0 <= share <= 1.0:
            raise ConfigError(path, f"{key}.{name}", f"{share!r} is not a share in [0, 1]")
        out.append((str(name), float(share)))
    return tuple(out)
