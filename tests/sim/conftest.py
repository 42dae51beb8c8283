"""Fixtures of the world tests: the kit's assembly cell built in a fresh world."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.world import World
from tests.sim.simkit import make_cell


@pytest.fixture
def world() -> Iterator[World]:
    """A world of the kit's cell, seed 0, set up and shut down around one test."""
    w = World(make_cell(), seed=0)
    w.setup()
    yield w
    w.shutdown()
