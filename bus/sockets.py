"""The few raw zmq helpers everyone shares: sockets that never hang on close."""

from __future__ import annotations

from typing import Any

import zmq

from bus.codec import MAX_PAYLOAD

MAX_FRAME = 2 * MAX_PAYLOAD
"""Largest message a socket takes in (bytes, ``zmq.MAXMSGSIZE``, 2 MiB): set before any read,
so ZeroMQ drops the connection of a peer that sends more instead of buffering it whole. A
payload between the codec's 1 MiB and this still gets its clear ``malformed`` answer."""


def make_socket(
    ctx: zmq.Context[Any], kind: int, *, identity: str | bytes | None = None
) -> zmq.Socket[Any]:
    """A socket with ``linger=0`` (close never blocks), ``MAX_FRAME`` and an optional identity."""
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity.encode() if isinstance(identity, str) else identity)
    if kind == zmq.ROUTER:
        # a restarted process reusing its name takes its identity over (without CURVE: with
        # keys, the receiver routes by the authenticated key and turns this off)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    return sock
