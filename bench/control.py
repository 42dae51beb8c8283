"""Control round trip and telemetry rate of a running cell, beside raw pyzmq.

For each transport (ipc, tcp, tcp with CURVE and roles), a cell runs in its own process (``lightsout
run --endpoint ...``, as fast as it can) and this process measures:

* the round trip of ``status`` on the control socket (p50 / p99), beside a
  raw pyzmq REQ/REP echo of a payload of the same size on the same transport;
* telemetry frames per second received by one subscriber to every topic,
  beside the frames per second a raw PUB/SUB pair moves on that transport.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

from bus.codec import decode, encode
from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from bus.messages import ControlReply, ControlRequest
from bus.security import CurveKeys, create_key

ROOT = Path(__file__).resolve().parents[1]


def _pcts(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(0.99 * len(s)))]


def raw_reqrep(addr: str, payload: bytes, n: int) -> tuple[float, float]:
    """p50 / p99 round trip (µs) of a raw REQ/REP echo."""
    ctx: zmq.Context[Any] = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(addr)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if rep.poll(50):
                rep.send(rep.recv())

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(addr)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        req.send(payload)
        req.recv()
        times.append((time.perf_counter() - t0) * 1e6)
    stop.set()
    t.join()
    req.close()
    rep.close()
    ctx.term()
    return _pcts(times[n // 10 :])


def raw_pubsub(addr: str, payload: bytes, seconds: float) -> float:
    """Frames per second a raw PUB/SUB pair moves."""
    ctx: zmq.Context[Any] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.bind(addr)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(addr)
    time.sleep(0.3)  # let the subscription reach the publisher (slow joiner)
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                pub.send_multipart([b"joints", payload], zmq.NOBLOCK)
            except zmq.Again:
                time.sleep(0)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    got = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if sub.poll(100):
            sub.recv_multipart()
            got += 1
    rate = got / (time.perf_counter() - t0)
    stop.set()
    t.join()
    pub.close()
    sub.close()
    ctx.term()
    return rate


class RunningCell:
    """``lightsout run`` in a subprocess, reachable at ``base`` (with CURVE if ``curve``)."""

    def __init__(self, base: str, *, curve: bool = False) -> None:
        self.base = base
        self.ends = Endpoints.from_base(base)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.ctl = self.ctx.socket(zmq.DEALER)
        self.ctl.setsockopt(zmq.LINGER, 0)
        self.tmp = tempfile.TemporaryDirectory()
        cmd = [
            sys.executable, "-m", "clients.cli", "run", str(ROOT / "cells" / "assembly.toml"),
            "--duration", "36000", "--endpoint", base, "-q", "--runs-dir", self.tmp.name,
        ]  # fmt: skip
        self.keys: CurveKeys | None = None
        if curve:
            keys = Path(self.tmp.name) / "keys"
            create_key(keys, "bench", "admin")
            self.keys = CurveKeys.from_files(keys / "bench.key_secret")
            self.keys.apply(self.ctl)
            cmd += ["--keys", str(keys)]
        elif base.startswith("tcp://"):
            cmd.append("--insecure")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ctl.connect(self.ends.control)

    def request(self, command: ControlCommand, timeout_s: float = 60.0) -> ControlReply:
        self.ctl.send(encode(ControlRequest(uuid.uuid4().hex, command)))
        if not self.ctl.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no answer to {command.value} from {self.base}")
        reply = decode(self.ctl.recv())
        assert isinstance(reply, ControlReply)
        return reply

    def status_round_trip(self, n: int) -> tuple[float, float, int]:
        self.request(ControlCommand.STATUS)  # wait until it is up
        times = []
        size = 0
        for _ in range(n):
            req = encode(ControlRequest(uuid.uuid4().hex, ControlCommand.STATUS))
            size = len(req)
            t0 = time.perf_counter()
            self.ctl.send(req)
            self.ctl.recv()
            times.append((time.perf_counter() - t0) * 1e6)
        p50, p99 = _pcts(times[n // 10 :])
        return p50, p99, size

    def telemetry_rate(self, seconds: float) -> float:
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 100_000)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if self.keys is not None:
            self.keys.apply(sub)
        sub.connect(self.ends.telemetry)
        got = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if sub.poll(100):
                sub.recv_multipart()
                got += 1
        sub.close()
        return got / (time.perf_counter() - t0)

    def close(self) -> None:
        try:
            self.request(ControlCommand.SHUTDOWN, timeout_s=10)
            self.proc.wait(timeout=60)
        except (TimeoutError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.ctl.close()
        self.ctx.term()
        self.tmp.cleanup()


def run(n: int = 500, seconds: float = 3.0) -> list[tuple[str, str, float, float, str]]:
    """Rows of (transport, what, value, raw, unit)."""
    rows = []
    for transport in ("ipc", "tcp", "tcp+curve"):
        if transport == "ipc":
            d = tempfile.mkdtemp(prefix="lightsout-bench-")
            os.chmod(d, 0o700)
            base, raw_addr = f"ipc://{d}", f"ipc://{d}/raw.sock"
        else:
            base, raw_addr = "tcp://127.0.0.1:47100", "tcp://127.0.0.1:47190"
        cell = RunningCell(base, curve=transport.endswith("curve"))
        try:
            p50, p99, size = cell.status_round_trip(n)
            rate = cell.telemetry_rate(seconds)
        finally:
            cell.close()
        r50, r99 = raw_reqrep(raw_addr, b"x" * size, n * 4)
        raw_rate = raw_pubsub(
            raw_addr.replace("raw", "rawpub").replace(":47190", ":47191"), b"x" * 600, seconds
        )
        rows += [
            (transport, "status round trip p50", p50, r50, "µs"),
            (transport, "status round trip p99", p99, r99, "µs"),
            (transport, "telemetry frames/s", rate, raw_rate, "1/s"),
        ]
    return rows
