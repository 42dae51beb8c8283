"""Cell files: TOML in, a validated ``CellSpec`` out, or one clear error.

Every key is checked for presence, type and meaning; the error names the file,
the dotted key and the reason (``cells/x.toml: robots[2].model: 'ur5' is not
one of iiwa, panda``). ``docs/cell-file.md`` documents every key.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from bus.cellspec import (
    CellSpec,
    ConveyorSpec,
    FeederSpec,
    FixtureSpec,
    MountSpec,
    PartKind,
    RobotModel,
    RobotSpec,
    StationKind,
)
from bus.enums import Skill
from bus.errors import ConfigError
from bus.security import SAFE_NAME, SAFE_NAME_RULE
from cells.optimize_table import parse_optimize
from cells.recipes import PLACEHOLDERS, check_recipes, parse_recipes
from cells.tables import (
    _array,
    _bool,
    _enum,
    _int,
    _nonneg,
    _pos,
    _pose,
    _str,
    _strs,
    _Table,
    _tables,
    _vec,
)
from supervisor.allocation import POLICIES

MAX_START_S = 7 * 24 * 3600.0
"""A feeder's first part may wait at most a week of sim time."""
SHAPES = ("box", "cylinder")
"""The shapes a part kind may have."""
MAX_PHYSICS_HZ = 2400
"""Physics steps per sim second, at most (the default is 240): more only ever hangs a run."""
MAX_CONTROL_HZ = 240
"""Control ticks per sim second, at most (the default is 24)."""
MAX_HEARTBEAT_S = 3600.0
"""The longest heartbeat interval."""
MAX_STEP_S = 60.0
"""The longest jump of the event clock a cell file may ask for."""
MAX_MAINTENANCE_S = 7 * 24 * 3600.0
"""The longest maintenance a cell file may ask for (a week of sim time)."""
SYNCS = ("event", "tick")
"""The clock's modes (``[cell] sync``)."""


def load_cell(path: str | Path) -> CellSpec:
    """Read and validate a cell file."""
    _text, data = read_cell_file(path)
    return parse_cell(data, source=str(path))


def read_cell_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A cell file's text and its TOML, not yet validated (``cells.variants`` edits it first)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None


def parse_cell(data: dict[str, Any], *, source: str = "<cell>") -> CellSpec:
    """Validate an already-parsed cell file."""
    top = _Table(source, "", data)
    head = top.sub("cell")
    name = head.get("name", _str)
    physics_hz = head.get("physics_hz", _int, 240)
    control_hz = head.get("control_hz", _int, 24)
    heartbeat_s = head.get("heartbeat_s", _pos, 1.0)
    policy = head.get("policy", _str, "contract_net")
    if policy not in POLICIES:
        raise head.fail("policy", f"{policy!r} is not one of {', '.join(sorted(POLICIES))}")
    sync = head.get("sync", _str, "event")
    if sync not in SYNCS:
        raise head.fail("sync", f"{sync!r} is not one of {', '.join(SYNCS)}")
    max_step_s = head.get("max_step_s", _pos, 0.5)
    maintenance_s = head.get("maintenance_s", _pos, 120.0)
    maintain = head.get("maintain", _bool, True)
    for key, value, most in (
        ("physics_hz", physics_hz, MAX_PHYSICS_HZ),
        ("control_hz", control_hz, MAX_CONTROL_HZ),
        ("heartbeat_s", heartbeat_s, MAX_HEARTBEAT_S),
        ("max_step_s", max_step_s, MAX_STEP_S),
        ("maintenance_s", maintenance_s, MAX_MAINTENANCE_S),
    ):
        if value > most:
            raise head.fail(key, f"at most {most:g}, got {value:g}")
    if not SAFE_NAME.match(name):
        raise head.fail("name", f"{name[:80]!r}: {SAFE_NAME_RULE}")
    head.close()
    if physics_hz % control_hz:
        raise ConfigError(source, "cell.control_hz", f"must divide physics_hz ({physics_hz})")

    parts: list[PartKind] = []
    for pname, pt in _tables(top, "parts"):
        size = pt.get("size", _vec(3))
        if min(size) <= 0:
            raise pt.fail("size", "every dimension must be positive")
        mass = pt.get("mass", _pos)
        color: tuple[float, ...] = pt.get("color", _vec(4), (0.6, 0.6, 0.6, 1.0))
        shape = pt.get("shape", _str, "box")
        if shape not in SHAPES:
            raise pt.fail("shape", f"{shape!r} is not one of {', '.join(SHAPES)}")
        if shape == "cylinder" and size[0] != size[1]:
            raise pt.fail("size", "a cylinder's size is [diameter, diameter, height]")
        pt.close()
        parts.append(PartKind(pname, (size[0], size[1], size[2]), mass, _rgba(color), shape))
    part_names = {p.name for p in parts}
    if not parts:
        raise ConfigError(source, "parts", "no part kinds defined")

    robots = _robots(top)
    conveyors = _conveyors(top)
    fixtures = _places(top, "fixtures")
    if not fixtures:
        raise ConfigError(source, "fixtures", "no fixtures defined")
    stands = _places(top, "stands")
    mounts = []
    for mname, mt in _tables(top, "mounts"):
        mounts.append(MountSpec(mname, mt.get("pose", _pose), mt.get("payload", _str, "")))
        mt.close()
    conveyor_names = {c.name for c in conveyors}
    feeders = _feeders(top, part_names, conveyor_names)
    recipes = parse_recipes(top, parts)
    optimize = parse_optimize(top, {r.name for r in robots})
    top.close()

    cell = CellSpec(
        name=name,
        source=source,
        physics_hz=physics_hz,
        control_hz=control_hz,
        heartbeat_s=heartbeat_s,
        robots=tuple(robots),
        parts=tuple(parts),
        conveyors=tuple(conveyors),
        feeders=tuple(feeders),
        fixtures=tuple(fixtures),
        recipe=recipes[0],
        others=tuple(recipes[1:]),
        stands=tuple(stands),
        mounts=tuple(mounts),
        policy=policy,
        sync=sync,
        max_step_s=max_step_s,
        maintenance_s=maintenance_s,
        maintain=maintain,
        optimize=optimize,
    )
    _check_names(cell)
    check_recipes(cell)
    return cell


def _places(top: _Table, name: str) -> list[FixtureSpec]:
    """Fixtures, test stands or mount points: a table of ``[NAME] pose = ...``."""
    out = []
    for fname, ft in _tables(top, name):
        out.append(FixtureSpec(fname, ft.get("pose", _pose)))
        ft.close()
    return out


def _rgba(c: tuple[float, ...]) -> tuple[float, float, float, float]:
    return (c[0], c[1], c[2], c[3])


def _robots(top: _Table) -> list[RobotSpec]:
    robots = []
    for rt in _array(top, "robots"):
        rname = rt.get("name", _str)
        model = rt.get("model", _enum(RobotModel))
        base = rt.get("base", _pose)
        caps = rt.get("capabilities", _strs)
        skills = []
        for i, c in enumerate(caps):
            skills.append(_enum(Skill)(rt, f"capabilities[{i}]", c))
        speed = rt.get("speed", _pos, 1.0)
        rt.close()
        robots.append(RobotSpec(rname, model, base, tuple(skills), speed))
    if not robots:
        raise ConfigError(top.source, "robots", "a cell needs at least one robot")
    return robots


def _conveyors(top: _Table) -> list[ConveyorSpec]:
    out = []
    for cname, ct in _tables(top, "conveyors"):
        role = ct.get("role", _enum(StationKind))
        if role not in (StationKind.INFEED, StationKind.OUTFEED):
            raise ct.fail("role", f"{role.value!r} is not one of infeed, outfeed")
        start = ct.get("start", _vec(2))
        end = ct.get("end", _vec(2))
        if math.dist(start, end) < 0.3:
            raise ct.fail("end", "a conveyor must be at least 0.3 m long")
        height = ct.get("height", _pos)
        width = ct.get("width", _pos, 0.12)
        speed = ct.get("speed", _pos)
        ct.close()
        out.append(
            ConveyorSpec(cname, role, (start[0], start[1]), (end[0], end[1]), height, width, speed)
        )
    return out


def _feeders(top: _Table, parts: set[str], conveyors: set[str]) -> list[FeederSpec]:
    out = []
    for fname, ft in _tables(top, "feeders"):
        part = ft.get("part", _str)
        if part not in parts:
            raise ft.fail("part", f"unknown part kind {part!r} (known: {', '.join(sorted(parts))})")
        conveyor = ft.get("conveyor", _str, "")
        pose = ft.get("pose", _pose, None) if "pose" in ft.data else None
        ft.used.add("pose")
        if bool(conveyor) == (pose is not None):
            raise ft.fail("conveyor", "a feeder needs exactly one of 'conveyor' or 'pose'")
        if conveyor and conveyor not in conveyors:
            raise ft.fail("conveyor", f"unknown conveyor {conveyor!r}")
        interval = ft.get("interval", _pos)
        jitter = ft.get("jitter", _nonneg, 0.0)
        if jitter >= interval:
            raise ft.fail("jitter", "must be smaller than interval")
        limit = ft.get("limit", _int, 4)
        start = ft.get("start", _nonneg, 0.0)
        if start > MAX_START_S:
            raise ft.fail("start", f"at most {MAX_START_S:g} s, got {start:g}")
        ft.close()
        out.append(FeederSpec(fname, part, conveyor, pose, interval, jitter, limit, start))
    return out


def _check_names(cell: CellSpec) -> None:
    seen: dict[str, str] = {}
    for kind, names in (
        ("robot", [r.name for r in cell.robots]),
        ("conveyor", [c.name for c in cell.conveyors]),
        ("feeder", [f.name for f in cell.feeders]),
        ("fixture", [f.name for f in cell.fixtures]),
        ("stand", [f.name for f in cell.stands]),
        ("mount", [f.name for f in cell.mounts]),
    ):
        for n in names:
            if not SAFE_NAME.match(n):
                raise ConfigError(cell.source, f"{kind}s", f"{n[:80]!r}: {SAFE_NAME_RULE}")
            if n in seen or n in PLACEHOLDERS or n == "supervisor":
                why = f"name {n!r} is already used by a {seen.get(n, 'reserved word')}"
                raise ConfigError(cell.source, f"{kind}s", why)
            seen[n] = kind
