"""Supply faults: a supplier's lot that comes late, from a TOML file (``factory run --supply``).

A cell's scenario file (``cells.faults``) breaks robots and belts; this one
breaks the supply side, so the coordinator's reaction can be seen and tested:

    [[late]]
    supplier = "glass"   # a supplier of the factory file
    purchase = 1         # its first purchase of the run (counting from 1)
    by_s = 60.0          # arrives this many sim seconds after it was promised

The coordinator does not know a lot will be late; it finds out when the
promised time passes with nothing received (``lot_late``) and then expedites:
it buys a lot of the same kind from another supplier delivering it to the
same store (the one with the shortest lead time), if there is one.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from bus.errors import ConfigError
from cells.tables import _int, _pos, _str, _Table
from factory.schema import MAX_LEAD_S, FactorySpec


@dataclasses.dataclass(frozen=True, slots=True)
class LateLot:
    """The ``purchase``-th purchase from ``supplier`` arrives ``by_s`` late."""

    supplier: str
    purchase: int
    by_s: float


def load_supply(path: str | Path, spec: FactorySpec) -> tuple[LateLot, ...]:
    """Read and check a supply-fault file against ``spec``; one ``ConfigError`` if bad."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    top = _Table(source, "", data)
    top.used.add("late")
    raw = data.get("late", [])
    if not isinstance(raw, list):
        raise top.fail("late", "expected an array of tables ([[late]])")
    known = [s.name for s in spec.suppliers]
    out = []
    for i, item in enumerate(raw):
        t = _Table(source, f"late[{i}]", item)
        supplier = t.get("supplier", _str)
        if supplier not in known:
            raise t.fail("supplier", f"unknown supplier {supplier!r} (known: {', '.join(known)})")
        n = t.get("purchase", _int)
        by = t.get("by_s", _pos)
        if by > MAX_LEAD_S:
            raise t.fail("by_s", f"at most {MAX_LEAD_S:g} s, got {by:g}")
        t.close()
        out.append(LateLot(supplier, n, by))
    top.close()
    return tuple(out)
