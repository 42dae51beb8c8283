"""What the rich console shows, kept apart from the terminal.

``ConsoleModel`` is fed telemetry frames, status and snapshot answers and the
results of commands, and turns them into one rich renderable. It does no I/O
and keeps no sockets, so a test renders it into a recording ``Console`` and a
replay of a recorded run can drive the same view from a bag.

It keeps only what the view needs: the latest picture per robot and station,
the latest KPIs, and a bounded tail of the event log.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bus.messages import (
    CellStatus,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartsFrame,
)
from bus.simtime import NS

STATE_STYLE = {
    "Execute": "green",
    "Held": "yellow",
    "Holding": "yellow",
    "Suspended": "yellow",
    "Suspending": "yellow",
    "Unholding": "cyan",
    "Unsuspending": "cyan",
    "Aborted": "bold red",
    "Aborting": "red",
    "Stopped": "red",
    "Stopping": "red",
    "Clearing": "magenta",
}
"""Colour of each PackML state (others plain)."""

ALARM_WORDS = ("fault", "fail", "abort", "scrap", "refus", "lost", "error", "drop", "jam", "floor")
"""An event whose kind holds one of these is shown in red and kept by the faults filter."""

STATION_ORDER = ("conveyor", "feeder", "fixture")
"""Stations are listed by kind in this order, then anything else (``floor``)."""

KPI_WIDTH = 46
"""Columns of the KPI box, borders included."""

KEYS_HELP = "h hold cell  r resume  j/k select  f fault robot  p pause/run  e faults only  q quit"


@dataclasses.dataclass(slots=True)
class RobotRow:
    """One robot as the console last heard of it."""

    name: str
    state: str = "?"
    step: str = ""
    op: str = ""
    holding: str = ""
    utilisation: float | None = None
    ops_done: int | None = None
    ops_failed: int | None = None
    alive: bool | None = None
    fault: str = ""
    mode: str = "Production"
    """Its unit mode (from ``status`` and the ``robot_mode`` events)."""
    built: str = ""
    """The serial of a robot built in the cell ("" for one of the cell file's)."""
    links: dict[str, tuple[float, float, float]] = dataclasses.field(default_factory=dict)
    """Each link's position in the cell as last heard (live telemetry or a bag's tf tree)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EventLine:
    """One line of the event log."""

    t_ns: int
    kind: str
    text: str
    alarm: bool


class ConsoleModel:
    """The console's picture of a cell, built from what it is fed."""

    def __init__(self, *, endpoint: str = "", events_kept: int = 500) -> None:
        self.endpoint = endpoint
        self.robots: dict[str, RobotRow] = {}
        self.stations: dict[str, list[str]] = {}
        """Station location (``fixture:F1``) to its parts; a station once seen stays listed."""
        self.joined: dict[str, list[str]] = {}
        """Unit base part to the parts joined to it."""
        self.kpis: dict[str, Any] = {}
        self.events: collections.deque[EventLine] = collections.deque(maxlen=events_kept)
        self.t_ns = 0
        self.pace = "?"
        self.cell = ""
        self.gaps = 0
        self.lost = 0
        self.malformed = 0
        self.cell_counts: dict[str, int] = {}
        """The cell's own counts from ``status``: requests refused and malformed, telemetry
        queue overflows (``dropped``): what every client of the cell caused, not only this one."""
        self.fps = 0.0
        self.frames: collections.Counter[str] = collections.Counter()
        self.message = ""
        self.message_alarm = False
        self.selected = 0
        self.faults_only = False
        self.keys = True
        """False when there is no keyboard (stdin not a terminal): the help line says so."""
        self.link = ""
        """Why the cell is not answering, or "" when it is."""

    # ------------------------------------------------------------ input

    def feed(self, msg: Message) -> None:
        """Take one telemetry frame of any topic; anything else is ignored."""
        if isinstance(msg, JointsFrame):
            self._joints(msg)
        elif isinstance(msg, PartsFrame):
            self._parts(msg)
        elif isinstance(msg, EventFrame):
            self._event(msg)
        elif isinstance(msg, KpiFrame):
            self._kpis(msg)
        else:
            return
        self.frames[type(msg).TAG] += 1

    def _robot(self, name: str) -> RobotRow:
        row = self.robots.get(name)
        if row is None:
            row = self.robots[name] = RobotRow(name)
            self.robots = dict(sorted(self.robots.items(), key=lambda kv: _natural(kv[0])))
        return row

    def _joints(self, msg: JointsFrame) -> None:
        self.t_ns = max(self.t_ns, msg.t_ns)
        for arm in msg.arms:
            row = self._robot(arm.robot)
            row.state, row.step, row.op, row.holding = (
                arm.state.value,
                arm.step.value,
                arm.op_id,
                arm.holding,
            )
            if arm.links:
                row.links = {
                    n: (p.x, p.y, p.z) for n, p in zip(arm.links, arm.poses(), strict=False)
                }

    def _parts(self, msg: PartsFrame) -> None:
        self.t_ns = max(self.t_ns, msg.t_ns)
        located = {p.part: loc for p, loc in zip(msg.parts, msg.locations, strict=False)}
        self._place(located)

    def _place(self, located: Mapping[str, str]) -> None:
        stations: dict[str, list[str]] = {s: [] for s in self.stations}
        joined: dict[str, list[str]] = {}
        for part, loc in sorted(located.items()):
            kind, _, name = loc.partition(":")
            if kind == "unit":
                joined.setdefault(name, []).append(part)
            elif kind != "gripper":  # shown with its robot
                stations.setdefault(loc, []).append(part)
        self.stations = dict(sorted(stations.items(), key=lambda kv: _station_key(kv[0])))
        self.joined = joined

    def _event(self, msg: EventFrame) -> None:
        self.t_ns = max(self.t_ns, msg.t_ns)
        try:
            rec = json.loads(msg.data)
        except ValueError:
            rec = {}
        if not isinstance(rec, dict):
            rec = {}
        fields = {k: v for k, v in rec.items() if k not in ("t_ns", "kind")}
        if msg.kind == "robot_added" and isinstance(fields.get("robot"), str):
            # a robot built in the cell joined: it gets its row (and its serial) at once
            self._robot(fields["robot"]).built = str(fields.get("serial", "built"))
        if msg.kind == "robot_mode" and isinstance(fields.get("robot"), str):
            self._robot(fields["robot"]).mode = str(fields.get("dst", "?"))[:40]
        text = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
        alarm = any(w in msg.kind for w in ALARM_WORDS) or (
            msg.kind == "part_moved" and str(fields.get("dst", "")).startswith("floor")
        )
        self.events.append(EventLine(msg.t_ns, msg.kind, text, alarm))

    def _kpis(self, msg: KpiFrame) -> None:
        self.t_ns = max(self.t_ns, msg.t_ns)
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(data, dict):
            self._take_kpis(data)

    def _take_kpis(self, data: dict[str, Any]) -> None:
        self.kpis = data
        self.cell = str(data.get("cell", self.cell))
        robots = data.get("robots")
        if isinstance(robots, dict):
            for name, r in robots.items():
                if not isinstance(r, dict):
                    continue
                row = self._robot(str(name))
                row.utilisation = _num(r.get("utilisation"))
                row.ops_done = _int(r.get("ops_done"))
                row.ops_failed = _int(r.get("ops_failed"))
                if row.state == "?" and isinstance(r.get("state"), str):
                    row.state = r["state"]

    def apply_status(self, status: CellStatus) -> None:
        """Take a ``status`` answer: the pace, and every robot even when telemetry is quiet."""
        self.t_ns = max(self.t_ns, status.t_ns)
        self.pace = status.pace
        self.link = ""
        self.cell_counts = {
            "refused": status.refused,
            "malformed": status.malformed,
            "dropped": status.dropped,
        }
        for r in status.robots:
            row = self._robot(r.robot)
            row.state, row.step, row.op, row.holding = (
                r.state.value,
                r.step.value,
                r.op_id,
                r.holding,
            )
            row.alive, row.fault, row.mode = r.alive, r.fault, r.mode.value

    def apply_snapshot(self, snap: Mapping[str, Any]) -> None:
        """Take a ``snapshot`` answer: rebuilds robots, stations and KPIs after a gap."""
        t = snap.get("t_ns")
        if isinstance(t, int):
            self.t_ns = max(self.t_ns, t)
        if isinstance(snap.get("pace"), str):
            self.pace = snap["pace"]
        counts = {k: snap.get(k) for k in ("refused", "malformed", "dropped")}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
            self.cell_counts = {k: int(str(v)) for k, v in counts.items()}
        robots = snap.get("robots")
        if isinstance(robots, dict):
            for name, r in robots.items():
                if isinstance(r, dict):
                    row = self._robot(str(name))
                    row.state = str(r.get("state", row.state))
                    row.step = str(r.get("step", row.step))
                    row.op = str(r.get("op", row.op))
                    row.holding = str(r.get("holding", row.holding))
        parts = snap.get("parts")
        if isinstance(parts, dict):
            self._place(
                {
                    str(p): str(v.get("location", ""))
                    for p, v in parts.items()
                    if isinstance(v, dict)
                }
            )
        if isinstance(snap.get("kpis"), dict):
            self._take_kpis(snap["kpis"])

    def set_link(self, *, gaps: int, lost: int, malformed: int) -> None:
        """The telemetry link's health, from the subscriber's counters."""
        self.gaps, self.lost, self.malformed = gaps, lost, malformed

    def note(self, text: str, *, alarm: bool = False) -> None:
        """Show the outcome of a command (or a problem) on the status line."""
        self.message, self.message_alarm = text, alarm

    def select(self, delta: int) -> None:
        """Move the robot selection by ``delta``, wrapping around."""
        if self.robots:
            self.selected = (self.selected + delta) % len(self.robots)

    @property
    def selected_robot(self) -> str | None:
        """The name of the selected robot, if any robot is known."""
        if not self.robots:
            return None
        return list(self.robots)[min(self.selected, len(self.robots) - 1)]

    # ------------------------------------------------------------ output

    def render(self, *, height: int | None = None) -> RenderableType:
        """The whole view; with ``height`` the event log fills what the rest leaves."""
        robots = self._robots_table()
        middle = self._middle()
        fixed = 1 + (len(self.robots) + 3) + (max(len(self.stations), 8) + 2) + 2 + 2
        lines = max(3, height - fixed) if height is not None else 10
        return Group(
            self._header(),
            robots,
            middle,
            self._events(lines),
            self._footer(),
        )

    def _header(self) -> Text:
        """One line; the endpoint goes last, so a narrow terminal crops only that."""
        t = Text(no_wrap=True, overflow="ellipsis", end="")
        t.append(" lightsout ", style="bold reverse")
        t.append(f" {self.cell or 'cell'}  ", style="bold")
        t.append(f"sim {self.t_ns / NS:.1f} s  ")
        t.append("pace ")
        t.append(self.pace, style="bold yellow" if self.pace == "paused" else "bold")
        t.append("  telemetry ")
        t.append(f"gaps {self.gaps} (lost {self.lost})", style="bold red" if self.gaps else "green")
        if self.malformed:
            t.append(f" malformed {self.malformed}", style="red")
        t.append(f"  {self.fps:.1f} fps")
        if self.cell_counts:
            c = self.cell_counts
            alarm = c["malformed"] or c["dropped"]
            t.append(
                f"  cell: refused {c['refused']} malformed {c['malformed']} dropped {c['dropped']}",
                style="red" if alarm else "",
            )
        if self.link:
            t.append(f"  {self.link}", style="bold red")
        t.append(f"  {self.endpoint}", style="dim")
        return t

    def _robots_table(self) -> Panel:
        """Robots as fixed-width text lines: a rich Table of 12 x 10 cells costs ~7 ms a frame.

        The operation goes last, so a narrow terminal crops it and nothing else.
        """
        body = Text(no_wrap=True, overflow="ellipsis", end="")
        body.append(
            f"  {'robot':<6} {'state':<12} {'step':<7} {'holding':<14} {'utilisation':<15} "
            f"{'ops':>4} {'failed':>6} {'alive':<5} operation",
            style="bold",
        )
        chosen = self.selected_robot
        for row in self.robots.values():
            mine = row.name == chosen
            body.append("\n")
            body.append("> " if mine else "  ", style="bold")
            body.append(f"{row.name:<6.6}", style="bold reverse" if mine else "bold")
            body.append(" ")
            body.append(f"{row.state:<12.12}", style=STATE_STYLE.get(row.state, ""))
            body.append(f" {row.step:<7.7} {row.holding or '-':<14.14} ")
            body.append_text(share_bar(row.utilisation))
            body.append(f" {_val(row.ops_done):>4} {_val(row.ops_failed):>6} ")
            alive = {True: ("yes", ""), False: ("NO", "bold red"), None: ("?", "dim")}[row.alive]
            body.append(f"{alive[0]:<5}", style=alive[1])
            body.append(f" {row.op or '-'}")
            if row.built:
                body.append(f"  built here: {row.built}", style="bold green")
            if row.mode != "Production":
                body.append(f"  mode: {row.mode}", style="bold yellow")
            if row.fault:
                body.append(f"  fault: {row.fault}", style="bold red")
        return Panel(body, title="robots", title_align="left", padding=(0, 1))

    def _middle(self) -> Table:
        """Stations and their parts on the left, the KPIs in a fixed-width box on the right."""
        stations = Text(no_wrap=True, overflow="ellipsis", end="")
        width = max((len(loc) for loc in self.stations), default=8)
        for i, (loc, parts) in enumerate(self.stations.items()):
            if i:
                stations.append("\n")
            shown = [p + (f"+{len(self.joined[p])}" if p in self.joined else "") for p in parts]
            alarm = loc.startswith("floor") and parts
            stations.append(f"{loc:<{width}}  ", style="bold red" if alarm else "bold")
            stations.append(" ".join(shown) or "-", style="" if shown else "dim")
        if not self.stations:
            stations.append("no parts seen yet", style="dim")
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(ratio=1)
        grid.add_column(width=KPI_WIDTH)
        grid.add_row(
            Panel(stations, title="stations", title_align="left", padding=(0, 1)),
            Panel(self._kpi_text(), title="KPIs", title_align="left", padding=(0, 1)),
        )
        return grid

    def _kpi_text(self) -> Text:
        k = self.kpis
        led = _dict(k.get("ledger"))
        ct = _dict(k.get("cycle_time_s"))
        balanced = k.get("ledger_balanced")
        rows: list[tuple[str, str, str]] = [
            ("units completed", _val(k.get("units_completed")), ""),
            ("units scrapped", _val(k.get("units_scrapped")), ""),
            ("units in progress", _val(k.get("units_in_progress")), ""),
            ("throughput", _fmt(_num(k.get("throughput_per_hour")), "{:.1f} units/h"), ""),
            ("cycle time (mean)", _fmt(_num(ct.get("mean")), "{:.1f} s"), ""),
            (
                "parts made/shipped/scrap/WIP",
                "/".join(_val(led.get(x)) for x in ("created", "shipped", "scrapped", "wip")),
                "",
            ),
            (
                "ledger balanced",
                {None: "-", True: "yes", False: "NO"}.get(balanced, "?"),
                "bold red" if balanced is False else "green",
            ),
        ]
        orders = k.get("orders")
        if isinstance(orders, list) and orders:
            open_ = [
                o for o in orders if isinstance(o, dict) and o.get("shipped") != o.get("count")
            ]
            shown = ", ".join(f"{o.get('shipped')}/{o.get('count')}" for o in open_)
            rows.append(("orders open", shown or "none", ""))
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        inner = KPI_WIDTH - 4
        for i, (name, value, style) in enumerate(rows):
            if i:
                text.append("\n")
            text.append(f"{name:<{inner - len(value) - 1}.{inner - len(value) - 1}} ")
            text.append(value, style=style or "bold")
        return text

    def _events(self, lines: int) -> Panel:
        """The log as one pre-formatted Text: a table of this many rows costs ten times more."""
        shown = [e for e in self.events if e.alarm or not self.faults_only][-lines:]
        body = Text(no_wrap=True, overflow="ellipsis", end="")
        for i, e in enumerate(shown):
            if i:
                body.append("\n")
            body.append(f"{e.t_ns / NS:9.2f}s ", style="dim")
            body.append(f"{e.kind:<18.18}", style="bold red" if e.alarm else "cyan")
            body.append(f" {e.text}")
        body.append("\n" * (lines - len(shown)))
        title = "faults only" if self.faults_only else "events"
        return Panel(body, title=title, title_align="left", height=lines + 2, padding=(0, 1))

    def _footer(self) -> Text:
        """The answer to the last command (or a problem), then the keys."""
        t = Text(no_wrap=True, overflow="ellipsis", end="")
        if self.message:
            t.append(self.message, style="bold red" if self.message_alarm else "bold green")
        t.append("\n")
        t.append(KEYS_HELP if self.keys else "no keyboard: stdin is not a terminal", style="dim")
        return t


def _station_key(loc: str) -> tuple[int, str]:
    kind = loc.partition(":")[0]
    rank = STATION_ORDER.index(kind) if kind in STATION_ORDER else len(STATION_ORDER)
    return rank, loc


def _natural(name: str) -> tuple[str, int, str]:
    """R2 before R10: a name's leading text, then its number."""
    head = name.rstrip("0123456789")
    digits = name[len(head) :]
    return (head, int(digits), "") if digits else (name, -1, "")


def share_bar(u: float | None, width: int = 10) -> Text:
    """A share from 0 to 1 as a bar and a percentage (the robots' utilisation, a line's OEE)."""
    if u is None:
        return Text(f"{'-':<{width + 5}}", style="dim")
    u = min(max(u, 0.0), 1.0)
    n = round(u * width)
    t = Text("█" * n, style="green")
    t.append("░" * (width - n), style="dim")
    t.append(f" {100 * u:3.0f}%")
    return t


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _val(v: Any) -> str:
    return "-" if v is None else str(v)


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else spec.format(v)


def _short(v: Any, limit: int = 40) -> str:
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return s if len(s) <= limit else s[: limit - 1] + "…"
