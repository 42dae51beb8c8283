"""CURVE keys, roles and the ZAP authenticator: who may connect, and what they may do."""

from __future__ import annotations

import stat
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.codec import decode, encode
from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from bus.errors import ConfigError
from bus.messages import ControlReply, ControlRequest
from bus.security import (
    CurveKeys,
    apply_server,
    create_key,
    permits,
    read_roles,
    role_of,
    server_keys,
    start_auth,
)
from clients.cli import main
from clients.control import ControlClient, ControlError, NoAnswer, Subscriber
from tests.clients.fakehost import cell_status


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"status", "snapshot"}),
        ("operator", {"status", "snapshot", "robot", "cell", "fault", "pace", "order"}),
        ("admin", {c.value for c in ControlCommand}),
        ("nobody", set()),
        (None, set()),
    ],
)
def test_each_role_may_do_what_the_lesser_ones_may_and_more(
    role: str | None, allowed: set[str]
) -> None:
    assert {c.value for c in ControlCommand if permits(role, c)} == allowed


def test_keys_create_writes_zmq_key_files_and_a_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    assert main(["keys", "create", "alice", "--role", "operator", "--dir", str(keys)]) == 0
    assert main(["keys", "create", "bob", "--role", "viewer", "--dir", str(keys), "--json"]) == 0
    names = sorted(p.name for p in keys.iterdir())
    assert names == [
        "alice.key",
        "alice.key_secret",
        "bob.key",
        "bob.key_secret",
        "roles.toml",
        "server.key",
        "server.key_secret",
    ]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "alice.key_secret").stat().st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(keys / "alice.key_secret")
    assert secret is not None and len(public) == 40
    doc = tomllib.loads((keys / "roles.toml").read_text())
    assert doc["alice"] == {"role": "operator", "public": public.decode()}
    assert read_roles(keys) == {public.decode(): "operator", doc["bob"]["public"]: "viewer"}
    out = capsys.readouterr().out
    assert "alice (operator)" in out and '"role": "viewer"' in out


def test_keys_create_refuses_to_replace_a_key_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_key(tmp_path, "alice", "viewer")
    first = read_roles(tmp_path)
    assert main(["keys", "create", "alice", "--role", "admin", "--dir", str(tmp_path)]) == 2
    assert "a key of that name exists (use --force" in capsys.readouterr().err
    assert read_roles(tmp_path) == first
    create_key(tmp_path, "alice", "admin", force=True)
    assert list(read_roles(tmp_path).values()) == ["admin"]
    assert read_roles(tmp_path) != first


@pytest.mark.parametrize(
    ("name", "role", "message"),
    [
        ("server", "admin", "the cell host's own key pair"),
        ("../evil", "admin", "letters, digits"),
        ("carol", "root", "'root' is not one of viewer, operator, admin"),
    ],
)
def test_keys_create_refuses_bad_names_and_roles(
    tmp_path: Path, name: str, role: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_key(tmp_path, name, role)


def test_a_broken_roles_file_is_an_error_naming_the_entry(tmp_path: Path) -> None:
    (tmp_path / "roles.toml").write_text('[alice]\nrole = "superuser"\npublic = "x"\n')
    with pytest.raises(ConfigError, match=r"roles.toml: alice.role: 'superuser' is not one of"):
        read_roles(tmp_path)


def test_missing_key_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such key file"):
        server_keys(tmp_path)
    create_key(tmp_path, "alice", "viewer")
    with pytest.raises(ConfigError, match="not a secret key file"):
        CurveKeys.from_files(tmp_path / "alice.key")


class CurveHost(threading.Thread):
    """A CURVE ROUTER that answers status with the caller's role in ``reason``."""

    def __init__(self, ctx: zmq.Context[Any], ends: Endpoints, keys: Path) -> None:
        super().__init__(daemon=True)
        self.auth, self.roles = start_auth(ctx, keys)
        self.sock: zmq.Socket[Any] = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        apply_server(self.sock, keys)
        self.sock.bind(ends.control)
        self.pub: zmq.Socket[Any] = ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        apply_server(self.pub, keys)
        self.pub.bind(ends.telemetry)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if not self.sock.poll(20):
                continue
            ident, frame = self.sock.recv_multipart(copy=False)
            req = decode(frame.bytes)
            assert isinstance(req, ControlRequest)
            role = role_of(frame, self.roles)
            if permits(role, req.command):
                reply = ControlReply(req.cmd_id, True, "ok", str(role), status=cell_status())
            else:
                reply = ControlReply(req.cmd_id, False, "forbidden", f"a {role} may not")
            self.sock.send_multipart([ident.bytes, encode(reply)])

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.sock.close(0)
        self.pub.close(0)
        self.auth.stop()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for name, role in (("viewer1", "viewer"), ("op1", "operator")):
        create_key(tmp_path / "keys", name, role)
    return tmp_path / "keys"


@pytest.fixture
def curve_host(ctx: zmq.Context[Any], endpoints: Endpoints, keys: Path) -> Iterator[CurveHost]:
    h = CurveHost(ctx, endpoints, keys)
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_a_listed_key_connects_and_the_host_knows_its_role(
    ctx: zmq.Context[Any], base: str, keys: Path, curve_host: CurveHost
) -> None:
    viewer = CurveKeys.from_files(keys / "viewer1.key_secret")
    with ControlClient(base, timeout_s=2, curve=viewer, ctx=ctx) as c:
        assert c.request(ControlCommand.STATUS).reason == "viewer"
        with pytest.raises(ControlError) as err:
            c.robot("R1", "hold")
        assert err.value.code == "forbidden"
    op = CurveKeys.from_files(keys / "op1.key_secret", keys / "server.key")
    with ControlClient(base, timeout_s=2, curve=op, ctx=ctx) as c:
        assert c.robot("R1", "hold").reason == "operator"


def test_an_unlisted_key_gets_no_answer(
    ctx: zmq.Context[Any], base: str, tmp_path: Path, keys: Path, curve_host: CurveHost
) -> None:
    create_key(tmp_path / "elsewhere", "mallory", "admin")  # a valid key, not in this roles.toml
    stranger = CurveKeys.from_files(
        tmp_path / "elsewhere" / "mallory.key_secret", keys / "server.key"
    )
    with (
        ControlClient(base, timeout_s=0.3, retries=0, curve=stranger, ctx=ctx) as c,
        pytest.raises(NoAnswer),
    ):
        c.status()


def test_a_plain_client_cannot_talk_to_a_curve_host(
    ctx: zmq.Context[Any], base: str, curve_host: CurveHost
) -> None:
    with ControlClient(base, timeout_s=0.3, retries=0, ctx=ctx) as c, pytest.raises(NoAnswer):
        c.status()


def test_a_subscriber_takes_curve_keys_too(
    ctx: zmq.Context[Any], base: str, keys: Path, curve_host: CurveHost
) -> None:
    viewer = CurveKeys.from_files(keys / "viewer1.key_secret")
    with Subscriber(base, ("events",), curve=viewer, ctx=ctx):
        assert curve_host.pub.poll(5000), "the subscription never arrived"
        assert curve_host.pub.recv() == b"\x01events"


def test_the_cli_takes_a_key(
    base: str, keys: Path, curve_host: CurveHost, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["status", "--endpoint", base, "--key", str(keys / "viewer1.key_secret")])
    assert code == 0 and "R4" in capsys.readouterr().out
