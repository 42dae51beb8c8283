"""Cell files: TOML in, a validated ``CellSpec`` out, or one clear error.

Every key is checked for presence, type and meaning; the error names the file,
the dotted key and the reason (``cells/x.toml: robots[2].model: 'ur5' is not
one of iiwa, panda``). ``docs/cell-file.md`` documents every key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bus.cellspec import (
    CellSpec,
    ConveyorSpec,
    FeederSpec,
    FixtureSpec,
    OperationSpec,
    PartKind,
    Pose,
    RecipeSpec,
    RobotModel,
    RobotSpec,
    StationKind,
)
from bus.enums import Skill
from bus.errors import ConfigError

T = TypeVar("T")

PLACEHOLDERS = ("fixture", "unit")
"""Station names an operation may use instead of a real station: ``fixture``
(any free fixture, for the operation that brings the base part in) and
``unit`` (the fixture that holds this unit)."""


class _Table:
    """A TOML table being read: tracks its dotted path and which keys were used."""

    def __init__(self, source: str, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(source, path, f"expected a table, got {_kind(data)}")
        self.source = source
        self.path = path
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), reason)

    def get(self, name: str, conv: Callable[[_Table, str, Any], T], default: T | None = None) -> T:
        self.used.add(name)
        if name not in self.data:
            if default is None:
                raise self.fail(name, "missing (required)")
            return default
        return conv(self, name, self.data[name])

    def sub(self, name: str) -> _Table:
        self.used.add(name)
        if name not in self.data:
            raise self.fail(name, "missing (required)")
        return _Table(self.source, self.key(name), self.data[name])

    def close(self) -> None:
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.fail(extra[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(v),
        "a table" if isinstance(v, dict) else "a list" if isinstance(v, list) else "a value",
    )


def _str(t: _Table, k: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise t.fail(k, f"expected a non-empty string, got {_kind(v)}")
    return v


def _num(t: _Table, k: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise t.fail(k, f"expected a number, got {_kind(v)}")
    return float(v)


def _pos(t: _Table, k: str, v: Any) -> float:
    x = _num(t, k, v)
    if x <= 0:
        raise t.fail(k, f"must be positive, got {x}")
    return x


def _nonneg(t: _Table, k: str, v: Any) -> float:
    x = _num(t, k, v)
    if x < 0:
        raise t.fail(k, f"must not be negative, got {x}")
    return x


def _int(t: _Table, k: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise t.fail(k, f"expected a positive integer, got {v!r}")
    return v


def _vec(n: int, *, at_least: int | None = None) -> Callable[[_Table, str, Any], tuple[float, ...]]:
    lo = n if at_least is None else at_least

    def conv(t: _Table, k: str, v: Any) -> tuple[float, ...]:
        if not isinstance(v, list) or not lo <= len(v) <= n:
            want = f"{n}" if lo == n else f"{lo} to {n}"
            raise t.fail(k, f"expected a list of {want} numbers, got {v!r}")
        return tuple(_num(t, f"{k}[{i}]", x) for i, x in enumerate(v))

    return conv


def _pose(t: _Table, k: str, v: Any) -> Pose:
    xs = _vec(4, at_least=3)(t, k, v)
    return Pose(xs[0], xs[1], xs[2], xs[3] if len(xs) == 4 else 0.0)


def _strs(t: _Table, k: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise t.fail(k, f"expected a list of strings, got {_kind(v)}")
    return tuple(_str(t, f"{k}[{i}]", x) for i, x in enumerate(v))


def _enum(cls: type[Any]) -> Callable[[_Table, str, Any], Any]:
    def conv(t: _Table, k: str, v: Any) -> Any:
        s = _str(t, k, v)
        try:
            return cls(s)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise t.fail(k, f"{s!r} is not one of {known}") from None

    return conv


def _tables(t: _Table, name: str) -> list[tuple[str, _Table]]:
    """A table of named tables (``[fixtures.F1]``): (name, table) in file order."""
    t.used.add(name)
    data = t.data.get(name, {})
    sub = _Table(t.source, t.key(name), data)
    return [(k, _Table(t.source, sub.key(k), v)) for k, v in sub.data.items()]


def _array(t: _Table, name: str) -> list[_Table]:
    """An array of tables (``[[robots]]``)."""
    t.used.add(name)
    data = t.data.get(name)
    if data is None:
        raise t.fail(name, "missing (required)")
    if not isinstance(data, list):
        raise t.fail(name, f"expected an array of tables ([[{name}]]), got {_kind(data)}")
    return [_Table(t.source, f"{t.key(name)}[{i}]", v) for i, v in enumerate(data)]


def load_cell(path: str | Path) -> CellSpec:
    """Read and validate a cell file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    return parse_cell(data, source=source)


def parse_cell(data: dict[str, Any], *, source: str = "<cell>") -> CellSpec:
    """Validate an already-parsed cell file."""
    top = _Table(source, "", data)
    head = top.sub("cell")
    name = head.get("name", _str)
    physics_hz = head.get("physics_hz", _int, 240)
    control_hz = head.get("control_hz", _int, 24)
    heartbeat_s = head.get("heartbeat_s", _pos, 1.0)
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
        pt.close()
        parts.append(PartKind(pname, (size[0], size[1], size[2]), mass, _rgba(color)))
    part_names = {p.name for p in parts}
    if not parts:
        raise ConfigError(source, "parts", "no part kinds defined")

    robots = _robots(top)
    conveyors = _conveyors(top)
    fixtures = []
    for fname, ft in _tables(top, "fixtures"):
        fixtures.append(FixtureSpec(fname, ft.get("pose", _pose)))
        ft.close()
    if not fixtures:
        raise ConfigError(source, "fixtures", "no fixtures defined")
    conveyor_names = {c.name for c in conveyors}
    feeders = _feeders(top, part_names, conveyor_names)
    recipe = _recipe(top, part_names)
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
        recipe=recipe,
    )
    _check_names(cell)
    _check_recipe(cell)
    return cell


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
        ft.close()
        out.append(FeederSpec(fname, part, conveyor, pose, interval, jitter, limit))
    return out


def _recipe(top: _Table, parts: set[str]) -> RecipeSpec:
    rt = top.sub("recipe")
    product = rt.get("product", _str)
    base = rt.get("base", _str)
    if base not in parts:
        raise rt.fail("base", f"unknown part kind {base!r}")
    ops = []
    for ot in _array(rt, "ops"):
        name = ot.get("name", _str)
        skill = ot.get("skill", _enum(Skill))
        part = ot.get("part", _str, base)
        if part not in parts:
            raise ot.fail("part", f"unknown part kind {part!r}")
        if skill is Skill.PICK_PLACE:
            src = ot.get("from", _str)
            dst = ot.get("to", _str)
            at = ""
        else:
            at = ot.get("at", _str, "unit")
            src = dst = ""
        after: tuple[str, ...] = ot.get("after", _strs, ())
        offset: tuple[float, ...] = ot.get("offset", _vec(3), (0.0, 0.0, 0.0))
        ot.close()
        ops.append(
            OperationSpec(name, skill, part, src, dst, at, after, (offset[0], offset[1], offset[2]))
        )
    rt.close()
    if not ops:
        raise ConfigError(top.source, "recipe.ops", "a recipe needs at least one operation")
    return RecipeSpec(product, base, tuple(ops))


def _check_names(cell: CellSpec) -> None:
    seen: dict[str, str] = {}
    for kind, names in (
        ("robot", [r.name for r in cell.robots]),
        ("conveyor", [c.name for c in cell.conveyors]),
        ("feeder", [f.name for f in cell.feeders]),
        ("fixture", [f.name for f in cell.fixtures]),
    ):
        for n in names:
            if n in seen or n in PLACEHOLDERS or n == "supervisor":
                why = f"name {n!r} is already used by a {seen.get(n, 'reserved word')}"
                raise ConfigError(cell.source, f"{kind}s", why)
            seen[n] = kind


def _check_recipe(cell: CellSpec) -> None:
    """References resolve, the graph is acyclic, and every step can be done at every fixture."""
    src = cell.source
    stations = cell.stations()
    names = [op.name for op in cell.recipe.ops]
    for i, op in enumerate(cell.recipe.ops):
        key = f"recipe.ops[{i}]"
        if names.count(op.name) > 1:
            raise ConfigError(src, f"{key}.name", f"operation {op.name!r} is defined twice")
        for dep in op.after:
            if dep not in names:
                raise ConfigError(src, f"{key}.after", f"unknown operation {dep!r}")
        for field, st in (("from", op.src), ("to", op.dst), ("at", op.at)):
            if st and st not in stations and st not in PLACEHOLDERS:
                known = ", ".join(sorted([*stations, *PLACEHOLDERS]))
                raise ConfigError(src, f"{key}.{field}", f"unknown station {st!r} (known: {known})")
        capable = [r for r in cell.robots if op.skill in r.capabilities]
        if not capable:
            raise ConfigError(src, f"{key}.skill", f"no robot has capability {op.skill.value!r}")
        for fx in cell.fixtures:
            places = [st for st in (op.src, op.dst, op.at) if st]
            resolved = [stations[fx.name if st in PLACEHOLDERS else st] for st in places]
            if not any(all(r.reaches(s.pose) for s in resolved) for r in capable):
                where = " and ".join(sorted({s.name for s in resolved}))
                raise ConfigError(
                    src,
                    f"{key}",
                    f"unreachable station: no robot with {op.skill.value!r} reaches {where}",
                )
    # cycles: a topological pass must consume every operation
    done: set[str] = set()
    pending = list(cell.recipe.ops)
    while pending:
        ready = [op for op in pending if set(op.after) <= done]
        if not ready:
            raise ConfigError(
                src, "recipe.ops", f"the 'after' graph has a cycle through {pending[0].name!r}"
            )
        done.update(op.name for op in ready)
        pending = [op for op in pending if op.name not in done]
    _check_flow(cell)


def _check_flow(cell: CellSpec) -> None:
    """The base part must come in from an infeed and the unit leave on an outfeed."""
    stations = cell.stations()
    base = cell.recipe.base
    intake = [op for op in cell.recipe.ops if op.part == base and op.dst == "fixture"]
    if len(intake) != 1:
        why = f"exactly one operation must bring the base part {base!r} to 'fixture'"
        raise ConfigError(cell.source, "recipe.ops", why)
    st = stations.get(intake[0].src)
    if st is None or st.kind is not StationKind.INFEED:
        why = f"{intake[0].name!r} must take the base part from an infeed conveyor"
        raise ConfigError(cell.source, "recipe.ops", why)
    out = [op for op in cell.recipe.ops if op.part == base and op.src == "unit"]
    if len(out) != 1 or stations.get(out[0].dst, st).kind is not StationKind.OUTFEED:
        why = f"exactly one operation must take the unit ('{base}' from 'unit') to an outfeed conveyor"
        raise ConfigError(cell.source, "recipe.ops", why)
