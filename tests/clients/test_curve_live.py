"""A real cell over tcp:// with CURVE and roles: who may do what, from outside."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq.auth

from bus.endpoints import free_loopback_base
from bus.enums import PackMLCommand, PackMLState
from bus.security import CurveKeys, create_key
from clients.control import ControlClient, ControlError, NoAnswer, Subscriber

ROOT = Path(__file__).resolve().parents[2]


class SecureCell:
    def __init__(self, tmp: Path) -> None:
        self.keys = tmp / "keys"
        for name, role in (("op", "operator"), ("view", "viewer"), ("boss", "admin")):
            create_key(self.keys, name, role)
        stranger = tmp / "stranger"
        stranger.mkdir()
        zmq.auth.create_certificates(stranger, "stranger")
        self.stranger = CurveKeys.from_files(
            stranger / "stranger.key_secret", self.keys / "server.key"
        )
        self.base = free_loopback_base()
        cmd = [sys.executable, "-m", "clients.cli", "run", str(ROOT / "cells" / "assembly.toml")]
        cmd += ["--duration", "3600", "--endpoint", self.base, "--keys", str(self.keys)]
        cmd += ["-q", "--runs-dir", str(tmp / "runs"), "--realtime", "4"]
        self.log = tmp / "cell.log"
        with self.log.open("w") as log:  # what the cell said, if it never answers
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)

    def key(self, name: str) -> CurveKeys:
        return CurveKeys.from_files(self.keys / f"{name}.key_secret")

    def client(self, name: str, **kw: float) -> ControlClient:
        return ControlClient(self.base, curve=self.key(name), **kw)  # type: ignore[arg-type]

    def wait_for(self, robot: str, state: PackMLState, timeout_s: float = 120) -> None:
        """Until ``robot`` is in ``state``; a cell still starting (a busy machine: the other
        test worker's runs) is asked again while its process lives."""
        with self.client("view") as c:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    st = c.status()
                except NoAnswer:
                    said = self.log.read_text()[-2000:]
                    assert self.proc.poll() is None, (
                        f"the cell exited {self.proc.returncode}: {said}"
                    )
                    continue
                if next(r.state for r in st.robots if r.robot == robot) is state:
                    return
            raise AssertionError(
                f"{robot} never reached {state.value}: {self.log.read_text()[-2000:]}"
            )


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCell]:
    c = SecureCell(tmp_path_factory.mktemp("curve"))
    try:
        c.wait_for("R1", PackMLState.EXECUTE)
        yield c
    finally:
        try:
            with c.client("boss") as boss:
                boss.shutdown()
            c.proc.wait(timeout=60)
        finally:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()


@pytest.mark.timeout(300)
def test_an_operator_holds_and_resumes_a_robot(cell: SecureCell) -> None:
    with cell.client("op") as op:
        op.robot("R1", PackMLCommand.HOLD)
        cell.wait_for("R1", PackMLState.HELD)
        op.robot("R1", PackMLCommand.UNHOLD)
        cell.wait_for("R1", PackMLState.EXECUTE)


@pytest.mark.timeout(300)
def test_a_viewer_may_look_but_not_command(cell: SecureCell) -> None:
    with cell.client("view") as view:
        assert len(view.status().robots) == 4
        with pytest.raises(ControlError) as info:
            view.robot("R2", PackMLCommand.HOLD)
    assert info.value.code == "forbidden"


@pytest.mark.timeout(300)
def test_an_operator_may_not_end_the_run(cell: SecureCell) -> None:
    with cell.client("op") as op, pytest.raises(ControlError) as info:
        op.shutdown()
    assert info.value.code == "forbidden"


@pytest.mark.timeout(300)
def test_an_unknown_key_never_gets_a_reply(cell: SecureCell) -> None:
    with (
        ControlClient(cell.base, curve=cell.stranger, timeout_s=1.5, retries=1) as c,
        pytest.raises(NoAnswer),
    ):
        c.status()


@pytest.mark.timeout(300)
def test_no_key_cannot_subscribe_but_a_viewer_can(cell: SecureCell) -> None:
    with Subscriber(cell.base) as plain, Subscriber(cell.base, curve=cell.key("view")) as viewer:
        got_viewer: list[object] = []
        got_plain: list[object] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(got_viewer) < 20:
            got_viewer += viewer.poll(0.2)
            got_plain += plain.poll(0)
        got_plain += plain.poll(0.5)
    assert len(got_viewer) >= 20
    assert got_plain == []
