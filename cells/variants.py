"""Variants of a cell file: ``--set key=value`` overrides, and the product of their values.

A study compares layouts, speeds and policies, so a sweep takes keys of the
cell file from the command line (``--set conveyors.infeed.speed=0.1``,
``--set cell.policy=fcfs``). The same key given with several values makes
variants: one per value, and with several such keys one per combination (a
full factorial, as an experiment manager's table of scenarios). A key with one
value applies to every variant.

A key is the dotted path of the cell file (``docs/cell-file.md``); an array of
tables is entered by an element's ``name`` (``robots.R1.speed``) or its index
(``robots[0].speed``, ``recipe.ops.fasten.skill``). Every table on the path
must exist, so a typo is caught at once, and the whole cell is validated again
with the override in place, so the schema itself judges the last key and the
value's type. Every error is one line naming the ``--set`` and the reason.

Each variant is a cell file of its own (TOML text), written into each run's
directory: the run, its audit and ``lightsout resume`` read the cell as it
was run, not as the file on disk says.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from bus.cellspec import CellSpec
from bus.errors import ConfigError
from cells.schema import parse_cell, read_cell_file

_TOKEN = re.compile(r"[^.\[\]]+")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\[\d+\])?(\.[A-Za-z0-9_\-]+(\[\d+\])?)*$")
MAX_SETS = 64
"""The most ``--set`` options a sweep takes (each is a column of its table)."""
MAX_VARIANTS = 256
"""The most variants a sweep makes (the product of the values of every key)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One cell of a study: its overrides, its cell file's text and the cell it describes."""

    id: str
    """``v1``, ``v2``...: the run directories' prefix."""
    sets: tuple[tuple[str, str], ...]
    """(key, value as given) in the order first given."""
    text: str
    """The cell file of this variant (the original file's text when nothing is set)."""
    cell: CellSpec

    @property
    def label(self) -> str:
        """``cell.policy=fcfs, conveyors.infeed.speed=0.2``, or ``base`` with no overrides."""
        return ", ".join(f"{k}={v}" for k, v in self.sets) or "base"


def parse_sets(given: list[str]) -> list[tuple[str, list[str]]]:
    """``key=value`` options grouped by key, keys and values in the order first given."""
    if len(given) > MAX_SETS:
        raise ConfigError("--set", f"{len(given)} options", f"at most {MAX_SETS}")
    keys: dict[str, list[str]] = {}
    for text in given:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", text[:80], "expected KEY=VALUE, e.g. cell.policy=fcfs")
        if not _KEY.match(key) or len(key) > 200:
            raise ConfigError(
                "--set", text[:80], f"{key[:80]!r} is not a dotted key of a cell file"
            )
        values = keys.setdefault(key, [])
        if value not in values:
            values.append(value)
    return list(keys.items())


def make_variants(path: str | Path, given: list[str]) -> list[Variant]:
    """Every variant of the cell file at ``path`` the ``--set`` options make, validated."""
    source = str(path)
    text, data = read_cell_file(path)
    grouped = parse_sets(given)
    count = 1
    for _, values in grouped:
        count *= len(values)
    if count > MAX_VARIANTS:
        raise ConfigError("--set", f"{count} variants", f"at most {MAX_VARIANTS}")
    out = []
    combos = itertools.product(*[[(k, v) for v in values] for k, values in grouped])
    for i, combo in enumerate(combos, 1):
        if not combo:
            out.append(Variant("v1", (), text, parse_cell(data, source=source)))
            continue
        varied = copy.deepcopy(data)
        for key, value in combo:
            set_key(varied, key, value)
        where = f"{source} with --set {' --set '.join(f'{k}={v}' for k, v in combo)}"
        cell = parse_cell(copy.deepcopy(varied), source=where[:300])
        cell = dataclasses.replace(cell, source=source)
        out.append(Variant(f"v{i}", tuple(combo), tomli_w.dumps(varied), cell))
    return out


def set_key(data: dict[str, Any], key: str, value: str) -> None:
    """Put ``value`` at the dotted ``key`` of a parsed cell file, typed like the cell file.

    A key whose value in the file is a string takes the text as it is; any
    other takes it as a TOML value (``0.1``, ``3``, ``true``, ``[1, 2]``) and,
    if it is none, as a string, for the schema to judge. A number where the
    file has a number, and so on: a value of another type than the file's is
    refused here with both named.
    """
    tokens = _TOKEN.findall(key)
    cur: Any = data
    for depth, token in enumerate(tokens[:-1]):
        cur = _enter(cur, token, ".".join(tokens[: depth + 1]), key)
    if not isinstance(cur, dict):
        raise ConfigError(
            "--set", f"{key}={value}"[:120], f"{'.'.join(tokens[:-1])} is not a table"
        )
    leaf = tokens[-1]
    old = cur.get(leaf)
    new = value if isinstance(old, str) else _toml_value(value)
    if old is not None and _kind(old) != _kind(new):
        why = f"expected {_kind(old)} (the cell file has {old!r}), got {value[:40]!r}"
        raise ConfigError("--set", key, why)
    cur[leaf] = new


def _enter(cur: Any, token: str, path: str, key: str) -> Any:
    """The table or array element ``token`` names inside ``cur``."""
    if isinstance(cur, dict):
        if token not in cur or not isinstance(cur[token], dict | list):
            known = ", ".join(sorted(k for k, v in cur.items() if isinstance(v, dict | list)))
            raise ConfigError("--set", key, f"unknown key {path} (tables here: {known or 'none'})")
        return cur[token]
    if isinstance(cur, list):
        for i, item in enumerate(cur):
            if isinstance(item, dict) and (token == str(i) or item.get("name") == token):
                return item
        names = ", ".join(
            str(item.get("name", i)) for i, item in enumerate(cur) if isinstance(item, dict)
        )
        raise ConfigError("--set", key, f"unknown key {path} (entries: {names or 'none'})")
    raise ConfigError("--set", key, f"unknown key {path}: its parent is a value, not a table")


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true or false"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "a table"
