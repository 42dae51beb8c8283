"""Reading TOML tables with a dotted path for errors: the converters every loader shares.

Every getter checks presence, type and meaning, and a failure names the file,
the dotted key and the reason (``cells/x.toml: robots[2].model: 'ur5' is not
one of iiwa, panda``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from bus.cellspec import Pose
from bus.errors import ConfigError

T = TypeVar("T")


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


MAX_NUMBER = 1e7
"""The largest magnitude any number of a cell file may have (metres, seconds, kilograms...):
past it a value only ever overflows or hangs something."""
MAX_INT = 1_000_000
"""The largest whole number of a cell file (counts, rates in Hz)."""


def _num(t: _Table, k: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise t.fail(k, f"expected a number, got {_kind(v)}")
    if not math.isfinite(v):
        raise t.fail(k, f"expected a finite number, got {v}")
    if abs(v) > MAX_NUMBER:
        raise t.fail(k, f"at most {MAX_NUMBER:g} in size, got {v:g}")
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


def _bool(t: _Table, k: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise t.fail(k, f"expected true or false, got {_kind(v)}")
    return v


def _int(t: _Table, k: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise t.fail(k, f"expected a positive integer, got {v!r}")
    if v > MAX_INT:
        raise t.fail(k, f"at most {MAX_INT}, got {v}")
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
