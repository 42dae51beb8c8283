"""Participant keys and live key lists: every tcp socket of a cell is authenticated.

``bus.security`` holds the clients' side (``roles.toml``: who may look and
steer). This module adds the cell's own participants: the supervisor and
each robot agent have a CURVE key pair of their own, per cell, in
``KEYS/participants/CELL/`` (``NAME.key``, ``NAME.key_secret``, and
``participants.toml`` listing each name's public key). A participant's
name is bound to its key:

* the clock (the sim server's ROUTER, server key ``server.key``) takes a
  ``Join``, a ``Done`` or a tick's answer only from a connection whose ZAP
  User-Id is the public key listed for that name;
* the cell bus (the supervisor's ROUTER, server key the supervisor's own
  pair) takes an envelope only if its ``src`` is the name of the key that
  sent it.

ZAP domains keep the two kinds apart: the clock and the cell bus admit only
participant keys (``PARTICIPANTS``), control and telemetry only client keys
(``CLIENTS``). ``LiveKeys`` re-reads both files when they change (their
mtime) or when asked (SIGHUP), so a key taken out of a file is refused from
then on: by ZAP at its next handshake and by every receiver at its next
message (each message's User-Id is looked up in the current lists).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from bus.errors import ConfigError
from bus.security import (
    _NAME,
    _Z85_KEY,
    ROLES,
    SAFE_NAME_RULE,
    SERVER,
    _load,
    _private_dir,
    ensure_server_keys,
    read_roles,
    read_toml,
    server_keys,
)

log = logging.getLogger(__name__)

PARTICIPANTS = "participants"
"""The ZAP domain of the clock and the cell bus, and the folder of participant keys."""
CLIENTS = "clients"
"""The ZAP domain of the control and telemetry sockets."""
PARTICIPANTS_FILE = "participants.toml"
"""Per cell: each participant's name and public key."""
HUB = "supervisor"
"""The participant whose key pair also serves the cell bus (the hub binds it)."""
RECHECK_S = 0.5
"""How often (wall seconds) a live key list looks at its files' mtimes; at most this
long after a key is removed, it is refused."""


def safe_name(name: str, what: str, where: str = "name") -> str:
    """``name`` if it is letters, digits, ``_`` and ``-`` (up to 64), else a ``ConfigError``.

    Names become file names (keys, run directories, logs) and socket
    identities; this alphabet cannot climb out of a directory or hide a
    separator.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(where, str(name)[:80], f"{what}: {SAFE_NAME_RULE}")
    return name


def cell_keys_dir(keys_dir: str | Path, cell: str) -> Path:
    """Where the participant keys of ``cell`` live in a keys directory."""
    return Path(keys_dir) / PARTICIPANTS / safe_name(cell, "a cell name", "--cell")


def read_participants(keys_dir: str | Path, cell: str) -> dict[str, str]:
    """Public key (Z85 text) to participant name, from the cell's ``participants.toml``."""
    path = cell_keys_dir(keys_dir, cell) / PARTICIPANTS_FILE
    doc = read_toml(path)
    out: dict[str, str] = {}
    for name, entry in doc.items():
        public = entry.get("public") if isinstance(entry, dict) else None
        if not _NAME.match(name) or not isinstance(public, str) or not _Z85_KEY.match(public):
            raise ConfigError(str(path), name, "expected a safe name with a Z85 public key")
        out[public] = name
    return out


def create_participant(keys_dir: str | Path, cell: str, name: str, *, force: bool = False) -> Path:
    """Make ``name``'s key pair for ``cell`` and list it; return its secret file.

    An existing pair is kept unless ``force`` (replacing it would lock out
    the process that holds it).
    """
    safe_name(name, "a participant name")
    if name == SERVER:
        raise ConfigError("keys create", name, "that name is the cell host's own key pair")
    d = cell_keys_dir(keys_dir, cell)
    secret = d / f"{name}.key_secret"
    if secret.exists() and not force:
        raise ConfigError(str(secret), "", "a key of that name exists (use --force to replace it)")
    ensure_server_keys(keys_dir)
    _private_dir(Path(keys_dir) / PARTICIPANTS)
    _private_dir(d)
    zmq.auth.create_certificates(d, name)
    secret.chmod(0o600)
    _list(d)
    return secret


def ensure_participants(keys_dir: str | Path, cell: str, names: list[str]) -> None:
    """Make the key pair of each of ``names`` that ``cell`` lacks (``--processes`` over tcp)."""
    d = cell_keys_dir(keys_dir, cell)
    for name in names:
        if not (d / f"{name}.key_secret").exists():
            create_participant(keys_dir, cell, name)


def _list(d: Path) -> None:
    """Rewrite ``participants.toml`` from the public key files beside it."""
    lines = ["# lightsout participants of one cell: name and public key (`lightsout keys`)", ""]
    for public_file in sorted(d.glob("*.key")):
        public, _ = _load(public_file)
        lines += [f"[{public_file.stem}]", f'public = "{public.decode("ascii")}"', ""]
    tmp = d / f"{PARTICIPANTS_FILE}.tmp"
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, d / PARTICIPANTS_FILE)


@dataclasses.dataclass(frozen=True, slots=True)
class NodeKeys:
    """One participant's CURVE identity: its pair, and the clock's and the hub's public keys."""

    name: str
    public: bytes
    secret: bytes
    clock_public: bytes
    hub_public: bytes

    @classmethod
    def load(cls, keys_dir: str | Path, cell: str, name: str) -> NodeKeys:
        """Read ``name``'s pair of ``cell`` (and the server's and supervisor's public keys)."""
        d = cell_keys_dir(keys_dir, cell)
        public, secret = _load(d / f"{safe_name(name, 'a participant name')}.key_secret")
        if secret is None:
            raise ConfigError(str(d / f"{name}.key_secret"), "secret-key", "missing")
        clock_public, _ = _load(Path(keys_dir) / f"{SERVER}.key")
        hub_public, _ = _load(d / f"{HUB}.key")
        return cls(name, public, secret, clock_public, hub_public)

    def client(self, sock: zmq.Socket[Any], server_public: bytes) -> None:
        """Make ``sock`` a CURVE client of ``server_public`` (before ``connect``)."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = server_public

    def serve(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server with this pair, admitting participants (before ``bind``)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.zap_domain = PARTICIPANTS.encode()


def route_id(name: str) -> bytes:
    """A fresh routing identity for ``name``'s connection under CURVE: ``name/nonce``.

    The receiver routes by the authenticated key, never by this text; the
    nonce only keeps a restarted process from colliding with its old
    connection while the old one is still being torn down.
    """
    return f"{name}/{secrets.token_hex(6)}".encode()


_LIVE: weakref.WeakSet[LiveKeys] = weakref.WeakSet()


def reload_all() -> None:
    """Make every key list of this process re-read its files (the SIGHUP handler)."""
    for keys in list(_LIVE):
        keys.reload_soon()


class LiveKeys:
    """The client roles and participant names of a keys directory, re-read when they change.

    Shared by the ZAP handler thread and the sockets' thread: each lookup
    sees the last complete read (a broken file keeps the previous lists and
    says so once).
    """

    def __init__(self, keys_dir: str | Path, cell: str, *, server: bool = True) -> None:
        """``server``: this process binds the clock, control and telemetry (the cell host), so
        the keys must hold the host's secret key; the supervisor's process needs only the
        participants' public keys."""
        self.keys_dir = Path(keys_dir)
        self.cell = cell
        self.roles: dict[str, str] = {}
        """Client public key to role."""
        self.names: dict[str, str] = {}
        """Participant public key to name."""
        self.reloads = 0
        """Times a changed file was read again (tests and the log)."""
        self._stamp: tuple[float, ...] = ()
        self._checked = 0.0
        self._lock = threading.Lock()
        self._forced = threading.Event()
        if server:
            server_keys(keys_dir)  # fail now, not at the first handshake
        self.refresh(force=True)
        _LIVE.add(self)

    def _files(self) -> tuple[Path, Path]:
        return (
            self.keys_dir / "roles.toml",
            cell_keys_dir(self.keys_dir, self.cell) / PARTICIPANTS_FILE,
        )

    def reload_soon(self) -> None:
        """Re-read at the next lookup whatever the mtimes say (a SIGHUP handler calls this)."""
        self._forced.set()

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the files if they changed (looked at every ``RECHECK_S``); whether they did."""
        now = time.monotonic()
        force = force or self._forced.is_set()
        if not force and now - self._checked < RECHECK_S:
            return False
        with self._lock:
            self._checked = now
            self._forced.clear()
            stamp = tuple(p.stat().st_mtime_ns if p.exists() else -1.0 for p in self._files())
            if stamp == self._stamp and not force:
                return False
            try:
                roles = read_roles(self.keys_dir)
                names = read_participants(self.keys_dir, self.cell)
            except ConfigError as exc:
                log.error("keys: %s; keeping the keys read before", exc)
                self._stamp = stamp
                return False
            self.roles, self.names, self._stamp = roles, names, stamp
            self.reloads += 1
            return True

    def role(self, user: str | None) -> str | None:
        """The client role of public key ``user`` now, or None."""
        self.refresh()
        role = self.roles.get(user) if user else None
        return role if role in ROLES else None

    def name(self, user: str | None) -> str | None:
        """The participant name of public key ``user`` now, or None."""
        self.refresh()
        return self.names.get(user) if user else None


class _Provider:
    """ZAP credentials: a client key for ``CLIENTS``, a participant key for ``PARTICIPANTS``."""

    def __init__(self, keys: LiveKeys) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        user = key.decode("ascii", "replace")
        if domain == PARTICIPANTS:
            return self.keys.name(user) is not None
        return self.keys.role(user) is not None


_ZAP: dict[int, tuple[ThreadAuthenticator, int]] = {}
_ZAP_LOCK = threading.Lock()


def start_zap(ctx: zmq.Context[Any], keys: LiveKeys) -> ThreadAuthenticator:
    """The ZAP handler of ``ctx`` (one per context; started on first use, shared after).

    Pair every call with ``stop_zap(ctx)``; the last one stops it.
    """
    with _ZAP_LOCK:
        got = _ZAP.get(id(ctx))
        if got is not None:
            _ZAP[id(ctx)] = (got[0], got[1] + 1)
            return got[0]
        auth = ThreadAuthenticator(ctx)
        auth.start()
        provider = _Provider(keys)
        auth.configure_curve_callback(PARTICIPANTS, credentials_provider=provider)
        auth.configure_curve_callback(CLIENTS, credentials_provider=provider)
        _ZAP[id(ctx)] = (auth, 1)
        return auth


def stop_zap(ctx: zmq.Context[Any]) -> None:
    """Release ``ctx``'s ZAP handler (stopped when its last user lets go)."""
    with _ZAP_LOCK:
        got = _ZAP.pop(id(ctx), None)
        if got is None:
            return
        auth, users = got
        if users > 1:
            _ZAP[id(ctx)] = (auth, users - 1)
            return
    auth.stop()


def user_of(frame: Any) -> str | None:
    """The ZAP User-Id (the sender's public key, Z85) of a frame received with ``copy=False``."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError):
        return None
    return user if isinstance(user, str) and user else None


class RateLog:
    """Warnings at most once per ``every_s`` per key, with a count of those held back.

    A flood of bad input must not become a flood of log lines (disk and CPU).
    """

    def __init__(self, logger: logging.Logger, every_s: float = 5.0) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` now unless ``key`` was logged less than ``every_s`` ago."""
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return
        if len(self._last) > 1024:  # keys come from peers: bounded too
            self._last.clear()
            self._held.clear()
        held = self._held.pop(key, 0)
        self._last[key] = now
        suffix = f" ({held} more like it not shown)" if held else ""
        self.logger.warning(msg + suffix, *args)


_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class HandshakeWatch:
    """Counts the connections a CURVE server socket turned away, and those it lost.

    A peer with no key, or a key ZAP does not admit, never gets a message
    through: the only trace of its attempt is a failed handshake. A peer
    that sends a frame over ``MAX_FRAME`` is disconnected by ZeroMQ.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.failed = 0
        """Handshakes that failed (no key, an unknown or revoked key, not CURVE at all)."""
        self.disconnected = 0
        """Connections that ended (a peer left, or was dropped for an oversize frame)."""
        self._monitor: zmq.Socket[Any] | None = sock.get_monitor_socket(
            _FAILED | zmq.EVENT_DISCONNECTED
        )

    def count(self) -> None:
        """Take the events waiting (never blocks; bounded per call)."""
        mon = self._monitor
        if mon is None:
            return
        for _ in range(1024):
            try:
                frames = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = int.from_bytes(frames[0][:2], "little")
            if event & _FAILED:
                self.failed += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.disconnected += 1

    def close(self, sock: zmq.Socket[Any] | None) -> None:
        """Stop watching (before ``sock`` closes)."""
        if self._monitor is not None:
            if sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None


class Quota:
    """Messages counted per sender over a tick, or ``window_s`` of wall time if shorter.

    ``take`` says how many this sender has sent in the current window (this
    one included); the caller refuses past its limit. ``reset`` starts a new
    window (a tick has passed). Senders come from peers, so their number is
    bounded too. While ``backlog`` is set (messages were left queued when the
    reader stopped), wall time does not end the window: a burst is one burst
    however slowly a loaded reader drains it.
    """

    def __init__(self, window_s: float = 0.1, max_senders: int = 4096) -> None:
        self.window_s = window_s
        self.max_senders = max_senders
        self.backlog = False
        self._seen: dict[Any, int] = {}
        self._since = 0.0

    def reset(self) -> None:
        """A new window starts now."""
        self._seen, self._since = {}, time.monotonic()

    def take(self, sender: Any) -> int:
        """Count one message of ``sender``; how many it has sent in this window."""
        now = time.monotonic()
        if now - self._since > self.window_s and not self.backlog:
            self._seen, self._since = {}, now
        n = self._seen.get(sender, 0) + 1
        if n == 1 and len(self._seen) >= self.max_senders:
            self._seen = {}
        self._seen[sender] = n
        return n
