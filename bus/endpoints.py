"""Endpoint naming: one base address gives every socket of a cell.

Transport is configuration (DESIGN principle 2): the same code binds
``inproc://`` in one process, ``ipc://`` across processes on a host and
``tcp://`` across hosts; only this base changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import stat
import tempfile

from bus.errors import ConfigError

SOCKETS = ("clock", "cell", "control", "telemetry")
"""The sockets of a cell, in port order for ``tcp://``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoints:
    """The addresses of one cell's sockets."""

    base: str
    clock: str
    cell: str
    control: str
    telemetry: str

    @property
    def transport(self) -> str:
        """``inproc``, ``ipc`` or ``tcp``."""
        return self.base.split("://", 1)[0]

    @classmethod
    def from_base(cls, base: str) -> Endpoints:
        """Derive every socket's address from ``base``.

        ``inproc://NAME`` and ``ipc://DIR`` get one name per socket
        (``ipc://DIR/clock.sock``; DIR must exist); ``tcp://HOST:PORT`` uses
        ``PORT`` for the clock and the next three ports for the rest.
        """
        scheme, sep, rest = base.partition("://")
        if not sep or not rest:
            raise ConfigError(
                "--endpoint", base, "expected inproc://NAME, ipc://DIR or tcp://HOST:PORT"
            )
        if scheme == "inproc":
            names = {s: f"inproc://{rest}/{s}" for s in SOCKETS}
        elif scheme == "ipc":
            names = {s: f"ipc://{os.path.join(rest, s)}.sock" for s in SOCKETS}
        elif scheme == "tcp":
            host, colon, port = rest.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65532:
                raise ConfigError("--endpoint", base, "tcp needs HOST:PORT with a port below 65532")
            names = {s: f"tcp://{host}:{int(port) + i}" for i, s in enumerate(SOCKETS)}
        else:
            why = f"unknown transport {scheme!r}: use inproc, ipc or tcp"
            raise ConfigError("--endpoint", base, why)
        return cls(base=base, **names)


def ensure_ipc_dir(base: str) -> bool:
    """For an ``ipc://DIR`` base, make DIR (mode 0700) if it is missing; whether it did.

    A DIR that is there must be this user's and writable by nobody else: whoever can
    write in it can put a socket of their own where a client looks for the cell's.
    """
    scheme, _, rest = base.partition("://")
    if scheme != "ipc" or not rest:
        return False
    if not os.path.lexists(rest):
        os.makedirs(rest, mode=0o700, exist_ok=True)
        os.chmod(rest, 0o700)
        return True
    check_ipc_dir(rest)
    return False


def check_ipc_dir(path: str) -> None:
    """A ``ConfigError`` unless ``path`` is a real directory of this user that others cannot write."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ConfigError("--endpoint", f"ipc://{path}", "not a directory (or a symbolic link)")
    if st.st_uid != os.getuid():
        raise ConfigError("--endpoint", f"ipc://{path}", "the directory is another user's")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"others may write in the directory (mode {stat.S_IMODE(st.st_mode):o}); chmod 700"
        raise ConfigError("--endpoint", f"ipc://{path}", why)


def remove_ipc(base: str, *, remove_dir: bool = False) -> None:
    """Remove the socket files of an ``ipc://DIR`` base (and DIR, if asked and then empty).

    ZeroMQ leaves an ipc socket's file behind when the socket closes; a file
    left there looks like a cell to the next client and fails its connect
    quietly. Anything else in DIR is left alone.
    """
    scheme, _, rest = base.partition("://")
    if scheme != "ipc" or not rest:
        return
    for name in SOCKETS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(rest, f"{name}.sock"))
    if remove_dir:
        with contextlib.suppress(OSError):  # not empty, or gone: leave it
            os.rmdir(rest)


def private_ipc_base(prefix: str = "lightsout-") -> str:
    """A fresh ``ipc://`` base in a directory only this user can enter (mode 0700).

    The directory's permissions are what guard ipc sockets: anyone who can
    reach the socket file can speak to the cell.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o700)
    return f"ipc://{path}"


def check_tcp_keys(base: str | None, keys: object, insecure: bool) -> None:
    """A ``ConfigError`` for a ``tcp://`` base with no keys, unless ``insecure`` was asked for.

    Over tcp anyone who can reach the host can reach the sockets; only CURVE
    (``--keys``) tells the cell's own processes and clients from the rest.
    """
    if base and base.startswith("tcp://") and keys is None and not insecure:
        why = "a tcp endpoint needs --keys DIR (lightsout keys create), or --insecure"
        raise ConfigError("--endpoint", base, why)


def free_port(host: str = "127.0.0.1", span: int = 1) -> int:
    """A port on ``host`` with the ``span - 1`` after it free too, now (a cell binds four; a
    factory's line hosts each take four on a loopback address of their own)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port + span >= 65532:
            continue
        try:
            for p in range(port + 1, port + span):
                with socket.socket() as s:
                    s.bind((host, p))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {span} free ports in a row on {host}")


def free_loopback_base() -> str:
    """A ``tcp://127.0.0.1:PORT`` base whose four ports (PORT .. PORT+3) are free now
    (for benchmarks and tests that start a cell over tcp on this host)."""
    return f"tcp://127.0.0.1:{free_port('127.0.0.1', 4)}"
