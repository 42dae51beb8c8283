"""The Python client of a running cell: control requests and the telemetry feed.

``ControlClient`` speaks ``control_request`` / ``control_reply`` to the cell
host's control socket; every method sends one request and returns the parsed
answer or raises ``ControlError`` with the reply's stable ``code``.
``Subscriber`` reads the telemetry socket and checks each topic's ``seq``, so
a viewer knows when it missed something and can ask for a ``snapshot``.

Both only observe or ask: the cell host decides. Nothing here blocks longer
than its timeout, so a dead cell gives an error, never a hang.
"""

from __future__ import annotations

import collections
import json
import logging
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any, NamedTuple

import msgpack
import zmq

from bus.codec import MAX_PAYLOAD, CodecError, decode, encode, from_wire
from bus.endpoints import Endpoints
from bus.enums import ControlCode, ControlCommand, PackMLCommand, UnitMode
from bus.errors import ConfigError, LightsoutError, ProtocolError
from bus.messages import (
    TOPICS,
    CellStatus,
    ControlReply,
    ControlRequest,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartsFrame,
)
from bus.security import CurveKeys
from bus.sockets import make_socket

log = logging.getLogger(__name__)

BUSY_RETRIES = 8
"""Times a request answered ``busy`` (this client sent too much too fast) is sent again,
after a growing pause (20 ms, 40 ms, ... up to 1 s), before the client gives up."""

TOPIC_TYPES: dict[str, type[Message]] = {
    "joints": JointsFrame,
    "parts": PartsFrame,
    "events": EventFrame,
    "kpis": KpiFrame,
}
"""The one message type each topic carries."""


class ControlError(LightsoutError):
    """The cell host refused a request; ``code`` is the reply's stable code.

    Codes: ``malformed``, ``unknown_command``, ``bad_argument``,
    ``unknown_robot``, ``refused``, ``forbidden``, ``busy``, ``paused``,
    ``unavailable`` (from the host), and ``timeout`` (no answer at all).
    """

    def __init__(self, what: str, code: str, reason: str) -> None:
        self.what = what
        self.code = code
        self.reason = reason
        super().__init__(f"{what}: {reason} ({code})")


class NoAnswer(ControlError):
    """No reply within the timeout, after every retry: the cell is gone, busy or keys are wrong."""


def parse_command(text: str | PackMLCommand | UnitMode) -> PackMLCommand | UnitMode:
    """A PackML command, or a unit mode to change to, from its name in any case (``hold``,
    ``Hold``, ``maintenance``)."""
    if isinstance(text, PackMLCommand | UnitMode):
        return text
    choices: tuple[PackMLCommand | UnitMode, ...] = (*PackMLCommand, *UnitMode)
    for cmd in choices:
        if cmd.value.lower() == text.lower():
            return cmd
    known = ", ".join(c.value.lower() for c in PackMLCommand)
    modes = ", ".join(m.value.lower() for m in UnitMode)
    raise ConfigError(
        "command", text, f"not a PackML command; use one of {known} (or a mode: {modes})"
    )


def _context(ctx: zmq.Context[Any] | None) -> zmq.Context[Any]:
    return ctx if ctx is not None else zmq.Context.instance()


class ControlClient:
    """Requests to one cell's control socket over a DEALER (linger 0).

    Each request carries a fresh ``cmd_id``. When no answer comes within
    ``timeout_s`` the same bytes, same id, are sent again (``retries`` times):
    the host answers an id it has seen with its first answer, so a retried
    ``hold`` is never applied twice and a late answer to an earlier try is
    still the right one. Replies to other ids (a request given up on) are
    dropped.
    """

    def __init__(
        self,
        endpoint_base: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        curve: CurveKeys | None = None,
        ctx: zmq.Context[Any] | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ConfigError("ControlClient", "timeout_s", f"must be > 0, got {timeout_s}")
        if retries < 0:
            raise ConfigError("ControlClient", "retries", f"must be >= 0, got {retries}")
        self.endpoints = Endpoints.from_base(endpoint_base)
        self.timeout_s = timeout_s
        self.retries = retries
        self.malformed = 0
        """Replies that were not a single valid ``control_reply`` frame."""
        self.stale = 0
        """Replies to requests given up on, dropped."""
        self.sent = 0
        """Request frames sent, retries included."""
        self._sock: zmq.Socket[Any] | None = make_socket(_context(ctx), zmq.DEALER)
        try:
            if curve is not None:
                curve.apply(self._sock)
            self._sock.connect(self.endpoints.control)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the socket (pending requests are dropped)."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ requests

    def status(self) -> CellStatus:
        """The clock, every robot's state and the production counts."""
        reply = self.request(ControlCommand.STATUS)
        if reply.status is None:
            raise ProtocolError("status: the reply carries no cell_status")
        return reply.status

    def snapshot(self) -> dict[str, Any]:
        """Robots, live parts, KPIs and the last telemetry ``seq`` per topic (the reply's JSON)."""
        reply = self.request(ControlCommand.SNAPSHOT)
        try:
            data = json.loads(reply.data)
        except ValueError as exc:
            raise ProtocolError(f"snapshot: the reply's data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProtocolError("snapshot: the reply's data is not a JSON object")
        return data

    def robot(self, robot: str, command: PackMLCommand | UnitMode | str) -> ControlReply:
        """A PackML command (or a change of unit mode) for one robot; returns once its agent
        accepted it."""
        cmd = parse_command(command)
        return self.request(ControlCommand.ROBOT, target=robot, action=cmd.value)

    def cell(self, command: PackMLCommand | UnitMode | str) -> ControlReply:
        """A PackML command (or a change of unit mode) for every robot; returns once all
        accepted it."""
        cmd = parse_command(command)
        return self.request(ControlCommand.CELL, action=cmd.value)

    def fault(
        self,
        target: str,
        kind: str,
        duration_s: float = 0.0,
        *,
        permanent: bool = False,
        factor: float = 0.0,
    ) -> ControlReply:
        """Inject a fault of ``kind`` (e.g. ``robot_fault``, ``gripper_drop``) on ``target``.

        ``permanent`` (a ``robot_fault`` only, with no duration): the robot
        fails for good and the supervisor never clears it. ``factor`` is the
        kind's own amount: how many times slower (``slow_robot``), or the share
        of messages lost (``message_loss``).
        """
        return self.request(
            ControlCommand.FAULT,
            target=target,
            action=kind,
            value=duration_s,
            permanent=permanent,
            factor=factor,
        )

    def pace(self, mode: str, factor: float = 1.0) -> ControlReply:
        """Set the clock: ``pause``, ``run``, ``realtime`` (at ``factor`` x wall time) or ``fast``."""
        return self.request(ControlCommand.PACE, action=mode, value=factor)

    def order(self, product: str, count: int) -> ControlReply:
        """Add an order for ``count`` units of ``product``."""
        return self.request(ControlCommand.ORDER, action=product, value=float(count))

    def shutdown(self) -> ControlReply:
        """End the run now; results are written as at the end of its duration."""
        return self.request(ControlCommand.SHUTDOWN)

    def request(
        self,
        command: ControlCommand,
        *,
        target: str = "",
        action: str = "",
        value: float = 0.0,
        permanent: bool = False,
        factor: float = 0.0,
    ) -> ControlReply:
        """Send one request (retrying on silence) and return its ``ok`` reply, or raise."""
        req = ControlRequest(
            uuid.uuid4().hex,
            command,
            target,
            action,
            float(value),
            factor=float(factor),
            permanent=permanent,
        )
        what = " ".join(p for p in (command.value, target, action) if p)
        reply = self._exchange(req, what)
        if not reply.ok:
            raise ControlError(what, reply.code or "error", reply.reason or "refused")
        return reply

    def _exchange(self, req: ControlRequest, what: str) -> ControlReply:
        sock = self._require()
        payload = encode(req)
        attempt, busy = 0, 0
        while attempt <= self.retries:
            try:
                sock.send(payload, zmq.NOBLOCK)
                self.sent += 1
            except zmq.Again:
                pass  # the queue to the host is full: as good as no answer this time
            reply = self._wait(req.cmd_id, time.monotonic() + self.timeout_s)
            if reply is not None and reply.code == ControlCode.BUSY and busy < BUSY_RETRIES:
                busy += 1  # the host asks this client to slow down: back off, then again
                time.sleep(min(1.0, 0.02 * 2**busy))
                continue
            if reply is not None:
                return reply
            attempt += 1
            log.info("control: no answer to %s (%s) yet; sending again", what, req.cmd_id)
        tries = self.retries + 1
        raise NoAnswer(
            what,
            "timeout",
            f"no answer from {self.endpoints.control} in {tries} "
            f"{'try' if tries == 1 else 'tries'} of {self.timeout_s:g} s",
        )

    def _wait(self, cmd_id: str, deadline: float) -> ControlReply | None:
        sock = self._require()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(max(1, round(left * 1000)), zmq.POLLIN):
                return None
            frames = sock.recv_multipart()
            if len(frames) != 1:
                self.malformed += 1
                continue
            try:
                reply = decode(frames[0])
            except CodecError as exc:
                self.malformed += 1
                log.warning("control: unreadable reply: %s", exc)
                continue
            if not isinstance(reply, ControlReply):
                self.malformed += 1
                continue
            # an error reply with no id is the host failing to read our request
            if reply.cmd_id == cmd_id or (not reply.cmd_id and not reply.ok):
                return reply
            self.stale += 1

    def _require(self) -> zmq.Socket[Any]:
        if self._sock is None:
            raise LightsoutError("the control client is closed")
        return self._sock


class Gap(NamedTuple):
    """Telemetry lost on ``topic``: ``expected`` was the next seq, ``got`` arrived instead."""

    topic: str
    expected: int
    got: int


class Subscriber:
    """Telemetry from one cell: a SUB socket, decoded frames and per-topic gap tracking.

    The first frame of a topic sets where counting starts (a late subscriber
    is not a gap). After that every ``seq`` must be the last plus one; a jump
    is recorded in ``gaps`` and ``lost`` (a ``seq`` going back means the host
    restarted). A frame that is not ``[topic, payload]`` of the topic's type
    is counted in ``malformed`` and skipped, never raised.
    """

    GAP_MEMORY = 1000
    """Gaps kept in ``gaps`` (``gap_count`` counts them all)."""

    def __init__(
        self,
        endpoint_base: str,
        topics: Iterable[str] = TOPICS,
        *,
        curve: CurveKeys | None = None,
        ctx: zmq.Context[Any] | None = None,
        hwm: int = 10_000,
    ) -> None:
        self.topics = tuple(topics)
        unknown = [t for t in self.topics if t not in TOPIC_TYPES]
        if unknown or not self.topics:
            why = f"unknown topic {unknown[0]!r}" if unknown else "no topic"
            raise ConfigError("--topics", ",".join(self.topics), f"{why}; use {', '.join(TOPICS)}")
        self.endpoints = Endpoints.from_base(endpoint_base)
        self.last_seq: dict[str, int] = {}
        """The last ``seq`` seen per topic."""
        self.gaps: collections.deque[Gap] = collections.deque(maxlen=self.GAP_MEMORY)
        """The most recent gaps, oldest first."""
        self.gap_count = 0
        """Every gap seen."""
        self.lost = 0
        """Frames known lost (the sum of the forward jumps)."""
        self.malformed = 0
        """Frames that were not valid telemetry."""
        self.received = 0
        """Valid frames received (also those ``latest`` skipped)."""
        self._sock: zmq.Socket[Any] | None = make_socket(_context(ctx), zmq.SUB)
        try:
            self._sock.setsockopt(zmq.RCVHWM, hwm)
            if curve is not None:
                curve.apply(self._sock)
            for t in self.topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, t.encode())
            self._sock.connect(self.endpoints.telemetry)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def poll(self, timeout_s: float, *, latest: bool = False, limit: int = 10_000) -> list[Message]:
        """Frames waiting now, or the first to come within ``timeout_s``, in arrival order.

        Drains up to ``limit`` frames in one go. With ``latest``, only the
        newest ``joints``, ``parts`` and ``kpis`` frame of the batch is
        decoded and returned (each is a full picture; a viewer needs no
        other), while every ``events`` frame is; ``seq`` is checked on all.
        """
        sock = self._sock
        if sock is None:
            raise LightsoutError("the subscriber is closed")
        if not sock.poll(max(0, round(timeout_s * 1000)), zmq.POLLIN):
            return []
        batch: list[list[bytes]] = []
        for _ in range(limit):
            try:
                batch.append(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
        return self.take(batch, latest=latest)

    def take(self, batch: Iterable[list[bytes]], *, latest: bool = False) -> list[Message]:
        """Check and decode a batch of raw ``[topic, payload]`` messages, as ``poll`` does.

        Public so frames from elsewhere (a recording) go through the same
        checks and gap counting as frames from the socket.
        """
        picked: list[tuple[str, dict[str, Any]]] = []
        newest: dict[str, int] = {}
        for frames in batch:
            item = self._peek(frames)
            if item is None:
                continue
            if latest and item[0] != "events":
                newest[item[0]] = len(picked)
            picked.append(item)
        keep = set(newest.values())
        out: list[Message] = []
        for i, (topic, obj) in enumerate(picked):
            if latest and topic != "events" and i not in keep:
                continue
            try:
                msg = from_wire(obj)
            except CodecError as exc:
                self.malformed += 1
                log.debug("telemetry: malformed %s frame: %s", topic, exc)
                continue
            if not isinstance(msg, TOPIC_TYPES[topic]):
                self.malformed += 1
                continue
            out.append(msg)
        return out

    def _peek(self, frames: list[bytes]) -> tuple[str, dict[str, Any]] | None:
        """Check a frame's shape and ``seq`` cheaply (full decoding is for the ones kept)."""
        if len(frames) != 2 or len(frames[1]) > MAX_PAYLOAD:
            self.malformed += 1
            return None
        topic = frames[0].decode("utf-8", "replace")
        if topic not in TOPIC_TYPES:
            self.malformed += 1
            return None
        try:
            obj = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
        except Exception:  # msgpack raises many types for bad bytes
            self.malformed += 1
            return None
        seq = obj.get("seq") if isinstance(obj, dict) else None
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or obj.get("type") != TOPIC_TYPES[topic].TAG
        ):
            self.malformed += 1
            return None
        self.received += 1
        self._count(topic, seq)
        return topic, obj

    def _count(self, topic: str, seq: int) -> None:
        last = self.last_seq.get(topic)
        self.last_seq[topic] = seq
        if last is None or seq == last + 1:
            return
        self.gaps.append(Gap(topic, last + 1, seq))
        self.gap_count += 1
        if seq > last + 1:
            self.lost += seq - last - 1
