"""The factory's control socket over real ZeroMQ, served at coordinator steps by hand: an
order is taken at a step and logged there; bad requests get a code and why; a retry is
answered once; tcp is refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.codec import decode, encode
from bus.endpoints import Endpoints
from bus.enums import ControlCommand
from bus.errors import ConfigError
from bus.messages import ControlReply, ControlRequest
from clients.control import ControlClient, ControlError
from factory.control import DEFAULT_DUE_S, FactoryControl
from factory.coordinator import Coordinator
from factory.orders import OrderBook
from tests.factory.test_coordinator import spec

S = 1_000_000_000


@pytest.fixture
def served(tmp_path: Path, base: str) -> Iterator[tuple[FactoryControl, Coordinator]]:
    coord = Coordinator(spec(tmp_path, screens=50), OrderBook(["phone"]))
    control = FactoryControl(base, coord)
    control.setup()
    try:
        yield control, coord
    finally:
        control.shutdown()


def answered(control: FactoryControl, t_ns: int, ask: Callable[[], Any]) -> Any:
    """Run ``ask`` on a thread of its own, serving the socket at ``t_ns`` until it returns."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(ask())
        except ControlError as exc:
            out.append(exc)

    th = threading.Thread(target=run)
    th.start()
    while th.is_alive():
        control.serve(t_ns)
        control.flush()
        th.join(0.01)
    return out[0]


def test_an_order_is_taken_at_the_step_it_is_read(
    served: tuple[FactoryControl, Coordinator], base: str
) -> None:
    control, coord = served
    with ControlClient(base, timeout_s=5) as client:
        reply = answered(control, 15 * S, lambda: client.order("phone", 4))
    assert isinstance(reply, ControlReply) and reply.ok, reply
    assert reply.reason == f"order O00001: 4 x phone for acme, due {15 + DEFAULT_DUE_S:g} s"
    o = coord.orders.orders["O00001"]
    assert (o.customer, o.quantity, o.created_ns, o.due_ns) == (
        "acme",
        4,
        15 * S,
        round((15 + DEFAULT_DUE_S) * S),
    )
    (ev,) = [e for e in coord.events if e["kind"] == "order_added"]
    assert ev["t_ns"] == 15 * S and ev["order"] == "O00001"
    coord.step(15 * S)
    assert coord.released("L1") == 4, "released by pull at the step"


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"action": "tablet", "value": 2.0}, "bad_argument", "no customer takes 'tablet'"),
        ({"action": "phone", "value": 2.5}, "bad_argument", "whole number"),
        ({"action": "phone", "value": 0.0}, "bad_argument", "whole number"),
        ({"action": "phone", "value": 2.0, "factor": 1e300}, "bad_argument", "due"),
        ({"action": "phone", "value": 2.0, "target": "nobody"}, "bad_argument", "'nobody'"),
        ({"command": ControlCommand.SNAPSHOT}, "unknown_command", "order and status requests"),
    ],
)
def test_a_bad_request_is_answered_and_not_taken(
    served: tuple[FactoryControl, Coordinator],
    base: str,
    fields: dict[str, Any],
    code: str,
    says: str,
) -> None:
    control, coord = served
    args: dict[str, Any] = {"command": ControlCommand.ORDER, **fields}
    command = args.pop("command")
    with ControlClient(base, timeout_s=5, retries=0) as client:
        got = answered(control, 0, lambda: client.request(command, **args))
    assert isinstance(got, ControlError) and got.code == code and says in got.reason, got
    assert coord.orders.orders == {}


def reply_to(control: FactoryControl, sock: Any, t_ns: int) -> Any:
    """Serve at ``t_ns`` until ``sock`` has its answer (5 s at most); the answer decoded."""
    for _ in range(500):
        control.serve(t_ns)
        control.flush()
        if sock.poll(10):
            return decode(sock.recv())
    raise AssertionError("no answer")


def test_garbage_and_a_retry(served: tuple[FactoryControl, Coordinator], ctx: Any) -> None:
    control, coord = served
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(control.endpoints.control)
    try:
        sock.send(b"\x93not msgpack at all")
        bad = reply_to(control, sock, 0)
        assert isinstance(bad, ControlReply) and bad.code == "malformed"
        req = ControlRequest(uuid.uuid4().hex, ControlCommand.ORDER, "", "phone", 3.0)
        replies = []
        for _ in range(2):  # the same cmd_id twice: one order, the same answer
            sock.send(encode(req))
            replies.append(reply_to(control, sock, 5 * S))
        assert replies[0] == replies[1] and len(coord.orders.orders) == 1
        # an answer decided waits for flush (a hub sends it once its step is journaled)
        sock.send(encode(ControlRequest(uuid.uuid4().hex, ControlCommand.ORDER, "", "phone", 2.0)))
        kept: list[tuple[str, ControlReply]] = []
        for _ in range(500):
            kept += control.serve(10 * S)
            if kept:
                break
            sock.poll(10)
        assert len(kept) == 1 and kept[0][1].ok and not sock.poll(200), "sent before flush"
        control.flush()
        assert sock.poll(5000) and decode(sock.recv()) == kept[0][1]
    finally:
        sock.close(0)


def test_tcp_needs_keys_and_other_transports_are_refused(tmp_path: Path) -> None:
    coord = Coordinator(spec(tmp_path), OrderBook(["phone"]))
    with pytest.raises(ConfigError, match="needs --keys"):
        FactoryControl("tcp://127.0.0.1:5555", coord)
    with pytest.raises(ConfigError, match="ipc://DIR or tcp://HOST:PORT"):
        FactoryControl("inproc://factory", coord)
    with pytest.raises(ConfigError, match="port"):
        FactoryControl("tcp://127.0.0.1:99999", coord, tmp_path)


def test_over_tcp_only_listed_keys_are_answered_each_as_its_role_allows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A factory running on a thread with its control socket on tcp and keys: a viewer's key
    may ask its status but not place an order, an operator's may, and a key roles.toml does
    not list gets no answer at all (its handshake is refused)."""
    import json
    import time

    from bus.endpoints import free_port
    from bus.security import create_key
    from clients.cli import main
    from factory.run import OrderLine, run_factory

    keys = tmp_path / "keys"
    viewer = create_key(keys, "watcher", "viewer").secret_file
    operator = create_key(keys, "planner", "operator").secret_file
    stranger = create_key(tmp_path / "other", "planner", "admin").secret_file
    server = keys / "server.key"
    base = f"tcp://127.0.0.1:{free_port('127.0.0.1', 4)}"
    out = tmp_path / "run"
    done: list[BaseException | dict[str, Any]] = []

    def factory() -> None:
        f, order = spec(tmp_path, screens=50), OrderLine("acme", "phone", 1, 100.0)
        try:
            kw: dict[str, Any] = {"endpoint": base, "keys_dir": keys}
            done.append(run_factory(f, out, orders=[order], duration_s=600.0, seed=1, **kw))
        except BaseException as exc:
            done.append(exc)

    th = threading.Thread(target=factory)
    th.start()
    try:
        ask = ["--endpoint", base, "--timeout", "1"]
        deadline = time.monotonic() + 60
        while main(["factory", "status", "--json", *ask, "--key", str(viewer)]) != 0:
            assert time.monotonic() < deadline and not done, f"never answered: {done}"
        capsys.readouterr()
        order = ["order", "add", "phone", "2", "--due", "90", "--retries", "0", *ask]
        assert main([*order, "--key", str(operator)]) == 0
        assert "order O00002: 2 x phone for acme" in capsys.readouterr().out
        assert main([*order, "--key", str(viewer)]) == 2
        assert "viewer role may not send order" in capsys.readouterr().err
        theirs = [*order, "--key", str(stranger), "--server-key", str(server)]
        assert main(theirs) == 2
        assert "no answer" in capsys.readouterr().err.lower()
        assert th.is_alive(), "the factory ended before the stranger asked: nothing was shown"
    finally:
        th.join(300)
    assert isinstance(done[0], dict), done
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    added = [e["quantity"] for e in events if e["kind"] == "order_added"]
    assert added == [1, 2], "the viewer's or the stranger's order was taken"


def test_lightsout_order_add_reaches_a_running_factory(
    tmp_path: Path, base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-line factory runs 40 s of sim time on a thread; ``lightsout order add`` gives it
    an order, which is taken at a step, released and built from there."""
    import json
    import time

    from clients.cli import main
    from factory.run import OrderLine, run_factory

    out = tmp_path / "run"
    f = spec(tmp_path, screens=50)
    done: list[BaseException | dict[str, Any]] = []

    def factory() -> None:
        try:
            order = OrderLine("acme", "phone", 1, 100.0)
            done.append(run_factory(f, out, orders=[order], duration_s=40.0, seed=1, endpoint=base))
        except BaseException as exc:
            done.append(exc)

    th = threading.Thread(target=factory)
    th.start()
    sock = Path(Endpoints.from_base(base).control.removeprefix("ipc://"))
    for _ in range(3000):
        if sock.exists() or done:
            break
        time.sleep(0.01)
    code = main(
        ["order", "add", "phone", "2", "--endpoint", base, "--due", "90", "--timeout", "10"]
    )
    th.join(120)
    assert code == 0 and "order O00002: 2 x phone for acme" in capsys.readouterr().out
    assert isinstance(done[0], dict), done
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    added = next(e for e in events if e["kind"] == "order_added" and e["order"] == "O00002")
    assert added["t_ns"] > 0 and added["due_ns"] == added["t_ns"] + 90 * S
    released = [e for e in events if e["kind"] == "order_released" and e["order"] == "O00002"]
    assert sum(e["quantity"] for e in released) == 2 and released[0]["t_ns"] == added["t_ns"]
    assert done[0]["orders"]["O00002"]["released"] == 2
    assert not sock.exists(), "the socket file is removed at the end"
