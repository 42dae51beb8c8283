"""Lines on hosts of their own: the coordinator and each line a real process, over tcp with
CURVE keys, on loopback (``factory.hosts``, ``factory.hub``, ``factory.linehost``).

The factory's log of such a run is checked byte for byte against the same factory run in
one process, with its coordinator killed (SIGKILL) mid-run and restarted from its journal;
a key that is not the factory's, a line's key speaking for another line and damaged reports
are each refused, by a coordinator that goes on serving.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.codec import decode
from bus.codec import encode as encode_msg
from bus.endpoints import Endpoints, free_port
from bus.enums import ControlCommand
from bus.messages import ControlReply, ControlRequest
from bus.security import CurveKeys, create_key
from bus.trust import ensure_participants
from cells.faults import load_scenario
from clients.cli import main
from factory.hosts import run_hosts
from factory.hub import JOURNAL, Hub
from factory.run import OrderLine, factory_meta, run_factory
from factory.schema import load_factory
from factory.wire import MAX_ID, client_socket, encode, line_keys, read_answer, read_report
from tests.factory.kit import events_factory, jsonl

ORDERS = [OrderLine.parse("retail:phone:6:300"), OrderLine.parse("retail:phone:3:200:rush@60")]
DURATION = 900.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """The same factory in one process, and on hosts with its coordinator killed at 30 s."""
    tmp = tmp_path_factory.mktemp("hosts")
    spec = load_factory(events_factory(tmp))
    one = tmp / "one"
    run_factory(spec, one, orders=ORDERS, duration_s=DURATION, seed=3)
    hosts = tmp / "hosts"
    got = run_hosts(
        spec,
        hosts,
        orders=ORDERS,
        duration_s=DURATION,
        seed=3,
        keys_dir=tmp / "keys",
        processes=False,
        kill_coordinator_at=30.0,
    )
    return one, hosts, got


def test_lines_on_hosts_give_the_factory_log_of_one_process(runs: tuple[Path, Path, Any]) -> None:
    one, hosts, got = runs
    assert got.killed_at_s is not None and got.killed_at_s >= 30.0 and got.restarts == 1
    assert (hosts / "events.jsonl").read_bytes() == (one / "events.jsonl").read_bytes()
    for line in ("L1", "L2"):  # the lines' own logs, sent by their hosts, match too
        sent = (hosts / "lines" / line / "events.jsonl").read_bytes()
        assert sent == (one / "lines" / line / "events.jsonl").read_bytes()
        assert sent == (hosts / "hosts" / line / "events.jsonl").read_bytes()
    kinds = [e["kind"] for e in jsonl(hosts / "events.jsonl")]
    assert kinds.count("shipment") == 2 and kinds[-1] == "run_end"


def test_the_journal_holds_every_step_once_and_the_results_balance(
    runs: tuple[Path, Path, Any],
) -> None:
    _one, hosts, got = runs
    rows = (hosts / JOURNAL).read_text().splitlines()
    ks = [json.loads(r)["k"] for r in rows[1:]]
    assert ks == list(range(len(ks))), "a step journaled twice or skipped across the restart"
    assert ks[-1] == DURATION / 5.0  # the steps at 0, 5, ... 895 s and every line's done
    assert got.kpis["material_balanced"] and got.kpis["shipments"] == 2
    assert all(ln["ledger_balanced"] for ln in got.kpis["lines"].values())


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    """A coordinator serving in a thread, and the address and keys its lines would use."""
    spec = load_factory(events_factory(tmp_path))
    keys = tmp_path / "keys"
    ensure_participants(keys, spec.name, ["L1", "L2"])
    bind = f"tcp://127.0.0.1:{free_port('127.0.0.1')}"
    meta = factory_meta(spec, 1, 60.0, True, ORDERS, None, 0.0, False, ())
    h = Hub(
        spec, tmp_path / "run", meta=meta, orders=ORDERS, duration_s=60.0, bind=bind, keys_dir=keys
    )
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            h.serve()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield h, bind, keys, spec
    h.stopping.set()
    t.join(10)
    assert errors and "stopped" in str(errors[0]), errors  # it never fell over before


def ask(sock: zmq.Socket[Any], msg: dict[str, Any] | bytes, wait_s: float = 5.0) -> Any:
    sock.send(msg if isinstance(msg, bytes) else encode(msg))
    if not sock.poll(int(wait_s * 1000)):
        return None
    return read_answer(sock.recv())


def test_only_the_factorys_keys_and_each_for_its_own_line(hub: Any) -> None:
    h, bind, keys, spec = hub
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        stranger = ctx.socket(zmq.DEALER)
        stranger.setsockopt(zmq.LINGER, 0)
        stranger.curve_publickey, stranger.curve_secretkey = zmq.curve_keypair()
        stranger.curve_serverkey = line_keys(keys, spec.name, "L1")[2]
        stranger.connect(bind)
        hello = {"op": "step", "line": "L1", "k": 0, "fed": [], "heard": []}
        assert ask(stranger, hello, wait_s=2.0) is None  # ZAP refused the handshake
        l2 = client_socket(ctx, line_keys(keys, spec.name, "L2"))
        l2.connect(bind)
        ans = ask(l2, hello)
        assert ans["op"] == "refused" and "not line L1's" in ans["why"]
        assert h.reports == {} and h.next_k == 0  # nothing was taken
    finally:
        ctx.destroy(0)


def test_damaged_reports_are_refused_and_the_coordinator_goes_on(hub: Any) -> None:
    h, bind, keys, spec = hub
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        l1 = client_socket(ctx, line_keys(keys, spec.name, "L1"))
        l1.connect(bind)
        base = {"op": "step", "line": "L1", "k": 0, "fed": [], "heard": []}
        bad: list[dict[str, Any] | bytes] = [
            b"not json",
            b'{"op":"step","line":"L1","k":NaN}',
            {**base, "k": 1e300},
            {**base, "k": -1},
            {**base, "line": "../L1"},
            {**base, "op": "steal"},
            {**base, "fed": [["frames", "x" * (MAX_ID + 1)]]},
            {**base, "fed": [["no_such_feeder", "p1"]]},
            {**base, "fed": [["frames", "p1"]]},  # nothing at the line side before 0
            {**base, "k": 3},  # out of step
            {**base, "heard": [7]},
        ]
        for msg in bad:
            ans = ask(l1, msg)
            assert ans is not None and ans["op"] == "refused", msg
        assert h.refused == len(bad) and h.next_k == 0
        # a good report still counts: step 0 waits for L2, then both are answered
        assert ask(l1, base, wait_s=0.5) is None
        l2 = client_socket(ctx, line_keys(keys, spec.name, "L2"))
        l2.connect(bind)
        ans = ask(l2, {**base, "line": "L2"})
        assert ans["op"] == "go" and ans["k"] == 0 and sum(ans["side"].values()) > 0
        assert l1.poll(5000), "L1's report of step 0 was not answered"
        mine = read_answer(l1.recv())
        assert mine["op"] == "go" and mine["k"] == 0
        again = ask(l2, {**base, "line": "L2"})  # a resent report: the same answer
        assert again == ans and h.next_k == 1
    finally:
        ctx.destroy(0)


def test_read_report_bounds_every_field() -> None:
    lines = ("L1", "L2")
    good = encode({"op": "step", "line": "L1", "k": 2, "fed": [["f", "p"]], "heard": ["{}"]})
    r = read_report(good, lines, 10)
    assert not isinstance(r, str) and r.fed == (("f", "p"),) and r.k == 2
    assert "not a step" in str(read_report(good, lines, 1))
    done = encode({"op": "done", "line": "L2", "k": 3, "files": {"../etc": "x"}})
    assert "files" in str(read_report(done, lines, 10))
    assert "events.jsonl" in str(
        read_report(encode({"op": "done", "line": "L2", "k": 3}), lines, 9)
    )


def test_bad_host_arguments_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(events_factory(tmp_path))
    runs = tmp_path / "runs"
    order = ["--order", "retail:phone:1:100"]
    cases = [
        (["factory", "run", f, *order, "--kill-coordinator-at", "5", "--runs-dir", str(runs)], "--hosts"),
        (["factory", "serve", f, *order, "--bind", "ipc:///tmp/x", "--keys", str(tmp_path / "k"), "--out", str(runs / "s")], "tcp"),
        (["factory", "serve", f, *order, "--bind", "tcp://127.0.0.1:99999", "--keys", str(tmp_path / "k"), "--out", str(runs / "s")], "65535"),
        (["factory", "serve", f, *order, "--bind", "tcp://127.0.0.1:1", "--keys", str(tmp_path / "k"), "--out", str(runs / "s"), "--resume"], "journal"),
        (["factory", "line", f, "--line", "L9", "--coordinator", "tcp://127.0.0.1:1", "--keys", str(tmp_path / "k"), "--out", str(runs / "l")], "L9"),
        (["factory", "line", f, "--line", "L1", "--coordinator", "tcp://127.0.0.1:1", "--keys", str(tmp_path / "k"), "--out", str(runs / "l")], "key"),
    ]  # fmt: skip
    for argv, word in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and word in err[0], (argv, err)
    assert not runs.exists() or not any(runs.rglob("*.json*"))


def test_a_journal_of_another_run_is_refused_on_resume(tmp_path: Path) -> None:
    spec = load_factory(events_factory(tmp_path))
    keys = tmp_path / "keys"
    ensure_participants(keys, spec.name, ["L1", "L2"])
    out = tmp_path / "run"
    out.mkdir()
    (out / JOURNAL).write_text(json.dumps({"version": 1, "seed": 99}) + "\n")
    meta = factory_meta(spec, 1, 60.0, True, ORDERS, None, 0.0, False, ())
    h = Hub(
        spec,
        out,
        meta=meta,
        orders=ORDERS,
        duration_s=60.0,
        bind=f"tcp://127.0.0.1:{free_port('127.0.0.1')}",
        keys_dir=keys,
        resume=True,
    )
    start = time.monotonic()
    with pytest.raises(Exception, match="header is not this run's"):
        h.serve()
    assert time.monotonic() - start < 5


def test_an_order_answered_outlives_the_coordinator_and_its_retry_is_no_second(
    tmp_path: Path,
) -> None:
    """The control socket's answers go out only after their step is journaled: a coordinator
    that dies before its journal has the step told nobody of the orders it read, and one
    restarted from its journal answers a retry of an order it took with that order. The
    socket is on tcp, with an operator's key: the journal keeps whose answer it was."""
    spec = load_factory(events_factory(tmp_path))
    keys = tmp_path / "keys"
    ensure_participants(keys, spec.name, ["L1", "L2"])
    planner = CurveKeys.from_files(create_key(keys, "planner", "operator").secret_file)
    bind = f"tcp://127.0.0.1:{free_port('127.0.0.1')}"
    base = f"tcp://127.0.0.1:{free_port('127.0.0.1', 4)}"
    meta = factory_meta(spec, 1, 600.0, True, ORDERS, None, 0.0, False, ())
    ctx: zmq.Context[Any] = zmq.Context()

    def start(resume: bool, *, dies: bool = False) -> tuple[Hub, threading.Thread, list[str]]:
        h = Hub(
            spec, tmp_path / "run", meta=meta, orders=ORDERS, duration_s=600.0, bind=bind,
            keys_dir=keys, endpoint=base, resume=resume,
        )  # fmt: skip
        if dies:  # the coordinator dies writing the step: nothing of it reaches the disk

            def no_disk(f: Any, rec: dict[str, Any]) -> None:
                raise OSError("the disk went away")

            h._append = no_disk  # type: ignore[method-assign]
        errors: list[str] = []
        t = threading.Thread(target=lambda: errors.append(_serve(h)), daemon=True)
        t.start()
        return h, t, errors

    def step(h: Hub, t: threading.Thread) -> None:
        """Both lines report the hub's next step (nothing fed); wait until it is taken."""
        k = h.next_k
        for line, sock in lines.items():
            sock.send(encode({"op": "step", "line": line, "k": k, "fed": [], "heard": []}))
        deadline = time.monotonic() + 10
        while h.next_k == k and t.is_alive():
            assert time.monotonic() < deadline, f"step {k} was not taken"
            time.sleep(0.01)
        for sock in lines.values():  # the lines' answers, if any: not what is checked here
            while sock.poll(100):
                sock.recv()

    def answers(wait_s: float) -> list[ControlReply]:
        got = []
        while client.poll(int(wait_s * 1000)):
            reply = decode(client.recv())
            assert isinstance(reply, ControlReply), reply
            got.append(reply)
            wait_s = 0.2
        return got

    first = ControlRequest("order-1", ControlCommand.ORDER, "", "phone", 3.0)
    second = ControlRequest("order-2", ControlCommand.ORDER, "", "phone", 4.0)
    try:
        lines = {n: client_socket(ctx, line_keys(keys, spec.name, n)) for n in ("L1", "L2")}
        for sock in lines.values():
            sock.connect(bind)
        client = ctx.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        planner.apply(client)
        client.connect(Endpoints.from_base(base).control)
        h, t, errors = start(False)
        step(h, t)  # the socket is bound and serving
        client.send(encode_msg(first))
        told: list[ControlReply] = []
        for _ in range(20):
            step(h, t)
            told += answers(0.2)
            if told:
                break
        assert len(told) == 1 and told[0].ok and told[0].cmd_id == "order-1", told
        h.stopping.set()
        t.join(10)
        # a coordinator resumed from that journal dies writing its first step
        h, t, errors = start(True, dies=True)
        client.send(encode_msg(first))  # a retry, and a new order
        client.send(encode_msg(second))
        time.sleep(0.3)
        step(h, t)
        t.join(10)
        assert errors and "disk went away" in errors[0], errors
        assert answers(0.5) == [], "an answer went out for a step that was never kept"
        # resumed again: the retries of both are answered, each order taken once
        h, t, errors = start(True)
        client.send(encode_msg(first))
        client.send(encode_msg(second))
        time.sleep(0.3)
        step(h, t)
        got = {a.cmd_id: a for a in answers(5.0)}
        assert got["order-1"] == told[0], "the retry of a kept order got another answer"
        assert got["order-2"].ok and got["order-2"].data != told[0].data
        h.stopping.set()
        t.join(10)
        rows = [json.loads(r) for r in (tmp_path / "run" / JOURNAL).read_text().splitlines()[1:]]
        taken = sorted(o["quantity"] for r in rows for o in r["orders"])
        assert taken == [3, 4], taken
        kept = [(a["user"], a["cmd_id"]) for r in rows for a in r.get("answered", ())]
        who = planner.public.decode()
        assert kept == [(who, "order-1"), (who, "order-2")], kept
    finally:
        ctx.destroy(0)


def _serve(h: Hub) -> str:
    """``h.serve`` until it is stopped or fails; what stopped it."""
    try:
        h.serve()
    except BaseException as exc:
        return str(exc)
    return "ended"


@pytest.mark.timeout(900)
def test_physics_lines_with_their_processes_on_hosts_survive_both_kills(tmp_path: Path) -> None:
    """Both lines at physics, each line's supervisor and agents processes of their own over
    the line's tcp endpoint with keys: L1's supervisor killed at 20 s, the coordinator at
    40 s; the logs are those of the factory run in one process, byte for byte (there the
    supervisor killed is an object on its line's clock's thread, ``cells.residents``)."""
    spec = load_factory(ROOT / "cells" / "factory_2.toml")
    orders = [OrderLine.parse("retail:phone:4:90")]
    faults = {"L1": str(ROOT / "tests" / "factory" / "kill_supervisor.toml")}
    one = tmp_path / "one"
    run_factory(
        spec,
        one,
        orders=orders,
        duration_s=90.0,
        seed=2,
        faults={"L1": load_scenario(faults["L1"], spec.lines[0].cell)},
    )
    hosts = tmp_path / "hosts"
    got = run_hosts(
        spec,
        hosts,
        orders=orders,
        duration_s=90.0,
        seed=2,
        keys_dir=tmp_path / "keys",
        faults=faults,
        kill_coordinator_at=40.0,
    )
    assert got.restarts == 1 and got.kpis["material_balanced"]
    l1 = jsonl(hosts / "hosts" / "L1" / "events.jsonl")
    assert any(e["kind"] == "supervisor_restored" for e in l1)
    for f in ("events.jsonl", "lines/L1/events.jsonl", "lines/L2/events.jsonl"):
        assert (hosts / f).read_bytes() == (one / f).read_bytes(), f


@pytest.mark.timeout(600)
def test_an_order_given_to_the_coordinator_on_hosts_survives_its_kill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lightsout order add`` to a coordinator serving lines on hosts: the order is built and
    shipped, though the coordinator is killed after taking it (its journal has it)."""
    spec = load_factory(events_factory(tmp_path))
    base = f"ipc://{tmp_path / 'plant'}"
    got: list[Any] = []
    run = threading.Thread(
        target=lambda: got.append(
            run_hosts(
                spec,
                tmp_path / "run",
                orders=[OrderLine.parse("retail:phone:2:600")],
                duration_s=1800.0,
                seed=4,
                keys_dir=tmp_path / "keys",
                processes=False,
                kill_coordinator_at=1500.0,
                endpoint=base,
            )
        ),
        daemon=True,
    )
    run.start()
    deadline = time.monotonic() + 60
    while main(["factory", "status", "--endpoint", base]) != 0:
        assert time.monotonic() < deadline and run.is_alive(), "the coordinator never answered"
        time.sleep(0.3)
    assert main(["order", "add", "phone", "5", "--endpoint", base, "--due", "900"]) == 0
    assert "O00002" in capsys.readouterr().out
    run.join(300)
    assert got, "the run did not finish"
    kpis = got[0].kpis
    assert got[0].restarts == 1 and got[0].killed_at_s >= 1500.0
    rows = [json.loads(r) for r in (tmp_path / "run" / JOURNAL).read_text().splitlines()[1:]]
    given = [o for r in rows for o in r["orders"] if o["quantity"] == 5]
    assert len(given) == 1 and given[0]["t_ns"] < 1500 * 10**9  # taken before the kill
    assert kpis["shipments"] == 2 and kpis["material_balanced"]
    shipped = [e for e in jsonl(tmp_path / "run" / "events.jsonl") if e["kind"] == "shipment"]
    assert sorted(len(e["units"]) for e in shipped) == [2, 5]


def test_the_console_of_a_factory_on_hosts_shows_the_coordinators_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``factory run --hosts --console``: the console asks the coordinator's control socket
    (a private one: no ``--endpoint`` given) and draws its view while the lines run."""
    f = str(events_factory(tmp_path))
    argv = ["factory", "run", f, "--order", "retail:phone:3:600", "--duration", "900"]
    argv += ["--hosts", "--console", "--runs-dir", str(tmp_path / "runs"), "--name", "c"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    frame = out[out.index(" lightsout factory ") :]  # the console's last frame
    assert re.search(r"sim \d+ s", frame) and "O00001" in frame and "L2" in frame
    assert (tmp_path / "runs" / "c" / "kpis.json").is_file()
