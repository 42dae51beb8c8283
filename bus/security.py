"""Who may do what: CurveZMQ keys, the roles file and the ZAP authenticator.

Across hosts (``tcp://``) the control and telemetry sockets are guarded by
CurveZMQ: the cell host has a key pair (``server.key`` / ``server.key_secret``),
every client has one, and ``roles.toml`` says which client public keys may
connect and with which role. Roles are ordered: a ``viewer`` may ask
``status`` and ``snapshot`` and subscribe to telemetry, an ``operator`` may
also steer (robot and cell commands, faults, pace, orders), an ``admin`` may
also end the run. ``ControlCommand``'s docstrings name the same roles.

Key files are pyzmq's (``zmq.auth.create_certificates``), so any ZeroMQ
binding can load them. This module imports nothing of ours but ``bus``, so
the cell host can use it as it is (or it can move into ``bus`` unchanged).

Server side, in the process that binds the sockets::

    auth, roles = start_auth(ctx, keys_dir)       # before binding
    apply_server(control_socket, keys_dir)        # and the telemetry socket
    ...
    frames = control_socket.recv_multipart(copy=False)
    role = role_of(frames[-1], roles)             # None: not a known key
    if not permits(role, request.command): ...    # answer code "forbidden"
    ...
    auth.stop()
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from bus.enums import ControlCommand
from bus.errors import ConfigError

ROLES = ("viewer", "operator", "admin")
"""Roles from least to most trusted; each may do all that the ones before it may."""

SERVER = "server"
"""The name of the cell host's key pair in a keys directory."""

ROLES_FILE = "roles.toml"
"""The file in a keys directory that maps client public keys to roles."""

REQUIRED_ROLE: dict[ControlCommand, str] = {
    ControlCommand.STATUS: "viewer",
    ControlCommand.SNAPSHOT: "viewer",
    ControlCommand.ROBOT: "operator",
    ControlCommand.CELL: "operator",
    ControlCommand.FAULT: "operator",
    ControlCommand.PACE: "operator",
    ControlCommand.ORDER: "operator",
    ControlCommand.SHUTDOWN: "admin",
}
"""The least role that may send each control request."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
SAFE_NAME = _NAME
"""Names that become file names or socket identities (keys, runs, cells, robots, stations):
they cannot climb out of a directory, hide a separator or grow without bound."""
SAFE_NAME_RULE = "a name is a letter or digit, then letters, digits, _ and - (up to 64)"
_Z85_KEY = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def permits(role: str | None, command: ControlCommand) -> bool:
    """True if ``role`` may send ``command``; an unknown or missing role may send nothing."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(REQUIRED_ROLE[command])


@dataclasses.dataclass(frozen=True, slots=True)
class CurveKeys:
    """A client's CURVE identity: its key pair and the public key of the server it trusts.

    Keys are the 40-character Z85 text of ``zmq.curve_keypair``, as bytes.
    """

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_files(
        cls, secret_file: str | Path, server_file: str | Path | None = None
    ) -> CurveKeys:
        """Load a client's ``NAME.key_secret`` and the server's ``server.key``.

        ``server_file`` defaults to ``server.key`` beside the secret file, as
        ``lightsout keys create`` lays them out.
        """
        secret_path = Path(secret_file)
        server_path = Path(server_file) if server_file else secret_path.parent / f"{SERVER}.key"
        public, secret = _load(secret_path)
        if secret is None:
            raise ConfigError(str(secret_path), "secret-key", "not a secret key file (.key_secret)")
        server_public, _ = _load(server_path)
        return cls(public=public, secret=secret, server_public=server_public)

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the server (before ``connect``)."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``create_key`` made."""

    name: str
    role: str
    public: str
    public_file: Path
    secret_file: Path
    roles_file: Path


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise ConfigError(str(path), "", "no such key file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "", f"not a key file: {exc}") from None
    if not public or not _Z85_KEY.match(public.decode("ascii", "replace")):
        raise ConfigError(str(path), "public-key", "missing or not a 40-character Z85 key")
    return public, secret


def read_roles(keys_dir: str | Path) -> dict[str, str]:
    """Client public key (Z85 text) to role, from ``keys_dir/roles.toml``.

    A missing file is no keys (nobody may connect); a broken one is a
    ``ConfigError`` naming the entry, so a typo never silently grants access.
    """
    path = Path(keys_dir) / ROLES_FILE
    return {entry["public"]: entry["role"] for entry in _read_entries(path).values()}


def read_toml(path: Path) -> dict[str, Any]:
    """A keys file's TOML ({} if it is missing), or a ``ConfigError`` naming it."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), "", f"not readable TOML: {exc}") from None


def _read_entries(path: Path) -> dict[str, dict[str, str]]:
    doc = read_toml(path)
    entries: dict[str, dict[str, str]] = {}
    for name, entry in doc.items():
        if not isinstance(entry, dict):
            raise ConfigError(str(path), name, "expected a table with role and public")
        role, public = entry.get("role"), entry.get("public")
        if role not in ROLES:
            raise ConfigError(
                str(path), f"{name}.role", f"{role!r} is not one of {', '.join(ROLES)}"
            )
        if not isinstance(public, str) or not _Z85_KEY.match(public):
            raise ConfigError(str(path), f"{name}.public", "not a 40-character Z85 public key")
        extra = set(entry) - {"role", "public"}
        if extra:
            raise ConfigError(str(path), name, f"unknown key(s) {', '.join(sorted(extra))}")
        entries[name] = {"role": role, "public": public}
    return entries


def _write_entries(path: Path, entries: dict[str, dict[str, str]]) -> None:
    lines = [
        "# lightsout roles: which client keys may connect, and what they may do",
        "# (viewer < operator < admin). Written by `lightsout keys create`.",
        "",
    ]
    for name in sorted(entries):
        e = entries[name]
        lines += [f"[{name}]", f'role = "{e["role"]}"', f'public = "{e["public"]}"', ""]
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def _private_dir(keys_dir: Path) -> None:
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)


def ensure_server_keys(keys_dir: str | Path) -> Path:
    """Create the cell host's key pair in ``keys_dir`` unless it is there; its public file."""
    d = Path(keys_dir)
    public = d / f"{SERVER}.key"
    if not public.exists():
        _private_dir(d)
        _, secret = zmq.auth.create_certificates(d, SERVER)
        Path(secret).chmod(0o600)
    return public


def create_key(keys_dir: str | Path, name: str, role: str, *, force: bool = False) -> KeyInfo:
    """Make ``NAME.key`` / ``NAME.key_secret`` with ``role`` in ``roles.toml`` (and the server pair).

    An existing key of that name is kept unless ``force``: replacing it
    silently would lock its holder out.
    """
    d = Path(keys_dir)
    if not _NAME.match(name):
        raise ConfigError("keys create", name, "a name is letters, digits, _ and - (up to 64)")
    if name == SERVER:
        raise ConfigError("keys create", name, "that name is the cell host's own key pair")
    if role not in ROLES:
        raise ConfigError("keys create", "--role", f"{role!r} is not one of {', '.join(ROLES)}")
    roles_path = d / ROLES_FILE
    entries = _read_entries(roles_path)
    public_file, secret_file = d / f"{name}.key", d / f"{name}.key_secret"
    if not force and (name in entries or public_file.exists() or secret_file.exists()):
        raise ConfigError(
            str(public_file), "", "a key of that name exists (use --force to replace it)"
        )
    _private_dir(d)
    ensure_server_keys(d)
    zmq.auth.create_certificates(d, name)
    secret_file.chmod(0o600)
    public, _ = _load(public_file)
    entries[name] = {"role": role, "public": public.decode("ascii")}
    _write_entries(roles_path, entries)
    return KeyInfo(name, role, public.decode("ascii"), public_file, secret_file, roles_path)


def server_keys(keys_dir: str | Path) -> tuple[bytes, bytes]:
    """The cell host's (public, secret) key from ``keys_dir/server.key_secret``."""
    public, secret = _load(Path(keys_dir) / f"{SERVER}.key_secret")
    if secret is None:
        raise ConfigError(str(Path(keys_dir) / f"{SERVER}.key_secret"), "secret-key", "missing")
    return public, secret


def apply_server(sock: zmq.Socket[Any], keys_dir: str | Path) -> None:
    """Make ``sock`` a CURVE server with the cell host's keys (before ``bind``)."""
    public, secret = server_keys(keys_dir)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


class _Known:
    """ZAP credentials provider: a key may connect if ``roles.toml`` lists it."""

    def __init__(self, roles: dict[str, str]) -> None:
        self.roles = roles

    def callback(self, domain: str, key: bytes) -> bool:
        return key.decode("ascii", "replace") in self.roles


def start_auth(
    ctx: zmq.Context[Any], keys_dir: str | Path
) -> tuple[ThreadAuthenticator, dict[str, str]]:
    """Start ZAP for every CURVE server socket of ``ctx``; return it and the roles it admits.

    Only keys in ``roles.toml`` pass the handshake; a connection's ZAP
    User-Id is its public key in Z85, so ``role_of`` finds its role from any
    frame it sent. Call ``stop()`` on the authenticator before ``ctx.term()``.
    Keys added while the cell runs take effect at its next start.
    """
    roles = read_roles(keys_dir)
    server_keys(keys_dir)  # fail now, not at the first handshake
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback("*", credentials_provider=_Known(roles))
    return auth, roles


def role_of(frame: zmq.Frame, roles: dict[str, str]) -> str | None:
    """The role of the peer that sent ``frame`` (received with ``copy=False``), or None."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return roles.get(user) if isinstance(user, str) else None
