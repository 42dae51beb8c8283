"""The few raw zmq helpers everyone shares: sockets that never hang on close."""

from __future__ import annotations

from typing import Any

import zmq


def make_socket(
    ctx: zmq.Context[Any], kind: int, *, identity: str | None = None
) -> zmq.Socket[Any]:
    """A socket with ``linger=0`` (close never blocks) and an optional identity."""
    sock: zmq.Socket[Any] = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity.encode())
    if kind == zmq.ROUTER:
        # a restarted process reusing its name takes its identity over
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
    return sock
