"""Attacks on a real multi-process cell over tcp:// with keys, one after another on ONE run.

The cell is ``lightsout run --processes --endpoint tcp://... --keys DIR``: the sim
server here, the supervisor and four agents as processes of their own, every socket
CURVE. The attackers are this test process: one with no key at all, one with a key
nobody listed, and one holding robot R4's own participant key (a stolen key) that
tries to be someone else. After each attack: it was refused and counted (the cell's
``snapshot`` says by whom), the cell kept going, memory stayed bounded. At the end
(last test): units were shipped after the attacks, the ledger balances, the audit
passes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
import zmq.auth

from bus.codec import encode
from bus.endpoints import Endpoints
from bus.enums import OpStatus
from bus.messages import Bid, Count, Done, Envelope, Inspection, Join, OpReport
from bus.security import CurveKeys, create_key
from bus.simtime import NS
from bus.trust import cell_keys_dir
from cells.audit import audit_run
from clients.control import ControlClient, ControlError, NoAnswer, Subscriber
from sim.host import CLIENT_WINDOW_S, MAX_PER_CLIENT_TICK
from tests.clients.rawkit import eventually, free_tcp_base

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> dict[str, int]:
    """The participant processes under ``pid``: name (supervisor, R1...) to pid."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"cells.node" in cmd:
                role = cmd[cmd.index(b"cells.node") + 1].decode()
                name = cmd[cmd.index(b"--robot") + 1].decode() if b"--robot" in cmd else role
                out[name] = int(child)
    return out


class Cell:
    """The running cell, its keys, and sockets for the attackers."""

    def __init__(self, tmp: Path) -> None:
        self.keys = tmp / "keys"
        for name, role in (("boss", "admin"), ("view", "viewer"), ("op", "operator")):
            create_key(self.keys, name, role)
        stranger = tmp / "stranger"
        stranger.mkdir()
        zmq.auth.create_certificates(stranger, "stranger")
        self.stranger = zmq.auth.load_certificate(stranger / "stranger.key_secret")
        self.base = free_tcp_base()
        self.ep = Endpoints.from_base(self.base)
        self.runs = tmp / "runs"
        cmd = [sys.executable, "-m", "clients.cli", "run", str(ROOT / "cells" / "assembly.toml")]
        cmd += ["--processes", "--duration", "3600", "--endpoint", self.base]
        cmd += ["--keys", str(self.keys), "-q", "--runs-dir", str(self.runs)]
        self.log = (tmp / "cell.log").open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.socks: list[zmq.Socket[Any]] = []
        self.attacks_end_ns = 0

    def client(self, name: str = "view", **kw: Any) -> ControlClient:
        return ControlClient(
            self.base, curve=CurveKeys.from_files(self.keys / f"{name}.key_secret"), **kw
        )

    def snapshot(self) -> dict[str, Any]:
        with self.client() as c:
            return c.snapshot()

    def t_ns(self) -> int:
        with self.client() as c:
            return c.status().t_ns

    def security(self) -> dict[str, int]:
        return dict(self.snapshot()["security"])

    def bus(self) -> dict[str, int]:
        return dict(self.snapshot()["kpis"].get("bus", {}))

    def sock(self, kind: int, where: str, *, key: str | None = "", server: str = "") -> Any:
        """A socket to ``where``: no key (``key=None``), the stranger's (``""``), or a
        participant's (``R4``), trusting ``server`` (``server`` or ``supervisor``)."""
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        if key is not None:
            if key:
                public, secret = zmq.auth.load_certificate(
                    cell_keys_dir(self.keys, "assembly") / f"{key}.key_secret"
                )
            else:
                public, secret = self.stranger
            server_file = (
                self.keys / "server.key"
                if server != "supervisor"
                else cell_keys_dir(self.keys, "assembly") / "supervisor.key"
            )
            s.curve_publickey, s.curve_secretkey = public, secret
            s.curve_serverkey = zmq.auth.load_certificate(server_file)[0]
        s.connect(where)
        self.socks.append(s)
        return s

    def advances(self, what: str) -> None:
        """The cell's clock moves on after an attack (it was not frozen by it)."""
        t0 = self.t_ns()
        eventually(lambda: self.t_ns() > t0 + 500_000_000, f"sim time to move on after {what}")

    def drop(self) -> None:
        """Close the attackers' sockets (a dropped one would reconnect and try again)."""
        for s in self.socks:
            s.close(0)
        self.socks = []

    def close(self) -> None:
        self.drop()
        self.ctx.term()
        self.log.close()


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cell]:
    c = Cell(tmp_path_factory.mktemp("attacks"))
    try:
        eventually(lambda: c.proc.poll() is None and _alive(c), "the cell to run", 120)
        yield c
    finally:
        if c.proc.poll() is None:
            try:
                with c.client("boss") as boss:
                    boss.shutdown()
                c.proc.wait(timeout=90)
            finally:
                if c.proc.poll() is None:
                    c.proc.kill()
                    c.proc.wait()
        c.close()


def _alive(c: Cell) -> bool:
    try:
        with c.client(timeout_s=1, retries=0) as v:
            st = v.status()
    except NoAnswer:
        return False
    return st.t_ns > 2_000_000_000 and all(r.alive for r in st.robots)


def spray(s: zmq.Socket[Any], payload: bytes) -> None:
    """Send without waiting: a full queue (or no connection at all) just loses it."""
    with contextlib.suppress(zmq.Again):
        s.send(payload, zmq.NOBLOCK)


def replies(s: zmq.Socket[Any], wait_s: float = 1.0) -> list[Any]:
    out = []
    while s.poll(int(wait_s * 1000)):
        out.append(msgpack.unpackb(s.recv()))
        wait_s = 0.2
    return out


def test_no_key_and_an_unknown_key_hear_nothing_on_any_socket(cell: Cell) -> None:
    before, bus0 = cell.security(), cell.bus()
    for key in (None, ""):
        clock = cell.sock(zmq.DEALER, cell.ep.clock, key=key)
        clock.setsockopt(zmq.IDENTITY, b"R1")
        clock.send(encode(Join(name="R1", role="robot", pid=1)))
        clock.send(encode(Done(tick=1, name="R1", sent=(), act=None)))
        bus = cell.sock(zmq.DEALER, cell.ep.cell, key=key, server="supervisor")
        body = Bid(op_id="x", robot="R1", finish_ns=0)
        bus.send(encode(Envelope(src="R1", dst="supervisor", tick=1, seq=0, body=body)))
        ctl = cell.sock(zmq.DEALER, cell.ep.control, key=key)
        ctl.send(msgpack.packb({"type": "control_request", "v": 1, "cmd_id": "a"}))
        tel = cell.sock(zmq.SUB, cell.ep.telemetry, key=key)
        tel.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(1.5)  # long enough for any answer to come back
    for s in cell.socks:
        assert not s.poll(0), "an unauthenticated peer heard from the cell"
    after = cell.security()
    for sock in ("clock", "control", "telemetry"):
        assert after[f"{sock}_handshakes_failed"] >= before[f"{sock}_handshakes_failed"] + 2
    eventually(
        lambda: cell.bus().get("handshakes_failed", 0) >= bus0.get("handshakes_failed", 0) + 2,
        "the cell bus to count its refused handshakes",
    )
    cell.drop()
    cell.advances("peers with no key")


def test_another_participants_key_cannot_join_the_clock_as_a_robot_or_the_supervisor(
    cell: Cell,
) -> None:
    before = cell.security()
    got = []
    for name, role in (("R1", "robot"), ("supervisor", "supervisor")):
        s = cell.sock(zmq.DEALER, cell.ep.clock, key="R4")
        s.send(encode(Join(name=name, role=role, pid=1)))
        # and answer a tick in its name, to complete its slot of the barrier
        s.send(encode(Done(tick=0, name=name, sent=(Count("R2", 5),), act=None)))
        got += replies(s)
    # R4's own name, from a connection that is not R4's: the barrier slot is not its
    s = cell.sock(zmq.DEALER, cell.ep.clock, key="R4")
    s.send(encode(Done(tick=0, name="R4", sent=(), act=None)))
    got += replies(s)
    codes = sorted(r["code"] for r in got)
    assert codes == ["bad_done"] * 3 + ["bad_join"] * 2, got
    assert cell.security()["clock_refused"] >= before["clock_refused"] + 5
    with cell.client() as v:
        st = v.status()
    assert all(r.alive for r in st.robots)  # the real agents were never cut off
    cell.drop()
    cell.advances("joins under another name")


def test_forged_bids_reports_and_inspections_on_the_cell_bus_are_refused(cell: Cell) -> None:
    bus0 = cell.bus()
    s = cell.sock(zmq.DEALER, cell.ep.cell, key="R4", server="supervisor")
    tick = cell.t_ns() // 41_666_666
    forged = [
        Bid(op_id="op-1", robot="R1", finish_ns=0),
        OpReport("op-1", "R1", OpStatus.DONE, "", 0, None),
        OpReport(
            "op-2",
            "R2",
            OpStatus.DONE,
            "",
            0,
            Inspection(unit="frame-0001", kinds=(), fastened=False),
        ),
    ]
    for i, body in enumerate(forged):
        src = "R1" if i < 2 else "R2"
        s.send(encode(Envelope(src=src, dst="supervisor", tick=tick, seq=i, body=body)))
    s.send(encode(Envelope(src="supervisor", dst="supervisor", tick=tick, seq=9, body=forged[0])))
    eventually(
        lambda: cell.bus().get("refused", 0) >= bus0.get("refused", 0) + 4,
        "four forged envelopes refused and counted",
    )
    cell.drop()
    cell.advances("forged envelopes")


def test_garbage_floods_on_every_socket_are_counted_and_the_cell_keeps_going(cell: Cell) -> None:
    before, bus0 = cell.snapshot(), cell.bus()
    clock = cell.sock(zmq.DEALER, cell.ep.clock, key="R4")
    bus = cell.sock(zmq.DEALER, cell.ep.cell, key="R4", server="supervisor")
    ctl = cell.sock(zmq.DEALER, cell.ep.control, key="")  # an unknown key: never let in
    tel = cell.sock(zmq.XPUB, cell.ep.telemetry, key="")
    junk = [b"\x00\xff garbage", b"\xc1", msgpack.packb({"type": "tick", "v": 1})]
    with cell.client() as v:
        viewer = v._require()  # a viewer's own authenticated connection
        for i in range(6000):
            for s in (clock, bus, viewer, ctl, tel):
                spray(s, junk[i % 3])
        cell.advances("a garbage flood")
    sec = cell.security()
    took = sec["clock_malformed"] - before["security"]["clock_malformed"]
    dropped = sec["clock_flooded"] - before["security"]["clock_flooded"]
    assert took + dropped > 0 and dropped > 0  # read, refused, the excess dropped unread
    after = cell.snapshot()
    assert after["malformed"] + after["security"]["control_flooded"] > before["malformed"]
    eventually(lambda: cell.bus().get("malformed", 0) > bus0.get("malformed", 0), "bus malformed")
    cell.drop()


def test_oversize_frames_drop_the_connection_and_memory_stays_bounded(cell: Cell) -> None:
    host, sup = cell.proc.pid, children(cell.proc.pid)["supervisor"]
    mem0 = rss_mb(host), rss_mb(sup)
    disc0 = cell.security()["clock_disconnected"]
    big = b"\x00" * (64 << 20)  # 64 MiB; the limit is 2 MiB
    clock = cell.sock(zmq.DEALER, cell.ep.clock, key="R4")
    bus = cell.sock(zmq.DEALER, cell.ep.cell, key="R4", server="supervisor")
    for s in (clock, bus):
        s.send(big)
    del big
    eventually(
        lambda: cell.security()["clock_disconnected"] > disc0, "the clock to drop the sender"
    )
    cell.drop()
    cell.advances("oversize frames")
    assert rss_mb(host) < mem0[0] + 40 and rss_mb(sup) < mem0[1] + 40


def test_far_future_envelopes_are_dropped_not_queued(cell: Cell) -> None:
    sup = children(cell.proc.pid)["supervisor"]
    mem0, bus0 = rss_mb(sup), cell.bus()
    s = cell.sock(zmq.DEALER, cell.ep.cell, key="R4", server="supervisor")
    body = Bid(op_id="op-1", robot="R4", finish_ns=0)
    for seq in range(50_000):
        env = Envelope(src="R4", dst="supervisor", tick=10**12 + seq, seq=seq, body=body)
        s.send(encode(env))
    eventually(
        lambda: cell.bus().get("ahead", 0) >= bus0.get("ahead", 0) + 50_000,
        "50,000 far-future envelopes counted",
    )
    assert rss_mb(sup) < mem0 + 30
    with cell.client() as v:
        assert v.status().robots[3].alive  # R4's route was never handed to the attacker
    cell.drop()
    cell.advances("far-future envelopes")


def test_a_viewer_flooding_status_does_not_stop_the_clock(cell: Cell) -> None:
    with cell.client() as v:
        sock = v._require()
        t0, wall0 = cell.t_ns(), time.monotonic()
        for i in range(3000):
            req = {"type": "control_request", "v": 1, "cmd_id": f"flood-{i}"}
            req.update(command="status", target="", action="", value=0.0)
            spray(sock, msgpack.packb(req))
        during = cell.t_ns()  # another client is answered during the flood
        got = replies(sock, 2.0)
        wall = time.monotonic() - wall0  # to the last answer, and 0.2 s with none
    # the periods the cap counts over: ticks (each answer says when it was made) and windows
    answered_ns = max((r.get("status") or {}).get("t_ns", t0) for r in got)
    windows = (answered_ns - t0) * 24 // NS + wall / CLIENT_WINDOW_S + 1  # 24 Hz cell
    assert during > t0  # the sim moved while the flood was being served
    codes = {r["code"] for r in got}
    assert codes <= {"ok", "busy"}
    # served at a bounded rate however slow the host is (on a loaded machine it drains the
    # flood over many ticks and windows, and may answer all of it): the cap per tick and
    # per window of wall time holds
    assert sum(r["code"] == "ok" for r in got) <= MAX_PER_CLIENT_TICK * windows
    if len(got) < 3000:  # some went unanswered: the cap dropped them, and counted them
        assert cell.security()["control_flooded"] > 0
    cell.advances("a status flood")


def test_command_ids_are_remembered_per_key(cell: Cell) -> None:
    with cell.client("op") as op, cell.client() as view:
        first = op._exchange(_req("order", "phone", 1.0, "shared-id"), "order")
        assert first.ok
        mine = view._exchange(_req("status", "", 0.0, "shared-id"), "status")
        assert mine.ok and mine.status is not None and mine.data == ""  # its own answer
        again = op._exchange(_req("order", "phone", 1.0, "shared-id"), "order")
        assert again == first  # the operator's retry still gets its first answer


def _req(command: str, action: str, value: float, cmd_id: str) -> Any:
    from bus.enums import ControlCommand
    from bus.messages import ControlRequest

    return ControlRequest(cmd_id, ControlCommand(command), "", action, value)


def test_a_key_removed_from_roles_toml_is_refused_while_the_cell_runs(cell: Cell) -> None:
    create_key(cell.keys, "temp", "operator")  # added while the cell runs: let in from now on
    eventually(lambda: _status_ok(cell, "temp"), "the new key to be let in", 30)
    temp_sub = Subscriber(cell.base, curve=CurveKeys.from_files(cell.keys / "temp.key_secret"))
    view_sub = Subscriber(cell.base, curve=CurveKeys.from_files(cell.keys / "view.key_secret"))
    with temp_sub, view_sub, cell.client("temp", timeout_s=2, retries=3) as t:
        eventually(lambda: temp_sub.poll(0.2), "telemetry for the new key")
        assert t.status().t_ns > 0
        roles = cell.keys / "roles.toml"
        text = roles.read_text()
        start = text.index("[temp]")
        end = text.find("\n[", start + 1)
        roles.write_text(text[:start] + (text[end + 1 :] if end > 0 else ""))
        os.kill(cell.proc.pid, signal.SIGHUP)  # re-read now (the mtime would within 0.5 s)
        eventually(lambda: _forbidden(t), "the open connection's requests to be refused", 10)
        # its subscription ends too (the telemetry socket is bound anew); a viewer's goes on
        eventually(lambda: not temp_sub.poll(1.0), "the revoked key's telemetry to stop", 20)
        view_sub.poll(0)
        eventually(lambda: view_sub.poll(0.2), "the viewer's telemetry to come back", 20)
        assert not temp_sub.poll(1.0)
    assert cell.security()["telemetry_rebound"] >= 1
    assert not _status_ok(cell, "temp")  # a new connection: turned away at the handshake
    assert cell.proc.poll() is None  # SIGHUP re-read the keys; it did not end the run


def _status_ok(cell: Cell, name: str) -> bool:
    try:
        with cell.client(name, timeout_s=1, retries=0) as c:
            return c.status().t_ns > 0
    except (NoAnswer, ControlError):
        return False


def _forbidden(c: ControlClient) -> bool:
    try:
        c.status()
    except ControlError as exc:
        return exc.code == "forbidden"
    return False


def test_after_every_attack_units_ship_the_ledger_balances_and_the_audit_passes(
    cell: Cell,
) -> None:
    with cell.client() as v:
        # the count and the time from one answer: a unit shipped between two requests
        # would count as shipped after the attacks, and its log line would not be
        now = v.status()
    done0, cell.attacks_end_ns = now.units_completed, now.t_ns
    # the count is the supervisor's last KPI snapshot (once a sim second), the time the
    # world's: a unit shipped in that second comes into the count after ``now``. Units ship
    # one at a time through the outfeed, many seconds apart, so two more than ``done0``
    # holds one shipped after the attacks
    eventually(lambda: _units(cell) > done0 + 1, "a unit shipped after the attacks", 180)
    with cell.client("boss") as boss:
        boss.shutdown()
    assert cell.proc.wait(timeout=90) == 0
    run = next(cell.runs.iterdir())
    kpis = json.loads((run / "kpis.json").read_text())
    assert kpis["ledger_balanced"] is True
    shipped = [
        e
        for e in map(json.loads, (run / "events.jsonl").read_text().splitlines())
        if e["kind"] == "unit_shipped" and e["t_ns"] > cell.attacks_end_ns
    ]
    assert shipped
    # the run is short: its throughput is checked over one window as long as itself
    checks = audit_run(run, window_s=float(kpis["duration_s"]))
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    sec, bus = kpis["sim"]["security"], kpis["bus"]
    assert sec["clock_refused"] >= 5 and sec["clock_handshakes_failed"] >= 2
    assert bus["refused"] >= 4 and bus["ahead"] >= 50_000
    assert oct((run / "kpis.json").stat().st_mode & 0o777) == "0o600"  # owner-only


def _units(cell: Cell) -> int:
    with cell.client() as v:
        return v.status().units_completed
