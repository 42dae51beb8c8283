"""Fixtures every test package shares (pyzmq's root ``conftest.py``): sockets and cells.

``ctx`` is a zmq context of the test's own, ``base`` / ``endpoints`` a private
``ipc://`` cell address, ``cell`` the assembly cell as its file describes it
(a module that needs another cell defines its own ``cell``). Scripted
participants and hand-built cells are in ``tests.kit``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.cellspec import CellSpec
from bus.endpoints import Endpoints
from cells.schema import load_cell

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def cell() -> CellSpec:
    """The assembly cell, loaded from ``cells/assembly.toml`` (frozen: shared by every test)."""
    return load_cell(ROOT / "cells" / "assembly.toml")
