"""A control client written from docs/protocol.md alone: raw pyzmq and msgpack.

Nothing of lightsout is imported here, on purpose: what these helpers do is
what a program in any language can do with a ZeroMQ binding and a msgpack
library, knowing only the protocol page. ``Cell`` starts a real cell with
``lightsout run --endpoint ipc://DIR`` and talks to the sockets under DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = ("clock", "cell", "control", "telemetry")
"""The socket files of an ``ipc://DIR`` cell (the protocol page's socket table)."""

T = TypeVar("T")


def eventually(probe: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)  # between probes; the deadline bounds the wait
    raise AssertionError(f"timed out waiting for {what}")


def pack(fields: dict[str, Any]) -> bytes:
    """A msgpack map, as any msgpack library writes it."""
    return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(payload: bytes) -> dict[str, Any]:
    """A msgpack map, checked to be one."""
    obj = msgpack.unpackb(payload, raw=False)
    assert isinstance(obj, dict), obj
    return obj


def request_map(
    command: str, target: str = "", action: str = "", value: float = 0.0, **more: Any
) -> dict[str, Any]:
    """A ``control_request`` with a fresh ``cmd_id`` (override it with ``cmd_id=``)."""
    fields: dict[str, Any] = {"type": "control_request", "v": 1, "cmd_id": uuid.uuid4().hex}
    fields.update(command=command, target=target, action=action, value=value, **more)
    return fields


class Cell:
    """A running cell (``lightsout run`` over ipc) and one DEALER on its control socket."""

    def __init__(self, runs: Path, *, tcp: str = "", extra: Sequence[str] = ()) -> None:
        """Over ``ipc://`` in a fresh private directory, or over ``tcp`` (``tcp://HOST:PORT``)."""
        self.runs = runs
        self.dir = tempfile.mkdtemp(prefix="lo-raw-")
        os.chmod(self.dir, 0o700)  # the directory guards ipc sockets
        if tcp:
            host, _, port = tcp.rpartition(":")
            self.base = tcp
            self.control, self.telemetry = f"{host}:{int(port) + 2}", f"{host}:{int(port) + 3}"
        else:
            self.base = f"ipc://{self.dir}"
            self.control = f"ipc://{self.dir}/control.sock"
            self.telemetry = f"ipc://{self.dir}/telemetry.sock"
        self.curve: dict[int, bytes] = {}
        """Socket options a CURVE client sets before it connects (``use_keys``)."""
        self.log = (runs / "cell.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "clients.cli", "run", "cells/assembly.toml"),
                *("--duration", "3600", "--endpoint", self.base),
                *("--runs-dir", str(runs), "-q", *extra),
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.dealer()

    def use_keys(self, secret_file: Path, server_file: Path) -> None:
        """Speak CURVE with the key pair in ``secret_file``, trusting ``server_file``'s key.

        The files are read as the protocol page describes them (ZeroMQ
        certificate text, Z85 keys in quotes), not with a binding's loader.
        """
        ours, server = read_certificate(secret_file), read_certificate(server_file)
        self.curve = {
            zmq.CURVE_PUBLICKEY: ours["public-key"],
            zmq.CURVE_SECRETKEY: ours["secret-key"],
            zmq.CURVE_SERVERKEY: server["public-key"],
        }
        self.sock.close(0)
        self.sock = self.dealer()

    def dealer(self) -> zmq.Socket[Any]:
        """A fresh DEALER on the control socket (a CURVE client after ``use_keys``)."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in self.curve.items():
            sock.setsockopt(option, value)
        sock.connect(self.control)
        return sock

    def subscriber(self, *topics: bytes, rcvhwm: int = 1000, rcvbuf: int = -1) -> zmq.Socket[Any]:
        """A SUB on the telemetry socket, subscribed to ``topics`` (``rcvbuf`` -1: the OS's)."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, rcvhwm)
        sub.setsockopt(zmq.RCVBUF, rcvbuf)
        for option, value in self.curve.items():
            sub.setsockopt(option, value)
        sub.connect(self.telemetry)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        return sub

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the control socket answers and every robot is in Execute."""
        if self.control.startswith("ipc://"):
            sock_file = self.control.removeprefix("ipc://")
            eventually(lambda: os.path.exists(sock_file), "the control socket", timeout_s)
        else:
            eventually(self._answers, "the control socket", timeout_s)
        eventually(
            lambda: set(self.robots().values()) == {"Execute"}, "every robot in Execute", timeout_s
        )

    def _answers(self) -> bool:
        """Whether ``status`` is answered within a second (a fresh socket each time)."""
        sock = self.dealer()
        try:
            fields = request_map("status")
            sock.send(pack(fields))
            return bool(sock.poll(1000))
        finally:
            sock.close(0)

    def send(self, payload: bytes, *more: bytes) -> None:
        self.sock.send_multipart([payload, *more])

    def receive(self, timeout_s: float = 10.0) -> dict[str, Any]:
        assert self.sock.poll(int(timeout_s * 1000)), "no reply"
        frames = self.sock.recv_multipart()
        assert len(frames) == 1, "a reply to a DEALER is one frame"
        return unpack(frames[0])

    def ask(self, fields: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """Send one request map; its reply (late replies to other ids are skipped)."""
        self.send(pack(fields))
        while True:
            reply = self.receive(timeout_s)
            if reply["cmd_id"] == fields["cmd_id"]:
                return reply

    def request(
        self,
        command: str,
        target: str = "",
        action: str = "",
        value: float = 0.0,
        *,
        cmd_id: str | None = None,
        timeout_s: float = 10.0,
        **more: Any,
    ) -> dict[str, Any]:
        fields = request_map(command, target, action, value, **more)
        if cmd_id is not None:
            fields["cmd_id"] = cmd_id
        return self.ask(fields, timeout_s)

    def status(self) -> dict[str, Any]:
        """The ``cell_status`` map."""
        status = self.request("status")["status"]
        assert isinstance(status, dict)
        return status

    def robots(self) -> dict[str, str]:
        """Robot name to PackML state, from ``status``."""
        return {r["robot"]: r["state"] for r in self.status()["robots"]}

    def sim_seconds(self, seconds: float, timeout_s: float = 120.0) -> None:
        """Wait until ``seconds`` of sim time have passed."""
        t0 = self.status()["t_ns"]
        eventually(
            lambda: self.status()["t_ns"] >= t0 + seconds * 1e9,
            f"{seconds} s of sim time",
            timeout_s,
        )

    def rss_kib(self) -> int:
        """The cell process's resident memory (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def socket_files(self) -> list[str]:
        """The ipc socket files still in the cell's directory."""
        return [s for s in SOCKETS if os.path.exists(os.path.join(self.dir, f"{s}.sock"))]

    def terminate(self) -> int:
        """End the cell with SIGTERM, as a service manager does; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> int:
        """Shut the cell down (if it runs) and free everything; its exit code."""
        try:
            if self.proc.poll() is None:
                self.request("shutdown")
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.sock.close(0)
            self.ctx.term()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)


CERT_KEY = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"(.{40})"\s*$', re.M)
"""A key line of a ZeroMQ certificate: the name and the 40-character Z85 key."""


def read_certificate(path: Path) -> dict[str, bytes]:
    """``public-key`` (and ``secret-key``) of a certificate file, as Z85 bytes."""
    found = {name: key.encode("ascii") for name, key in CERT_KEY.findall(path.read_text())}
    assert "public-key" in found, f"{path}: no public-key line"
    return found


def free_tcp_base() -> str:
    """A ``tcp://127.0.0.1:PORT`` base whose four ports (PORT .. PORT+3) are free now (its
    own copy of ``bus.endpoints.free_loopback_base``: this kit uses none of the project's code)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 65000:
            continue
        try:
            for p in range(port, port + 4):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return f"tcp://127.0.0.1:{port}"
    raise AssertionError("no four free ports")
