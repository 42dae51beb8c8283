"""The factory's control socket: customer orders taken, and its status, while a factory runs.

``factory run --endpoint ipc://DIR`` binds a control ROUTER at the same address
a cell's would have (``bus.endpoints.Endpoints.control``), so the client a cell
takes orders from takes them from a factory too::

    lightsout order add phone 20 --endpoint ipc://DIR [--customer retail] [--due 600]

A ``control_request`` with command ``order``: ``action`` the product, ``value``
the quantity, ``target`` the customer (empty: the first customer of the
factory file taking the product), ``factor`` the sim seconds from now it is due
(0: ``DEFAULT_DUE_S``). A ``status`` is answered with the factory's view
(``factory.view.factory_status``: lines, orders, stores) as JSON in ``data``
(``lightsout factory status``). Requests are read at the coordinator's steps, every line
stopped at the same sim time, so an order is added at a step, logged there
(``order_added``) and released by pull from that step on; the answer says its
number. Everything is checked before it is taken (``bus.requests``: envelope,
payload, ``cmd_id``; here: the command, the product, the numbers, the customer)
and a bad request is answered with a stable code and why, never taken. A
retry of the same ``cmd_id`` gets the first answer again. At most
``MAX_PER_STEP`` requests are read a step; the rest wait in the socket.

The answers of a step wait in an outbox until ``flush``: a coordinator that
journals its steps (``factory.hub``) sends them only once the step, with the
orders it took, is on disk, so an answer a client has seen is an order that
survives the coordinator's death. A request read in a step that was never
journaled was never answered: the client's retry (the same ``cmd_id``) is
taken by the restarted coordinator as new. The journal keeps every answer given
for retries (``ControlReply`` fields), and ``remember`` gives them back to the
restarted coordinator's socket, so a retry of one it answered before it died
gets that answer, not a second order.

Over ``tcp://`` it needs keys (``--keys DIR``): it is then a CURVE server that
admits the client keys of ``roles.toml`` and rules each request by its key's
role, as a cell's control socket does (``lightsout keys create NAME --role
operator --keys DIR``; the client gives ``--key DIR/NAME.key_secret``).
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import Any

import zmq

from bus.codec import encode
from bus.endpoints import Endpoints, ensure_ipc_dir, remove_ipc
from bus.enums import ControlCode, ControlCommand
from bus.errors import ConfigError
from bus.messages import ControlReply, ControlRequest
from bus.requests import Refusal, read_request
from bus.security import apply_server, permits
from bus.sockets import make_socket
from bus.trust import CLIENTS, LiveKeys, start_zap, stop_zap, user_of
from factory.coordinator import NS, Coordinator
from factory.orders import MAX_DUE_S, MAX_QUANTITY
from factory.view import factory_status

DEFAULT_DUE_S = 3600.0
"""An order taken without a due time is due this many sim seconds after it was taken."""
MAX_PER_STEP = 64
"""Requests read at one step (a flood waits in the socket; the lines never wait for it)."""
REPLY_MEMORY = 1024
"""First answers kept for retries (by ``cmd_id``)."""


def check_endpoint(base: str, keys: bool) -> Endpoints:
    """The endpoints of a factory's control socket at ``base``, or a ``ConfigError``: it is
    ``ipc://DIR`` or ``tcp://HOST:PORT``, and tcp needs ``keys``."""
    scheme = base.partition("://")[0]
    if scheme not in ("ipc", "tcp"):
        why = "a factory's control socket is ipc://DIR or tcp://HOST:PORT"
        raise ConfigError("--endpoint", base[:80], why)
    if scheme == "tcp" and not keys:
        why = "a factory's tcp control socket needs --keys DIR (lightsout keys create)"
        raise ConfigError("--endpoint", base[:80], why)
    return Endpoints.from_base(base)


class FactoryControl:
    """A control ROUTER served at the coordinator's steps (one thread at a time): a pure
    constructor, then ``setup``, ``serve`` at each step, ``flush``, and ``shutdown``.

    With ``keys_dir`` it is a CURVE server (the keys' ``server.key``) that admits only the
    client keys ``roles.toml`` lists, each request ruled by its key's role as a cell's
    control socket rules it (``bus.security.permits``: a viewer may ask ``status``, an
    operator may place orders); a ``tcp://`` base needs it. Without keys (``ipc://``, a
    directory only its owner may enter) every client is the owner."""

    def __init__(self, base: str, coord: Coordinator, keys_dir: Path | None = None) -> None:
        self.endpoints = check_endpoint(base, keys_dir is not None)
        self.base = base
        self.coord = coord
        self.keys_dir = keys_dir
        self.live: LiveKeys | None = None
        self.ctx: zmq.Context[Any] | None = None
        self.sock: zmq.Socket[Any] | None = None
        self.answered: collections.OrderedDict[tuple[str, str], ControlReply] = (
            collections.OrderedDict()
        )
        """First answers by (client key, ``cmd_id``): a retry is answered only to its sender."""
        self.outbox: list[tuple[list[bytes], ControlReply]] = []
        """Answers read and decided at this step, sent by ``flush``."""
        self.counters: collections.Counter[str] = collections.Counter()
        self._made_dir = False
        self._bound = False
        self._zap = False

    def setup(self) -> None:
        """Bind the ROUTER (for ``ipc://``, making its directory, owner-only, if missing; with
        keys, as a CURVE server behind the keys' ZAP handler)."""
        if self.endpoints.transport == "ipc":
            self._made_dir = ensure_ipc_dir(self.base)
        self.ctx = zmq.Context()
        self.sock = make_socket(self.ctx, zmq.ROUTER)
        try:
            if self.keys_dir is not None:
                apply_server(self.sock, self.keys_dir)
                self.live = LiveKeys(self.keys_dir, self.coord.spec.name)
                start_zap(self.ctx, self.live)
                self._zap = True
                self.sock.zap_domain = CLIENTS.encode()
            self.sock.bind(self.endpoints.control)
        except zmq.ZMQError as exc:
            self.shutdown()
            raise ConfigError("--endpoint", self.base[:80], f"cannot bind: {exc}") from None
        except BaseException:
            self.shutdown()
            raise
        self._bound = True

    def shutdown(self) -> None:
        """Close the socket and remove its ipc file (and the directory, if made here)."""
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None
        if self.ctx is not None:
            if self._zap:
                stop_zap(self.ctx)
                self._zap = False
            self.ctx.term()
            self.ctx = None
        if self._bound and self.endpoints.transport == "ipc":  # never another run's socket
            remove_ipc(self.base, remove_dir=self._made_dir)
        self._bound = False

    def serve(self, t_ns: int) -> list[tuple[str, ControlReply]]:
        """Read and decide what has come in, up to ``MAX_PER_STEP`` requests; the answers wait
        for ``flush``. Return the answers first given now and kept for retries, each with
        its client's key (what a journal must hold to answer those retries after a
        restart)."""
        kept: list[tuple[str, ControlReply]] = []
        if self.sock is None:
            return kept
        for _ in range(MAX_PER_STEP):
            try:
                raw = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            # with CURVE every frame carries its sender's ZAP User-Id: its public key
            user = (user_of(raw[-1]) or "") if self.live is not None else ""
            role = self.live.role(user) if self.live is not None else "admin"
            envelope, req = read_request([f.bytes for f in raw])
            reply, new = self._answer(req, t_ns, user, role)
            if new:
                kept.append((user, reply))
            self.counters["ok" if reply.ok else f"code:{reply.code}"] += 1
            self.outbox.append((envelope, reply))
        return kept

    def flush(self) -> None:
        """Send the answers ``serve`` decided (after the step that took them is kept)."""
        out, self.outbox = self.outbox, []
        if self.sock is None:
            return
        for envelope, reply in out:
            try:
                self.sock.send_multipart([*envelope, encode(reply)], zmq.NOBLOCK)
            except zmq.ZMQError:
                self.counters["lost"] += 1

    def remember(self, user: str, reply: ControlReply) -> None:
        """Keep ``reply`` as the answer to any retry of its ``cmd_id`` from client key
        ``user`` (the newest ``REPLY_MEMORY`` are kept)."""
        self.answered[(user, reply.cmd_id)] = reply
        while len(self.answered) > REPLY_MEMORY:
            self.answered.popitem(last=False)

    def _answer(
        self, req: ControlRequest | Refusal, t_ns: int, user: str, role: str | None
    ) -> tuple[ControlReply, bool]:
        """The answer to ``req`` from ``user`` in ``role``, and whether it is one given now
        for the first time and kept."""
        if isinstance(req, Refusal):
            return ControlReply(req.cmd_id, False, req.code, req.reason), False
        if not permits(role, req.command):
            why = f"the {role or 'unknown'} role may not send {req.command.value}"
            return ControlReply(req.cmd_id, False, ControlCode.FORBIDDEN, why), False
        done = self.answered.get((user, req.cmd_id))
        if done is not None:
            return done, False
        if req.command is ControlCommand.STATUS:
            return self._status(req, t_ns), False  # not kept: a retry wants the status of now
        reply = self._order(req, t_ns)
        if reply.code == ControlCode.MALFORMED:
            return reply, False
        self.remember(user, reply)
        return reply, True

    def _status(self, req: ControlRequest, t_ns: int) -> ControlReply:
        """Lines, orders and stores as of this step (``factory.view``), as JSON in ``data``."""
        view = factory_status(self.coord, t_ns)
        why = (
            f"factory {view['factory']} at {view['t_s']:g} s: {len(view['lines'])} lines, "
            f"{view['orders_open']} of {view['orders_total']} orders open"
        )
        data = json.dumps(view, sort_keys=True, separators=(",", ":"))
        return ControlReply(req.cmd_id, True, ControlCode.OK, why, data=data)

    def _order(self, req: ControlRequest, t_ns: int) -> ControlReply:
        """Take an ``order`` request, or say why not."""

        def no(code: str, why: str) -> ControlReply:
            return ControlReply(req.cmd_id, False, code, why)

        if req.command is not ControlCommand.ORDER:
            why = f"a factory takes order and status requests only, not {req.command.value}"
            return no(ControlCode.UNKNOWN_COMMAND, why)
        count, due = req.value, req.factor
        if not (math.isfinite(count) and count == int(count) and 1 <= count <= MAX_QUANTITY):
            return no(
                ControlCode.BAD_ARGUMENT, f"count must be a whole number from 1 to {MAX_QUANTITY}"
            )
        if not (math.isfinite(due) and 0 <= due <= MAX_DUE_S):
            return no(
                ControlCode.BAD_ARGUMENT, f"due (factor) must be 0 to {MAX_DUE_S:g} s from now"
            )
        customer = req.target or next(
            (c.name for c in self.coord.spec.customers if req.action in c.products), ""
        )
        known = {c.name: c for c in self.coord.spec.customers}
        if customer not in known:
            why = (
                f"no customer {customer!r} takes {req.action!r}"
                if customer
                else (f"no customer takes {req.action!r}")
            )
            return no(ControlCode.BAD_ARGUMENT, why[:200])
        if req.action not in known[customer].products:
            return no(
                ControlCode.BAD_ARGUMENT, f"{customer} takes {', '.join(known[customer].products)}"
            )
        due_s = t_ns / NS + (due or DEFAULT_DUE_S)
        try:
            o = self.coord.add_order(customer, req.action, int(count), due_s=due_s, t_ns=t_ns)
        except ConfigError as exc:
            return no(ControlCode.BAD_ARGUMENT, f"{exc.key}: {exc.reason}"[:200])
        data = json.dumps(
            {
                "order": o.order_id,
                "customer": customer,
                "product": o.product,
                "quantity": o.quantity,
                "due_ns": o.due_ns,
                "taken_ns": t_ns,
            },
            sort_keys=True,
        )
        why = f"order {o.order_id}: {o.quantity} x {o.product} for {customer}, due {due_s:g} s"
        return ControlReply(req.cmd_id, True, ControlCode.OK, why, data=data)
