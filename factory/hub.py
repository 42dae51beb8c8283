"""The coordinator of lines on hosts of their own: it steps when every line has reported, and
it survives being killed.

``lightsout factory serve`` binds a CURVE ROUTER (``factory.wire``) and waits
for every line host's report of step K; then it replays each report into the
line's ``LineGate`` (the parts made, each taking its lot; the units finished
and scrapped), takes what the control socket brought, steps the
``Coordinator`` and answers every line with its line side. That is what
``factory.run`` does at its barrier, so both give the same factory log.

**The journal** (``coordinator.journal``, one JSON line a step, written and
fsynced before any line is answered) holds only the coordinator's inputs: the
reports and the orders the control socket gave. Everything else is decided
from them, so a coordinator killed at any moment is restarted with ``--resume``,
replays its journal into a fresh ``Coordinator`` and is where it was, to the
event. A step not journaled was never answered: its lines still wait and
resend, and it is taken again; so were the control socket's requests read in
it (``factory.control``: its answers are sent after the journal's line, which
keeps them for the clients' retries). A line's ``done`` brings its run's files; they
are written to ``lines/NAME`` before the step that takes them is journaled.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.errors import ConfigError, LightsoutError
from bus.messages import ControlReply
from bus.security import server_keys
from bus.trust import PARTICIPANTS, LiveKeys, start_zap, stop_zap, user_of
from factory.control import FactoryControl
from factory.coordinator import EPOCH_S, Coordinator, step_times
from factory.genealogy import DB_NAME
from factory.run import BARRIER_S, OrderLine, finish, order_book
from factory.schema import FactorySpec
from factory.supply import LateLot
from factory.view import factory_status
from factory.wire import MAX_MESSAGE, Report, encode, read_report, tcp_address

JOURNAL = "coordinator.journal"
VERSION = 1
"""The journal's layout; a journal of another is refused on resume."""
WAITING_LOG_S = 30.0
"""Wall seconds without a report after which the coordinator says whom it waits for."""
LINGER_S = 3.0
"""Wall seconds the coordinator keeps answering a line's resent ``done`` after the end."""


class Hub:
    """One factory's coordinator behind a ROUTER: a pure constructor, then ``serve``."""

    def __init__(
        self,
        spec: FactorySpec,
        out: Path,
        *,
        meta: dict[str, Any],
        orders: list[OrderLine],
        duration_s: float,
        late: tuple[LateLot, ...] = (),
        bind: str,
        keys_dir: Path,
        endpoint: str | None = None,
        resume: bool = False,
        wait_s: float = BARRIER_S,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        tcp_address("--bind", bind)
        self.spec, self.out, self.meta = spec, out, meta
        self.duration_s = duration_s
        self.steps = [0, *step_times(duration_s)]
        self.last_k = len(self.steps)
        """The ``done`` of every line: one past the last step."""
        book, arrivals = order_book(spec, orders)
        self.coord = Coordinator(spec, book, late=late, arrivals=arrivals)
        self.lines = tuple(ln.name for ln in spec.lines)
        self.bind, self.keys_dir, self.endpoint = bind, keys_dir, endpoint
        tcp = endpoint is not None and endpoint.startswith("tcp://")  # ipc: the owner's own
        self.control = (
            FactoryControl(endpoint, self.coord, keys_dir if tcp else None) if endpoint else None
        )
        """Pure until ``serve`` binds it; a resumed journal gives it back its answers."""
        self.resume, self.wait_s, self.on_step = resume, wait_s, on_step
        self.next_k = 0
        self.reports: dict[str, Report] = {}
        self.answers: dict[str, bytes] = {}
        """Each line's answer to the last step taken (resent to a line that asks again)."""
        self.route: dict[str, bytes] = {}
        self.refused = 0
        self.ended = False
        self.stopping = threading.Event()
        """Set from another thread to end ``serve`` early (it raises ``LightsoutError``)."""

    # -- the journal ---------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        return {"version": VERSION, "lines": list(self.lines), **self.meta}

    def _open_journal(self) -> Any:
        path = self.out / JOURNAL
        if not self.resume:
            (self.out / "lines").mkdir(parents=True, exist_ok=False)
            (self.out / "factory.json").write_text(
                json.dumps(self.meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            f = open(path, "x", encoding="utf-8")  # noqa: SIM115 (open while it serves)
            self._append(f, self._header())
            return f
        if not path.is_file():
            raise ConfigError(str(path), "", "no coordinator journal to resume from")
        rows = path.read_text(encoding="utf-8").split("\n")
        # a last line without its newline was being written when the coordinator died: it
        # was never answered, so it is taken again
        done = rows[:-1]
        try:
            head = json.loads(done[0]) if done else None
        except ValueError:
            head = None
        if head != self._header():
            why = "its header is not this run's (version, factory, seed, orders, lines)"
            raise ConfigError(str(path), "header", why)
        for n, row in enumerate(done[1:], 2):
            try:
                rec = json.loads(row)
                self._replay(rec)
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    str(path), f"line {n}", f"not a step this run took: {exc}"
                ) from None
        with open(path, "r+", encoding="utf-8") as f:  # cut the half-written line
            f.truncate(sum(len(r.encode()) + 1 for r in done))
        return open(path, "a", encoding="utf-8")

    @staticmethod
    def _append(f: Any, rec: dict[str, Any]) -> None:
        f.write(json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

    def _replay(self, rec: dict[str, Any]) -> None:
        k = rec["k"]
        if k != self.next_k:
            raise ValueError(f"step {k} after {self.next_k - 1}")
        reports = {}
        for line in self.lines:
            r = rec["reports"][line]
            fed = tuple((a, b) for a, b in r["fed"])
            reports[line] = Report("step", line, k, fed, tuple(r["heard"]))
        self._apply(reports)
        for o in rec["orders"]:
            self.coord.add_order(
                o["customer"],
                o["product"],
                o["quantity"],
                due_s=o["due_s"],
                t_ns=o["t_ns"],
                rush=o["rush"],
            )
        for a in rec.get("answered", ()):  # absent in a journal of a run with no socket
            if self.control is not None:
                self.control.remember(
                    a["user"],
                    ControlReply(a["cmd_id"], a["ok"], a["code"], a["reason"], data=a["data"]),
                )
        self._advance(k)

    # -- a step ----------------------------------------------------------------------------

    def _check(self, r: Report) -> str | None:
        """Why ``r`` cannot be taken against its line's side now, or None."""
        gate = self.coord.gates[r.line]
        left = {kind: len(q) for kind, q in gate.side.items()}
        seen = set()
        for feeder, part in r.fed:
            kind = gate.kind_of.get(feeder)
            if kind is None:
                return f"feeder {feeder!r} is not one of line {r.line}'s"
            if left.get(kind, 0) <= 0:
                return f"{feeder} made {part!r} with no {kind} left at the line side"
            if part in gate.lot_of or part in seen:
                return f"part {part!r} was made already"
            left[kind] -= 1
            seen.add(part)
        return None

    def _apply(self, reports: dict[str, Report]) -> None:
        for line in self.lines:  # the lines' order, as the threaded run's barrier gives it
            gate, r = self.coord.gates[line], reports[line]
            for feeder, part in r.fed:
                gate.fed(feeder, part)
            for h in r.heard:
                gate.hear(h)
            if r.kpis is not None:
                gate.take_kpis(r.kpis)

    def _advance(self, k: int) -> None:
        """Step the coordinator for step ``k`` (the ``done`` steps nothing) and make the
        answers."""
        if k < self.last_k:
            self.coord.step(self.steps[k])
            for line in self.lines:
                side = {kind: len(q) for kind, q in self.coord.gates[line].side.items() if q}
                self.answers[line] = encode({"op": "go", "k": k, "side": side})
        else:
            self.answers = {line: encode({"op": "end", "k": k}) for line in self.lines}
        self.next_k = k + 1

    def _take(self, journal: Any, control: FactoryControl | None) -> None:
        """Every line has reported step ``next_k``: take it, journal it, answer."""
        k = self.next_k
        reports, self.reports = self.reports, {}
        if k == self.last_k:
            for r in reports.values():  # before the journal says the step was taken
                write_files(self.out / "lines" / r.line, r.files)
        self._apply(reports)
        taken = len(self.coord.added)
        kept = []
        if control is not None and k < self.last_k:
            kept = control.serve(self.steps[k])
        orders = self.coord.added[taken:]
        rec: dict[str, Any] = {
            "k": k,
            "reports": {n: reports[n].journal() for n in self.lines},
            "orders": orders,
        }
        if kept:
            rec["answered"] = [
                {"user": user, "cmd_id": a.cmd_id, "ok": a.ok, "code": a.code}
                | {"reason": a.reason, "data": a.data}
                for user, a in kept
            ]
        self._advance(k)
        self._append(journal, rec)
        if control is not None:  # only now: an order a client was told of is on disk
            control.flush()
        if k < self.last_k and self.on_step is not None:
            self.on_step(factory_status(self.coord, self.steps[k]))

    # -- serving ---------------------------------------------------------------------------

    def serve(self) -> dict[str, Any]:
        """Take every step, put the run together (``factory.run.finish``), answer the lines'
        ``done``; return the factory's KPIs."""
        journal = self._open_journal()
        ctx: zmq.Context[Any] = zmq.Context()
        keys = LiveKeys(self.keys_dir, self.spec.name)
        start_zap(ctx, keys)
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sock.curve_publickey, sock.curve_secretkey = server_keys(self.keys_dir)
        sock.curve_server = True
        sock.zap_domain = PARTICIPANTS.encode()
        control = self.control
        kpis: dict[str, Any] | None = None
        try:
            try:
                sock.bind(self.bind)
            except zmq.ZMQError as exc:
                raise ConfigError("--bind", self.bind, f"cannot bind: {exc}") from None
            if control is not None:
                control.setup()
            if self.next_k > self.last_k:  # killed after the last step, before the results
                kpis = self._finish()
            waited = time.monotonic()
            told = waited
            ended_at = None
            while True:
                if kpis is not None and ended_at is None:
                    ended_at = time.monotonic()
                if ended_at is not None and time.monotonic() - ended_at > LINGER_S:
                    break
                if self.stopping.is_set():
                    raise LightsoutError(f"coordinator stopped at step {self.next_k}")
                if not sock.poll(200):
                    if kpis is None and time.monotonic() - max(told, waited) > WAITING_LOG_S:
                        told = time.monotonic()
                        waiting = ", ".join(n for n in self.lines if n not in self.reports)
                        print(
                            f"coordinator: waiting for {waiting} at step {self.next_k} "
                            f"(on {self.bind})",
                            file=sys.stderr,
                            flush=True,
                        )
                    if kpis is None and self.reports and time.monotonic() - waited > self.wait_s:
                        silent = [n for n in self.lines if n not in self.reports]
                        raise LightsoutError(
                            f"line {silent[0]} sent no report of step {self.next_k} in "
                            f"{self.wait_s:g} s"
                        )
                    continue
                frames = sock.recv_multipart(copy=False)
                if len(frames) != 2:
                    self.refused += 1
                    continue
                ident, body = frames[0].bytes, frames[1]
                r = read_report(body.bytes, self.lines, self.last_k)
                if not isinstance(r, Report):
                    self._refuse(sock, ident, -1, r)
                    continue
                if keys.name(user_of(body)) != r.line:
                    self._refuse(sock, ident, r.k, f"that key is not line {r.line}'s")
                    continue
                self.route[r.line] = ident
                if r.k == self.next_k - 1 and r.line in self.answers:
                    sock.send_multipart([ident, self.answers[r.line]])
                    continue
                if r.k != self.next_k:
                    self._refuse(sock, ident, r.k, f"out of step: the factory is at {self.next_k}")
                    continue
                why = self._check(r)
                if why is not None:
                    self._refuse(sock, ident, r.k, why)
                    continue
                if r.line not in self.reports:
                    self.reports[r.line] = r
                    waited = time.monotonic()
                if len(self.reports) < len(self.lines):
                    continue
                k = self.next_k
                self._take(journal, control)
                if k == self.last_k:
                    kpis = self._finish()
                for line in self.lines:
                    sock.send_multipart([self.route[line], self.answers[line]])
        finally:
            journal.close()
            if control is not None:
                control.shutdown()
            sock.close(0)
            stop_zap(ctx)
            ctx.term()
        assert kpis is not None
        return kpis

    def _refuse(self, sock: zmq.Socket[Any], ident: bytes, k: int, why: str) -> None:
        self.refused += 1
        print(f"coordinator: refused a report: {why}", file=sys.stderr, flush=True)
        sock.send_multipart([ident, encode({"op": "refused", "k": k, "why": why[:300]})])

    def _finish(self) -> dict[str, Any]:
        """The factory's results, from the lines' files and the coordinator's state (written
        again whole if a killed coordinator had begun them)."""
        for name in (DB_NAME, "events.jsonl", "kpis.json"):
            (self.out / name).unlink(missing_ok=True)
        self.ended = True
        return finish(self.spec, self.coord, self.out, self.duration_s)


def write_files(d: Path, files: dict[str, str]) -> None:
    """A line's run files, each written whole (a temporary file, then renamed)."""
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = d / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, d / name)


def journal_t_s(out: Path) -> float:
    """The sim time of the last step a coordinator journaled in ``out`` (-1: none yet);
    the launcher reads it to know how far the factory is."""
    path = out / JOURNAL
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read().split(b"\n")
    except OSError:
        return -1.0
    for row in reversed(tail[:-1]):
        try:
            k = json.loads(row).get("k")
        except ValueError:
            continue
        if isinstance(k, int):
            return k * EPOCH_S
    return -1.0
