"""The factory's wire between line hosts and the coordinator: messages, their checks, keys.

A line on a host of its own (``factory.linehost``) runs its cell there and stops
at every coordinator step, as a line on a thread stops at the barrier of
``factory.run``. Instead of waiting at a barrier it sends the coordinator
(``factory.hub``) a **report** of what its gate saw since the last step: the
parts its feeders made (feeder, part id), in order, and the event-log lines the
coordinator acts on (``factory.lines.HEARD_KINDS``). The coordinator answers
with the **line side** after its step: how many parts of each kind wait there.
The line's own gate (``MirrorGate``) lets its feeders make that many, so it
feeds exactly as the coordinator's ``LineGate`` would, and the coordinator
replays the report into that gate before it steps: the same factory file, seed
and orders give the same factory log in one process or across hosts.

Messages are JSON objects, one frame each, over a CURVE DEALER (the line) and
ROUTER (the coordinator, with the keys directory's server pair). ZAP admits
only the factory's participant keys (``KEYS/participants/FACTORY/LINE.key``,
``bus.trust``), and a report is taken only from the key of the line it names.

* ``{"op": "step", "line": L, "k": K, "fed": [[feeder, part], ...],
  "heard": [line, ...], "kpis": {...}}``: step ``K`` (0: the start, before the
  first tick; K: the K-th time of ``factory.coordinator.step_times``), answered
  ``{"op": "go", "k": K, "side": {kind: n}}``;
* ``{"op": "done", ..., "k": len(steps) + 1, "files": {name: text}}``: the
  line reached its duration; what it fed and heard since the last step, and its
  run's files the factory's results are made from (``SENT_FILES``), answered
  ``{"op": "end", "k": K}`` once the factory's results are written;
* ``{"op": "refused", "k": K, "why": ...}``: a report that is not one, or out
  of step; the line gives up with that reason.

A report is idempotent by its ``k``: a line that hears nothing resends it, and
the coordinator answers a report of the step it last took again with the same
answer (it lost its answer, or the coordinator was restarted). Everything a
peer sends is checked and bounded (``read_report``); a bad one is refused with
why, never raised on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import zmq

from bus.errors import ConfigError
from bus.security import SERVER, _load
from bus.trust import cell_keys_dir, ensure_participants, safe_name
from factory.lines import HEARD_KINDS

MAX_MESSAGE = 256 * 1024 * 1024
"""The largest message either side takes (a ``done`` carries a line's event log)."""
MAX_FED = 200_000
"""Parts one report may say were made (a 5 s step makes a handful)."""
MAX_HEARD_LINE = 64 * 1024
"""The longest event-log line a report may carry."""
MAX_ID = 128
"""The longest feeder name or part id."""
SENT_FILES = ("events.jsonl", "kpis.json", "run.json", "world.jsonl", "chaos.toml")
"""A line's run files sent with its ``done`` (those there): the factory's results and
every line's audit are made from them on the coordinator's host."""
OPS = ("step", "done")


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    """What a line said at a step (checked)."""

    op: str
    line: str
    k: int
    fed: tuple[tuple[str, str], ...]
    heard: tuple[str, ...]
    kpis: dict[str, Any] | None = None
    files: dict[str, str] = dataclasses.field(default_factory=dict)

    def journal(self) -> dict[str, Any]:
        """The report as the coordinator's journal keeps it (no KPIs: they decide nothing;
        no files: they are written beside the journal before it is)."""
        return {"fed": [list(f) for f in self.fed], "heard": list(self.heard)}


def tcp_address(flag: str, address: str) -> str:
    """``address`` if it is ``tcp://HOST:PORT`` with a port from 1 to 65535, else a
    ``ConfigError`` naming ``flag`` (zmq would take port 99999 as another port)."""
    scheme, sep, rest = address.partition("://")
    host, colon, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not colon or not host or not port.isdigit():
        raise ConfigError(flag, address[:80], "expected tcp://HOST:PORT")
    if not 0 < int(port) < 65536:
        raise ConfigError(flag, address[:80], "the port must be from 1 to 65535")
    return address


def encode(msg: dict[str, Any]) -> bytes:
    """One message as the wire carries it."""
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID and "\n" not in value


def read_report(raw: bytes, lines: tuple[str, ...], last_k: int) -> Report | str:
    """The report in ``raw``, or why it is not one (a line of ``lines``, an op of ``OPS``,
    ``0 <= k <= last_k``, bounded fields of their types)."""
    if len(raw) > MAX_MESSAGE:
        return f"a message of {len(raw)} bytes (at most {MAX_MESSAGE})"
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "not JSON"
    if not isinstance(msg, dict):
        return "not a JSON object"
    op, line, k = msg.get("op"), msg.get("line"), msg.get("k")
    if op not in OPS:
        return f"op {str(op)[:40]!r} is not one of {', '.join(OPS)}"
    if line not in lines:
        return f"line {str(line)[:80]!r} is not a line of this factory"
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= last_k:
        return f"k {str(k)[:40]!r} is not a step from 0 to {last_k}"
    fed, heard, kpis = msg.get("fed", []), msg.get("heard", []), msg.get("kpis")
    if not isinstance(fed, list) or len(fed) > MAX_FED:
        return f"fed is not a list of at most {MAX_FED} [feeder, part] pairs"
    if not all(isinstance(f, list) and len(f) == 2 and _id(f[0]) and _id(f[1]) for f in fed):
        return f"fed holds an entry that is not [feeder, part] (ids of 1 to {MAX_ID} chars)"
    if not isinstance(heard, list) or not all(
        isinstance(h, str) and len(h) <= MAX_HEARD_LINE for h in heard
    ):
        return f"heard is not a list of event-log lines (each at most {MAX_HEARD_LINE} chars)"
    if kpis is not None and not isinstance(kpis, dict):
        return "kpis is not an object"
    files = msg.get("files", {})
    if not isinstance(files, dict) or not all(
        f in SENT_FILES and isinstance(t, str) for f, t in files.items()
    ):
        return f"files is not an object of {', '.join(SENT_FILES)} to their text"
    if op == "done" and "events.jsonl" not in files:
        return "a done without the line's events.jsonl"
    return Report(
        op,
        line,
        k,
        tuple((f[0], f[1]) for f in fed),
        tuple(heard),
        kpis,
        dict(files) if op == "done" else {},
    )


def read_answer(raw: bytes) -> dict[str, Any] | str:
    """The coordinator's answer in ``raw``, or why it is not one."""
    if len(raw) > MAX_MESSAGE:
        return "an answer too large"
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "an answer that is not JSON"
    if not isinstance(msg, dict) or msg.get("op") not in ("go", "end", "refused"):
        return "an answer that is not go, end or refused"
    if not _int(msg.get("k")):
        return "an answer without its step"
    side = msg.get("side", {})
    if msg["op"] == "go" and not (
        isinstance(side, dict)
        and all(_id(kind) and _int(n) and 0 <= n <= 10**9 for kind, n in side.items())
    ):
        return "a go whose side is not part kinds to counts"
    return msg


class MirrorGate:
    """A remote line's gate (``sim.feeders.FeedGate``): its feeders make as many parts of each
    kind as the coordinator said wait at the line side, and it keeps what to report."""

    def __init__(self, kind_of: dict[str, str]) -> None:
        self.kind_of = kind_of
        self.side: dict[str, int] = {}
        self.fed_since: list[tuple[str, str]] = []
        self.heard_since: list[str] = []
        self.kpis: dict[str, Any] | None = None

    def may_feed(self, feeder: str) -> bool:
        return self.side.get(self.kind_of[feeder], 0) > 0

    def fed(self, feeder: str, part: str) -> None:
        self.side[self.kind_of[feeder]] -= 1
        self.fed_since.append((feeder, part))

    def hear(self, line: str) -> None:
        """Keep the event-log lines the coordinator acts on (the cheap test of
        ``factory.lines.parse_heard``; the coordinator parses and checks them)."""
        if any(f'"kind":"{k}"' in line for k in HEARD_KINDS):
            self.heard_since.append(line)

    def take_kpis(self, kpis: dict[str, Any]) -> None:
        self.kpis = kpis

    def report(self, op: str, line: str, k: int) -> dict[str, Any]:
        """The report of step ``k`` (what was fed and heard since the last one is taken)."""
        msg: dict[str, Any] = {
            "op": op,
            "line": line,
            "k": k,
            "fed": [list(f) for f in self.fed_since],
            "heard": self.heard_since,
            "kpis": _finite(self.kpis),
        }
        self.fed_since, self.heard_since = [], []
        return msg


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite made None (the wire is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def line_keys(keys_dir: str | Path, factory: str, line: str) -> tuple[bytes, bytes, bytes]:
    """A line host's CURVE (public, secret) pair in the factory, and the coordinator's public
    key (the keys directory's server pair); one ``ConfigError`` if a file is missing."""
    d = cell_keys_dir(keys_dir, factory)
    path = d / f"{safe_name(line, 'a line name', '--line')}.key_secret"
    if not path.is_file():
        raise ConfigError(str(path), "", "no key of this line (lightsout factory keys FILE)")
    public, secret = _load(path)
    if secret is None:
        raise ConfigError(str(path), "secret-key", "missing")
    server = Path(keys_dir) / f"{SERVER}.key"
    if not server.is_file():
        raise ConfigError(str(server), "", "no coordinator key (lightsout factory keys FILE)")
    server_public, _ = _load(server)
    return public, secret, server_public


def ensure_line_keys(keys_dir: str | Path, factory: str, lines: list[str]) -> None:
    """Make the key pair of every line of ``factory`` that lacks one (and the server pair)."""
    ensure_participants(keys_dir, factory, lines)


def client_socket(ctx: zmq.Context[Any], keys: tuple[bytes, bytes, bytes]) -> zmq.Socket[Any]:
    """A line host's DEALER to the coordinator, a CURVE client of its key."""
    from bus.sockets import make_socket

    sock = make_socket(ctx, zmq.DEALER)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    return sock
