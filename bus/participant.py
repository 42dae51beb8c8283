"""The loop every clocked participant runs: the same in a thread or a process.

A participant (a robot agent, the supervisor) implements ``Participant``; the
loop owns the sockets, so the participant itself stays a plain object that
can be stepped by a test with no sockets at all (py_trees' lifecycle).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import zmq

from bus.clock import ClockClient
from bus.endpoints import Endpoints
from bus.mailbox import Mailbox
from bus.messages import Done, Envelope, Message, Shutdown, Tick
from bus.trust import LiveKeys, NodeKeys, start_zap, stop_zap

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where a participant sends cell messages during a tick, and what its link counted.

    A participant reads the counters and impairs a link only through this
    protocol, never by testing for the concrete ``Mailbox``: a test's outbox
    that keeps the same counters exercises the same watchdogs.
    """

    malformed: int
    """Frames received that were not valid messages (refused with an error reply)."""
    late: int
    """Messages that arrived after the tick they were counted for."""
    missing: int
    """Messages announced by the barrier that never arrived."""
    refused: int
    """Messages refused because their sender's name is not bound to the key that sent them."""
    ahead: int
    """Envelopes stamped too far ahead, or past the pending bound (dropped)."""
    flooded: int
    """Messages past a sender's per-tick cap (dropped)."""

    @property
    def handshakes_failed(self) -> int:
        """Connections turned away at the handshake (no key, or a key of no participant)."""

    @property
    def gaps(self) -> Mapping[str, int]:
        """Per sender: messages missing from its sequence so far (a lossy link)."""

    def send(self, dst: str, body: Message) -> bool:
        """Send ``body`` to ``dst``."""

    def impair(self, peer: str, share: float, until_tick: int) -> None:
        """Lose ``share`` of the messages to and from ``peer`` until ``until_tick`` (a fault)."""


class Participant(Protocol):
    """What the clock loop drives."""

    name: str
    role: str

    def step(self, tick: Tick, inbox: list[Envelope], out: Outbox) -> Message | None:
        """Handle one tick: the inbox in order, then act; return the world command."""

    def wake(self) -> int:
        """After ``step``: the earliest sim time it must be stepped again unless a message
        or a world event it watches comes first (the event clock's lookahead; 0: next tick)."""

    def finish(self, t_ns: int, reason: str) -> None:
        """The run ended at ``t_ns``: write results."""


def run_participant(
    part: Participant,
    ctx: zmq.Context[Any],
    endpoints: Endpoints,
    *,
    hub: bool,
    silence_s: float = 60.0,
    guard_s: float = 10.0,
    stop: threading.Event | None = None,
    peers: int = 1,
    node: NodeKeys | None = None,
    live: LiveKeys | None = None,
) -> int:
    """Join the clock and step ``part`` until Shutdown; return an exit code.

    ``peers``: how many cell-bus connections to wait for before joining (a
    hub: one per spoke; a spoke: its hub), so that no message of the first
    ticks is lost to a connection still being made.

    Gives up (exit code 3) if the clock says nothing for ``silence_s`` seconds
    of wall time: a cell whose clock died must not leave orphans behind.

    ``node``: this participant's CURVE keys (a ``tcp://`` cell with keys); the
    hub also needs ``live``, the participant keys it admits on the cell bus.
    """
    if hub and node is not None and live is not None:
        start_zap(ctx, live)
    clock = ClockClient(ctx, endpoints.clock, part.name, role=part.role, keys=node)
    mailbox = Mailbox(
        ctx, endpoints.cell, part.name, hub=hub, guard_s=guard_s, node=node, live=live
    )
    mailbox.setup()
    mailbox.wait_connected(peers, silence_s)
    clock.setup()
    code = 0
    try:
        while stop is None or not stop.is_set():
            msg = _next(clock, silence_s, stop, mailbox)
            if msg is None:
                if stop is not None and stop.is_set():
                    break
                log.error("%s: the clock has been silent for %.0f s; exiting", part.name, silence_s)
                code = 3
                break
            if isinstance(msg, Shutdown):
                part.finish(msg.t_ns, msg.reason)
                break
            done = step_once(part, mailbox, msg)
            clock.done(done.tick, done.sent, done.act, done.wake_ns)
    finally:
        clock.close()
        mailbox.close()
        if hub and node is not None and live is not None:
            stop_zap(ctx)
    return code


def step_once(part: Participant, mailbox: Mailbox, tick: Tick) -> Done:
    """One tick of ``part``: the messages of the tick before, its step, and its answer (what
    was sent to whom, its act, when it must be ticked again)."""
    inbox = mailbox.collect(tick)
    act = part.step(tick, inbox, mailbox)
    sent = mailbox.take_counts()
    return Done(tick=tick.tick, name=part.name, sent=sent, act=act, wake_ns=part.wake())


class LocalMember:
    """A participant stepped on the clock's own thread (``ClockServer.attach``).

    The loop of ``run_participant`` without its socket to the clock: the clock calls
    ``step`` with the Tick it would have sent, and takes the Done it would have read. The
    cell bus is the same ``Mailbox`` over real sockets, so the messages between members,
    their counts and the causal barrier are the ones of a participant on a thread of its
    own. For a one-process cell over ``inproc`` only, where nothing outside the process
    talks to the clock: a cell with keys or over ``ipc``/``tcp`` keeps its threads.
    """

    def __init__(
        self,
        part: Participant,
        ctx: zmq.Context[Any],
        endpoints: Endpoints,
        *,
        hub: bool,
        guard_s: float = 10.0,
    ) -> None:
        self.part = part
        self.name, self.role = part.name, part.role
        self.mailbox = Mailbox(ctx, endpoints.cell, part.name, hub=hub, guard_s=guard_s)

    def setup(self) -> None:
        """Bind (the hub) or connect (a spoke) the cell socket: a hub first."""
        self.mailbox.setup()

    def step(self, tick: Tick) -> Done:
        """One tick, as ``run_participant`` runs it."""
        return step_once(self.part, self.mailbox, tick)

    def finish(self, t_ns: int, reason: str) -> None:
        """The run ended: the participant writes its results."""
        self.part.finish(t_ns, reason)

    def close(self) -> None:
        """Close the cell socket."""
        self.mailbox.close()


STOP_CHECK_S = 0.25
"""How often a participant waiting for the clock looks at its ``stop`` event."""


def _next(
    clock: ClockClient, silence_s: float, stop: threading.Event | None, mailbox: Mailbox
) -> Tick | Shutdown | None:
    """The clock's next message, or None after ``silence_s`` or as soon as ``stop`` is set.

    A run that is interrupted sets ``stop``: its threads leave within a
    fraction of a second instead of waiting out the silence. Between slices
    of the wait a keyed spoke greets a hub that came back (``Mailbox.rehello``).
    """
    mailbox.rehello()
    deadline = time.monotonic() + silence_s
    while stop is None or not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        msg = clock.next(min(left, STOP_CHECK_S))
        if msg is not None:
            return msg
        mailbox.rehello()
    return None
