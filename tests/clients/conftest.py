"""Fixtures for client tests: a zmq context and a private ipc base per test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from bus.endpoints import Endpoints


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    """A context of its own; every socket in it has linger 0, so ``term`` never hangs."""
    c: zmq.Context[Any] = zmq.Context()
    try:
        yield c
    finally:
        c.term()


@pytest.fixture
def base() -> Iterator[str]:
    """An ``ipc://`` base in a fresh 0700 directory (short: ipc paths are limited to ~100 bytes)."""
    path = tempfile.mkdtemp(prefix="lo-")
    os.chmod(path, 0o700)
    try:
        yield f"ipc://{path}"
    finally:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)


@pytest.fixture
def endpoints(base: str) -> Endpoints:
    """Every socket address of the test's cell."""
    return Endpoints.from_base(base)
