"""A scripted cell host made of raw pyzmq sockets, for client tests.

``FakeHost`` binds a ROUTER on a cell's control address and answers each
``control_request`` on its own thread with whatever ``handler`` returns
(``None`` drops the request, as a lost message would). Like the real host it
remembers answered ids and repeats the first answer, counting what it
"applied" only once. ``FakeTelemetry`` is an XPUB the test thread publishes
on; it waits for subscriptions first, so no frame is lost to a slow joiner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from bus.codec import decode, encode
from bus.endpoints import Endpoints
from bus.enums import ExecStep, PackMLState
from bus.messages import CellStatus, ControlReply, ControlRequest, Message, RobotStatus

Handler = Callable[[ControlRequest], ControlReply | None]


def cell_status(robots: int = 4, *, state: PackMLState = PackMLState.EXECUTE) -> CellStatus:
    """A plausible status of a cell with ``robots`` robots R1..Rn."""
    return CellStatus(
        t_ns=12_500_000_000,
        pace="fast",
        rtf=0.0,
        robots=tuple(
            RobotStatus(f"R{i}", state, ExecStep.PICK, f"u1/op{i}", "", True, "")
            for i in range(1, robots + 1)
        ),
        units_completed=3,
        units_in_progress=2,
        ledger_balanced=True,
        refused=2,
        malformed=1,
        dropped=5,
    )


def ok(req: ControlRequest) -> ControlReply:
    """The default answer: ``status`` gets a 4-robot status, the rest ``ok``."""
    if req.command.value == "status":
        return ControlReply(req.cmd_id, True, "ok", "", status=cell_status())
    return ControlReply(req.cmd_id, True, "ok", f"{req.command.value} done")


class FakeHost(threading.Thread):
    """Answers control requests on ``endpoints.control`` until ``stop()``."""

    def __init__(self, ctx: zmq.Context[Any], endpoints: Endpoints, handler: Handler = ok) -> None:
        super().__init__(name="fake-host", daemon=True)
        self.handler = handler
        self.requests: list[ControlRequest] = []
        """Every request received, retries included."""
        self.applied: list[ControlRequest] = []
        """Requests acted on: a repeated id is not acted on again."""
        self.raw: list[list[bytes]] = []
        """Frames to send (from the test thread) before the next answer."""
        self._answered: dict[str, ControlReply] = {}
        self._lock = threading.Condition()
        self._halt = threading.Event()
        self._sock: zmq.Socket[Any] = ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoints.control)

    def inject(self, *messages: list[bytes]) -> None:
        """Send these messages (lists of frames) to the client just before the next answer."""
        with self._lock:
            self.raw.extend(messages)

    def wait_request(
        self, pred: Callable[[ControlRequest], bool], timeout_s: float = 5.0
    ) -> ControlRequest:
        """The first request (retries included) that ``pred`` accepts, waiting for it to come."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for r in self.requests:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                assert left > 0, f"no such request in {[r.command.value for r in self.requests]}"
                self._lock.wait(left)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                if not self._sock.poll(20, zmq.POLLIN):
                    continue
                ident, payload = self._sock.recv_multipart()
                req = decode(payload)
                assert isinstance(req, ControlRequest)
                with self._lock:
                    self.requests.append(req)
                    raw, self.raw = self.raw, []
                    self._lock.notify_all()
                reply = self._answered.get(req.cmd_id)
                if reply is None:
                    reply = self.handler(req)
                    if reply is None:
                        continue
                    self.applied.append(req)
                    self._answered[req.cmd_id] = reply
                for frames in raw:
                    self._sock.send_multipart([ident, *frames])
                self._sock.send_multipart([ident, encode(reply)])
        finally:
            self._sock.close(0)

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._halt.set()
        self.join(timeout=5)


class FakeTelemetry:
    """An XPUB on ``endpoints.telemetry`` that the test publishes frames on."""

    def __init__(self, ctx: zmq.Context[Any], endpoints: Endpoints) -> None:
        self.sock: zmq.Socket[Any] = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.bind(endpoints.telemetry)
        self.subscribed: set[str] = set()

    def wait_subscribed(self, topics: tuple[str, ...], timeout_s: float = 5.0) -> None:
        """Block until a subscriber asked for every one of ``topics``."""
        deadline = time.monotonic() + timeout_s
        while not set(topics) <= self.subscribed:
            left = deadline - time.monotonic()
            assert left > 0, f"subscriptions seen: {sorted(self.subscribed)}"
            if self.sock.poll(round(left * 1000), zmq.POLLIN):
                frame = self.sock.recv()
                if frame[:1] == b"\x01":
                    self.subscribed.add(frame[1:].decode())

    def publish(self, topic: str, msg: Message) -> None:
        """Send one telemetry message as the host does: ``[topic, payload]``."""
        self.sock.send_multipart([topic.encode(), encode(msg)])

    def send_raw(self, frames: list[bytes]) -> None:
        """Send any frames at all."""
        self.sock.send_multipart(frames)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close(0)
