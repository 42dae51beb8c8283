"""Fault scenarios: faults as data, ``(at, target, kind, params)``, from a TOML file.

A scenario file is a list of ``[[faults]]`` tables::

    [[faults]]
    at = 300.0            # sim seconds
    target = "supervisor" # a robot, a conveyor, or "supervisor"
    kind = "supervisor_crash"
    duration = 0.0        # seconds the fault lasts, where the kind has a duration
    # permanent = true    # robot_fault only, instead of duration: never cleared
    # factor = 2.0        # slow_robot, cycle_creep: how many times slower
    # share = 0.3         # message_loss, gripper_wear, belt_wear, tool_wear: the share lost
    # joint = 2           # joint_drift: which joint drifts (1 to 7; default drawn)

``docs/faults.md`` describes each kind. A bad file (unknown kind, unknown
target, negative time, wrong type) fails at load with one line naming the file,
the entry and the reason.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Any

from bus.cellspec import CellSpec
from bus.enums import FaultKind
from bus.errors import ConfigError
from bus.faults import PERMANENT_HAS_NO_DURATION, problem

PROCESS_KINDS = (FaultKind.AGENT_CRASH, FaultKind.SUPERVISOR_CRASH)
"""Kinds that kill a process (``cells.children``), or a member stepped in the launcher's own
process (``cells.residents``); threads on their own sockets cannot be killed."""
FREEZE_KINDS = (FaultKind.AGENT_FREEZE, FaultKind.SUPERVISOR_FREEZE)
"""Kinds that stop a process (SIGSTOP) for wall seconds, or stand a member still in the
launcher's process; the same as the crashes otherwise."""

KEYS = ("at", "target", "kind", "duration", "factor", "share", "permanent", "joint", "hidden")
"""The keys of a ``[[faults]]`` entry."""
DEFAULT_SHARE = 0.3
"""The share of messages a ``message_loss`` loses unless the scenario says."""
DEFAULT_WEAR_SHARE = 0.5
"""The share a ``gripper_wear`` (of carries), a ``belt_wear`` (of speed) or a ``tool_wear`` (of
torque) reaches unless the scenario says."""
SHARE_KINDS = (
    FaultKind.MESSAGE_LOSS,
    FaultKind.GRIPPER_WEAR,
    FaultKind.BELT_WEAR,
    FaultKind.TOOL_WEAR,
)
"""Kinds whose parameter is a ``share``."""
FACTOR_KINDS = (FaultKind.SLOW_ROBOT, FaultKind.CYCLE_CREEP)
"""Kinds whose parameter is a slowdown ``factor``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledFault:
    """One fault: at sim time ``at_s``, on ``target``, of ``kind``, lasting ``duration_s``."""

    at_s: float
    target: str
    kind: FaultKind
    duration_s: float = 0.0
    factor: float = 0.0
    """How many times slower (``slow_robot``)."""
    share: float = 0.0
    """The share lost, from 0 to 1: of messages (``message_loss``), of carries at full wear
    (``gripper_wear``), of belt speed at full wear (``belt_wear``)."""
    permanent: bool = False
    """Never cleared (``robot_fault``): the robot stays Aborted, its work goes to the others."""
    joint: int = 0
    """The joint that drifts, 1 to 7 (``joint_drift``; 0: drawn from the seed)."""
    hidden: bool = False
    """A ``slow_robot`` the robot's own estimates (its bids) do not see: it bids at the speed
    it plans at and runs slower, as with a drive lagging its command."""

    @property
    def amount(self) -> float:
        """The kind's own parameter as the control protocol carries it (``control_request.factor``)."""
        if self.kind in SHARE_KINDS:
            return self.share
        if self.kind is FaultKind.JOINT_DRIFT:
            return float(self.joint)
        return self.factor


def load_scenario(path: str | Path, cell: CellSpec) -> tuple[ScheduledFault, ...]:
    """Read and check a scenario file against ``cell``."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    return parse_scenario(data, cell, source=source)


def parse_scenario(
    data: dict[str, Any], cell: CellSpec, *, source: str
) -> tuple[ScheduledFault, ...]:
    """Check an already-parsed scenario."""
    extra = sorted(set(data) - {"faults"})
    if extra:
        raise ConfigError(source, extra[0], "unknown key (a scenario has only [[faults]])")
    entries = data.get("faults", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(source, "faults", "expected an array of tables ([[faults]])")
    # robots the cell will build may be named too: a fault due before its robot exists is
    # not injected (the launcher logs why)
    robots = {r.name for r in cell.robots} | set(cell.built_names())
    conveyors = {c.name for c in cell.conveyors}
    sensors = {f"{c}.end" for c in conveyors} | {f.name for f in cell.fixtures}
    sensors |= {f.name for f in cell.feeders if f.pose is not None}
    out = []
    for i, e in enumerate(entries):
        key = f"faults[{i}]"
        unknown = sorted(set(e) - set(KEYS))
        if unknown:
            known = ", ".join(KEYS)
            raise ConfigError(source, f"{key}.{unknown[0]}", f"unknown key (known: {known})")
        at = _number(source, f"{key}.at", e.get("at"))
        if at < 0:
            raise ConfigError(source, f"{key}.at", f"must not be negative, got {at:g}")
        duration = _number(source, f"{key}.duration", e.get("duration", 0.0))
        kind_text = e.get("kind")
        try:
            kind = FaultKind(kind_text)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ConfigError(
                source, f"{key}.kind", f"{kind_text!r} is not one of {known}"
            ) from None
        target = e.get("target")
        if kind in (FaultKind.SUPERVISOR_CRASH, FaultKind.SUPERVISOR_FREEZE):
            allowed = {"supervisor"}
        elif kind in (FaultKind.CONVEYOR_JAM, FaultKind.BELT_WEAR):
            allowed = conveyors
        elif kind is FaultKind.SENSOR_BLACKOUT:
            allowed = sensors
        else:
            allowed = robots
        if target not in allowed:
            raise ConfigError(
                source,
                f"{key}.target",
                f"{target!r} is not one of {', '.join(sorted(allowed))} (for {kind.value})",
            )
        owners = (
            ("factor", FACTOR_KINDS),
            ("share", SHARE_KINDS),
            ("joint", (FaultKind.JOINT_DRIFT,)),
        )
        for own, kinds in owners:
            if own in e and kind not in kinds:
                names = " or ".join(k.value for k in kinds)
                raise ConfigError(source, f"{key}.{own}", f"only a {names} has a {own}")
        default = 2.0 if kind in FACTOR_KINDS else 0.0
        factor = _number(source, f"{key}.factor", e.get("factor", default))
        default = DEFAULT_SHARE if kind is FaultKind.MESSAGE_LOSS else 0.0
        if kind in (FaultKind.GRIPPER_WEAR, FaultKind.BELT_WEAR, FaultKind.TOOL_WEAR):
            default = DEFAULT_WEAR_SHARE
        share = _number(source, f"{key}.share", e.get("share", default))
        joint = _number(source, f"{key}.joint", e.get("joint", 0))
        permanent = _permanent(source, key, e)
        hidden = e.get("hidden", False)
        if not isinstance(hidden, bool):
            raise ConfigError(source, f"{key}.hidden", f"expected true or false, got {hidden!r}")
        if hidden and kind is not FaultKind.SLOW_ROBOT:
            raise ConfigError(source, f"{key}.hidden", "only a slow_robot may be hidden")
        own = "share" if kind in SHARE_KINDS else "factor"
        own = "joint" if kind is FaultKind.JOINT_DRIFT else own
        amount = {"share": share, "joint": joint, "factor": factor}[own]
        wrong = problem(kind, duration_s=duration, factor=amount, permanent=permanent)
        if wrong is not None:
            field, why = wrong
            raise ConfigError(source, f"{key}.{own if field == 'factor' else field}", why)
        if permanent and "duration" in e:
            raise ConfigError(source, f"{key}.duration", PERMANENT_HAS_NO_DURATION)
        out.append(
            ScheduledFault(
                at, str(target), kind, duration, factor, share, permanent, int(joint), hidden
            )
        )
    return tuple(sorted(out, key=lambda f: (f.at_s, f.target, f.kind.value)))


def _permanent(source: str, key: str, entry: dict[str, Any]) -> bool:
    """``permanent``: a boolean (which kinds may be permanent is ``bus.faults``' rule)."""
    value = entry.get("permanent", False)
    if not isinstance(value, bool):
        raise ConfigError(source, f"{key}.permanent", f"expected true or false, got {value!r}")
    return value


MAX_SCENARIO_NUMBER = 1e6
"""The largest number a scenario file takes (seconds of sim time: about 11 days; as
``sim.faulting`` bounds a live fault's duration)."""


def _number(source: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(source, key, f"expected a finite number, got {value!r}"[:200])
    if abs(value) > MAX_SCENARIO_NUMBER:
        raise ConfigError(source, key, f"at most {MAX_SCENARIO_NUMBER:g}, got {value:g}")
    return float(value)


def dump_scenario(faults: tuple[ScheduledFault, ...], comment: str = "") -> str:
    """``faults`` as a scenario file (``load_scenario`` reads it back to the same faults)."""
    out = [f"# {line}" for line in comment.splitlines()]
    for f in faults:
        out += [
            "",
            "[[faults]]",
            f"at = {f.at_s!r}",
            f'target = "{f.target}"',
            f'kind = "{f.kind}"',
        ]
        if f.duration_s:
            out.append(f"duration = {f.duration_s!r}")
        if f.kind in FACTOR_KINDS:
            out.append(f"factor = {f.factor!r}")
        if f.kind in SHARE_KINDS:
            out.append(f"share = {f.share!r}")
        if f.joint:
            out.append(f"joint = {f.joint}")
        if f.permanent:
            out.append("permanent = true")
        if f.hidden:
            out.append("hidden = true")
    return "\n".join(out) + "\n"
