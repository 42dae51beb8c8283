"""Recipes in a cell file: ``[recipe]`` (one product) or ``[[recipes]]`` (several).

A recipe is a graph of operations around a base part. Its output is either a
unit that ships on an outfeed (a phone), or an arm that is put on a free mount
point and commissioned as a robot of the cell (``output = "commission"``).
Parts stacked on an arm (``stack = true``) get their offsets from the parts
stacked before them, so the cell file says the order and the heights follow
from the part sizes; a stack whose order is not fixed cannot be built and
fails here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pybullet_data

from bus.cellspec import (
    MODEL_URDF,
    BuiltRobotSpec,
    CellSpec,
    OperationSpec,
    Output,
    PartKind,
    RecipeSpec,
    RobotModel,
    RobotSpec,
    Station,
    StationKind,
)
from bus.enums import Skill
from bus.errors import ConfigError
from cells.tables import (
    _array,
    _enum,
    _int,
    _nonneg,
    _pos,
    _str,
    _strs,
    _Table,
    _vec,
)

PLACEHOLDERS = ("fixture", "unit", "mount")
"""Station names an operation may use instead of a real station: ``fixture``
(any free fixture, for the operation that brings the base part in), ``unit``
(the fixture that holds this unit) and ``mount`` (the free mount point kept for
this arm, for the operation that mounts it)."""

MAX_TOLERANCE_M = 0.05
"""A test tolerance above this would pass a part lying beside its place."""
MAX_TORQUE_NM = 100.0
"""A screw torque above this (N m) is no screw a cell's arms drive."""
MAX_SCREWS = 64
"""Screws one fastening drives at most."""
DEFAULT_SCREWS = 4
"""Screws a fastening with a ``torque`` drives unless the cell file says."""
MAX_ERROR_RATE = 0.5
"""An inspection wrong more often than this is worse than a coin: refused."""


def parse_recipes(top: _Table, parts: list[PartKind]) -> list[RecipeSpec]:
    """``[recipe]`` or ``[[recipes]]``: exactly one of the two."""
    has_one, has_many = "recipe" in top.data, "recipes" in top.data
    if has_one == has_many:
        raise top.fail("recipe", "a cell needs exactly one of [recipe] or [[recipes]]")
    if has_one:
        return [_recipe(top.sub("recipe"), parts)]
    tables = _array(top, "recipes")
    if not tables:
        raise top.fail("recipes", "no recipes defined")
    return [_recipe(rt, parts) for rt in tables]


def _recipe(rt: _Table, parts: list[PartKind]) -> RecipeSpec:
    kinds = {p.name: p for p in parts}
    product = rt.get("product", _str)
    base = rt.get("base", _str)
    if base not in kinds:
        raise rt.fail("base", f"unknown part kind {base!r}")
    output = rt.get("output", _enum(Output), Output.SHIP)
    fixtures: tuple[str, ...] = rt.get("fixtures", _strs, ())
    tolerance = rt.get("tolerance", _nonneg, 0.0)
    if tolerance > MAX_TOLERANCE_M:
        raise rt.fail("tolerance", f"at most {MAX_TOLERANCE_M} m, got {tolerance}")
    robot = _built_robot(rt.sub("robot")) if "robot" in rt.data else None
    rt.used.add("robot")
    false_accept = _rate(rt, "false_accept")
    false_reject = _rate(rt, "false_reject")
    rework = bool(rt.get("rework", _bool, False))
    overflow = rt.get("overflow", _str, "")
    if overflow and output is not Output.COMMISSION:
        raise rt.fail("overflow", "only a recipe with output = 'commission' has an overflow")
    if output is Output.COMMISSION and robot is None:
        raise rt.fail("robot", "missing (required for output = 'commission')")
    if output is Output.SHIP and robot is not None:
        raise rt.fail("robot", "only a recipe with output = 'commission' builds a robot")
    ops = []
    for ot in _array(rt, "ops"):
        name = ot.get("name", _str)
        skill = ot.get("skill", _enum(Skill))
        part = ot.get("part", _str, base)
        if part not in kinds:
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
        stack = bool(ot.get("stack", _bool, False))
        if stack and (skill is not Skill.PICK_PLACE or dst != "unit" or part == base):
            raise ot.fail("stack", "only a part placed 'to = \"unit\"' can be stacked")
        if stack and offset[2] != 0.0:
            raise ot.fail("offset", "a stacked part's height comes from the stack; give dx, dy, 0")
        checks = _checks(ot, skill, dst, part == base)
        ot.close()
        ops.append(
            OperationSpec(
                name,
                skill,
                part,
                src,
                dst,
                at,
                after,
                (offset[0], offset[1], offset[2]),
                stack,
                **checks,
            )
        )
    rt.close()
    if not ops:
        raise rt.fail("ops", "a recipe needs at least one operation")
    recipe = RecipeSpec(
        product,
        base,
        tuple(ops),
        output,
        fixtures,
        tolerance,
        robot,
        overflow,
        false_accept,
        false_reject,
        rework,
    )
    return _stacked(rt, recipe, kinds)


def _rate(t: _Table, key: str) -> float:
    """An inspection's error rate: a share from 0 to ``MAX_ERROR_RATE``."""
    rate = t.get(key, _nonneg, 0.0)
    if rate > MAX_ERROR_RATE:
        raise t.fail(key, f"a share from 0 to {MAX_ERROR_RATE}, got {rate}")
    return rate


def _checks(ot: _Table, skill: Skill, dst: str, moves_base: bool) -> dict[str, Any]:
    """A step's quality checks: a placement ``tolerance`` (a part put on the unit), a
    fastening's ``torque``, ``min_torque`` and ``screws``; each key only where it means
    something, so a misplaced one is an error, not silently ignored."""
    out: dict[str, Any] = {}
    ot.used.update(("tolerance", "torque", "min_torque", "screws"))  # named as known keys
    if "tolerance" in ot.data:
        if skill is not Skill.PICK_PLACE or dst != "unit" or moves_base:
            raise ot.fail("tolerance", "only a part placed 'to = \"unit\"' has a tolerance")
        out["tolerance"] = tol = ot.get("tolerance", _pos)
        if tol > MAX_TOLERANCE_M:
            raise ot.fail("tolerance", f"at most {MAX_TOLERANCE_M} m, got {tol}")
    fasten = ("torque", "min_torque", "screws")
    for key in fasten:
        if key in ot.data and skill is not Skill.FASTEN:
            raise ot.fail(key, "only a fasten step has one")
    if "torque" not in ot.data:
        for key in fasten[1:]:
            if key in ot.data:
                raise ot.fail(key, "needs the step's torque (the screwdriver's setting)")
        return out
    torque = ot.get("torque", _pos)
    if torque > MAX_TORQUE_NM:
        raise ot.fail("torque", f"at most {MAX_TORQUE_NM:g} N m, got {torque}")
    low = ot.get("min_torque", _nonneg, 0.0)
    if low >= torque:
        raise ot.fail("min_torque", f"must be below the torque ({torque}), got {low}")
    screws = ot.get("screws", _int, DEFAULT_SCREWS)
    if screws > MAX_SCREWS:
        raise ot.fail("screws", f"at most {MAX_SCREWS}, got {screws}")
    out.update(torque=torque, min_torque=low, screws=screws)
    return out


def _bool(t: _Table, k: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise t.fail(k, f"expected true or false, got {v!r}")
    return v


def _built_robot(t: _Table) -> BuiltRobotSpec:
    model = t.get("model", _enum(RobotModel))
    urdf = t.get("urdf", _str, MODEL_URDF[model])
    if ".." in Path(urdf).parts or Path(urdf).is_absolute():
        raise t.fail("urdf", f"{urdf!r}: give a path inside pybullet_data")
    if not (Path(pybullet_data.getDataPath()) / urdf).is_file():
        raise t.fail("urdf", f"{urdf!r} does not exist in pybullet_data")
    if urdf != MODEL_URDF[model]:
        why = f"{urdf!r} is not the {model.value} arm ({MODEL_URDF[model]}): no model of it"
        raise t.fail("urdf", why)
    caps = t.get("capabilities", _strs)
    if not caps:
        raise t.fail("capabilities", "a built robot needs at least one capability")
    skills = tuple(_enum(Skill)(t, f"capabilities[{i}]", c) for i, c in enumerate(caps))
    speed = t.get("speed", _pos, 1.0)
    prefix = t.get("prefix", _str, "B")
    if not prefix.isalpha() or len(prefix) > 8:
        raise t.fail("prefix", f"{prefix!r}: up to 8 letters")
    payload = t.get("payload", _str, "")
    t.close()
    return BuiltRobotSpec(model, urdf, skills, speed, prefix, payload)


def _before(recipe: RecipeSpec) -> dict[str, set[str]]:
    """Every operation's transitive predecessors (the graph may still have a cycle here)."""
    direct = {o.name: set(o.after) for o in recipe.ops}
    out: dict[str, set[str]] = {}
    for name in direct:
        seen: set[str] = set()
        todo = list(direct[name])
        while todo:
            n = todo.pop()
            if n in seen or n not in direct:
                continue
            seen.add(n)
            todo.extend(direct[n])
        out[name] = seen
    return out


def _stacked(rt: _Table, recipe: RecipeSpec, kinds: dict[str, PartKind]) -> RecipeSpec:
    """Give stacked parts their heights and whole-unit moves their grip height.

    Every two stacked parts must be ordered by ``after`` (one on the other),
    or which lies lower is left to chance: such an order cannot be built.
    """
    before = _before(recipe)
    stacked = [o for o in recipe.ops if o.stack]
    for a in stacked:
        for b in stacked:
            if a is not b and a.name not in before[b.name] and b.name not in before[a.name]:
                why = (
                    f"stacked parts {a.name!r} and {b.name!r} are not ordered by 'after': "
                    "which lies lower is left to chance, so the stack cannot be built"
                )
                raise rt.fail("ops", why)
    ops = []
    for o in recipe.ops:
        below = [s for s in stacked if s.name in before[o.name]]
        height = sum(kinds[s.part].size[2] for s in below)
        if o.stack:
            o = dataclasses.replace(o, offset=(o.offset[0], o.offset[1], height))
        elif o.skill is Skill.INSPECT and height:
            o = dataclasses.replace(o, grip_dz=height)  # the camera looks from above the stack
        elif _moves_unit(o, recipe) and height:
            o = dataclasses.replace(o, grip_dz=height)
            late = [s.name for s in stacked if s.name not in before[o.name]]
            if late:
                why = f"{o.name!r} moves the unit before {late[0]!r} is stacked on it"
                raise rt.fail("ops", why)
        ops.append(o)
    return dataclasses.replace(recipe, ops=tuple(ops))


def _moves_unit(op: OperationSpec, recipe: RecipeSpec) -> bool:
    """Whether ``op`` carries the whole unit (its base part) somewhere, not bringing it in."""
    return op.skill is Skill.PICK_PLACE and op.part == recipe.base and op.dst != "fixture"


# ---------------------------------------------------------------- checks


def check_recipes(cell: CellSpec) -> None:
    """References resolve, graphs are acyclic, every step can be done at every place it may be."""
    many = bool(cell.others)
    bases = [r.base for r in cell.recipes]
    for i, recipe in enumerate(cell.recipes):
        key = f"recipes[{i}]" if many else "recipe"
        if bases.count(recipe.base) > 1:
            raise ConfigError(
                cell.source, f"{key}.base", f"{recipe.base!r} is the base of two recipes"
            )
        _check_recipe(cell, recipe, key)
    fixtures = [f for r in cell.recipes for f in cell.fixtures_for(r)]
    if many:
        for f in cell.fixtures:
            if fixtures.count(f.name) != 1:
                why = f"fixture {f.name!r} must serve exactly one recipe (recipes' 'fixtures')"
                raise ConfigError(cell.source, "recipes", why)
    builders = [r for r in cell.recipes if r.output is Output.COMMISSION]
    if len(builders) > 1:
        raise ConfigError(cell.source, "recipes", "at most one recipe may build robots")
    if builders:
        i = cell.recipes.index(builders[0])
        _check_builder(cell, builders[0], f"recipes[{i}]" if many else "recipe")


def _check_recipe(cell: CellSpec, recipe: RecipeSpec, key0: str) -> None:
    src = cell.source
    stations = cell.stations()
    names = [op.name for op in recipe.ops]
    for f in recipe.fixtures:
        if stations.get(f) is None or stations[f].kind is not StationKind.FIXTURE:
            raise ConfigError(src, f"{key0}.fixtures", f"unknown fixture {f!r}")
    fixtures = cell.fixtures_for(recipe)
    mounts = [m.name for m in cell.mounts] if recipe.output is Output.COMMISSION else []
    if recipe.overflow:
        belt = stations.get(recipe.overflow)
        if belt is None or belt.kind is not StationKind.OUTFEED:
            why = f"{recipe.overflow!r} is not an outfeed conveyor"
            raise ConfigError(src, f"{key0}.overflow", why)
        mounts.append(recipe.overflow)  # the mount step then goes there: it must be reached
    for i, op in enumerate(recipe.ops):
        key = f"{key0}.ops[{i}]"
        if names.count(op.name) > 1:
            raise ConfigError(src, f"{key}.name", f"operation {op.name!r} is defined twice")
        for dep in op.after:
            if dep not in names:
                raise ConfigError(src, f"{key}.after", f"unknown operation {dep!r}")
        for field, st in (("from", op.src), ("to", op.dst), ("at", op.at)):
            if st and st not in stations and st not in PLACEHOLDERS:
                known = ", ".join(sorted([*stations, *PLACEHOLDERS]))
                raise ConfigError(src, f"{key}.{field}", f"unknown station {st!r} (known: {known})")
            if st == "mount" and not mounts:
                why = (
                    "'mount' is only for a recipe with output = 'commission' in a cell with mounts"
                )
                raise ConfigError(src, f"{key}.{field}", why)
        capable = [r for r in cell.robots if op.skill in r.capabilities]
        if not capable:
            raise ConfigError(src, f"{key}.skill", f"no robot has capability {op.skill.value!r}")
        for resolved in _placements(op, stations, fixtures, mounts):
            if not any(all(r.reaches(s.pose) for s in resolved) for r in capable):
                where = " and ".join(sorted({s.name for s in resolved}))
                why = f"unreachable station: no robot with {op.skill.value!r} reaches {where}"
                raise ConfigError(src, key, why)
    done: set[str] = set()
    pending = list(recipe.ops)
    while pending:
        ready = [op for op in pending if set(op.after) <= done]
        if not ready:
            why = f"the 'after' graph has a cycle through {pending[0].name!r}"
            raise ConfigError(src, f"{key0}.ops", why)
        done.update(op.name for op in ready)
        pending = [op for op in pending if op.name not in done]
    _check_flow(cell, recipe, key0)


def _placements(
    op: OperationSpec, stations: dict[str, Station], fixtures: tuple[str, ...], mounts: list[str]
) -> list[list[Station]]:
    """The stations of ``op`` for every fixture (and mount point) it may be done at."""
    places = [st for st in (op.src, op.dst, op.at) if st]
    out = []
    for fx in fixtures:
        for m in mounts if "mount" in places else [""]:
            table = {"fixture": fx, "unit": fx, "mount": m}
            out.append([stations[table.get(st, st)] for st in places])
    return out


def _check_flow(cell: CellSpec, recipe: RecipeSpec, key0: str) -> None:
    """The base part comes in from an infeed; the unit leaves on an outfeed or goes to a mount."""
    stations = cell.stations()
    base = recipe.base
    intake = [op for op in recipe.ops if op.part == base and op.dst == "fixture"]
    if len(intake) != 1:
        why = f"exactly one operation must bring the base part {base!r} to 'fixture'"
        raise ConfigError(cell.source, f"{key0}.ops", why)
    st = stations.get(intake[0].src)
    if st is None or st.kind is not StationKind.INFEED:
        why = f"{intake[0].name!r} must take the base part from an infeed conveyor"
        raise ConfigError(cell.source, f"{key0}.ops", why)
    fed = {f.part for f in cell.feeders if f.conveyor == intake[0].src}
    if base not in fed:
        why = f"{intake[0].name!r} takes {base!r} from {intake[0].src!r}, but no feeder puts one there"
        raise ConfigError(cell.source, f"{key0}.ops", why)
    moves = [op for op in recipe.ops if _moves_unit(op, recipe)]
    if recipe.output is Output.SHIP:
        out = [op for op in moves if op.src == "unit"]
        if len(out) != 1 or stations.get(out[0].dst, st).kind is not StationKind.OUTFEED:
            why = f"exactly one operation must take the unit ('{base}' from 'unit') to an outfeed conveyor"
            raise ConfigError(cell.source, f"{key0}.ops", why)
        return
    if not cell.mounts:
        raise ConfigError(cell.source, "mounts", "a recipe that builds robots needs mount points")
    mount = [op for op in moves if op.dst == "mount"]
    if len(mount) != 1:
        why = f"exactly one operation must take the arm ('{base}') to 'mount'"
        raise ConfigError(cell.source, f"{key0}.ops", why)
    last = mount[0].name
    later = [o.name for o in recipe.ops if o.name != last and last in _before(recipe)[o.name]]
    if later:
        why = f"{later[0]!r} comes after {last!r}, but a mounted arm becomes a robot at once"
        raise ConfigError(cell.source, f"{key0}.ops", why)


def _check_builder(cell: CellSpec, recipe: RecipeSpec, key0: str) -> None:
    """Every mount point reaches the payload; every capability has work a built robot reaches."""
    robot = recipe.robot
    assert robot is not None
    src = cell.source
    stations = cell.stations()
    built = [RobotSpec(m.name, robot.model, m.pose, robot.capabilities) for m in cell.mounts]
    for m, b in zip(cell.mounts, built, strict=True):
        name = cell.payload_for(m.name)
        key = f"mounts.{m.name}.payload" if m.payload else f"{key0}.robot.payload"
        pay = stations.get(name)
        if pay is None or pay.kind is not StationKind.TRAY:
            raise ConfigError(src, key, f"{name!r} is not a tray feeder")
        if not b.reaches(pay.pose):
            why = f"a {robot.model.value} on {b.name} cannot reach the payload tray {pay.name!r}"
            raise ConfigError(src, f"mounts.{b.name}", why)
    for i, cap in enumerate(robot.capabilities):
        ok = False
        for r in cell.recipes:
            fixtures = cell.fixtures_for(r)
            mounts = [m.name for m in cell.mounts] if r.output is Output.COMMISSION else []
            for op in r.ops:
                if op.skill is not cap or "mount" in (op.src, op.dst, op.at):
                    continue
                for resolved in _placements(op, stations, fixtures, mounts):
                    ok = ok or any(all(b.reaches(s.pose) for s in resolved) for b in built)
        if not ok:
            why = f"no built robot could use {cap.value!r}: no step needing it is in reach of a mount point"
            raise ConfigError(src, f"{key0}.robot.capabilities[{i}]", why)
