"""The simulated cell: a PyBullet world built from a ``CellSpec``, and the server
that owns it and the lock-step clock."""

from sim.server import SimServer
from sim.world import World

__all__ = ["SimServer", "World"]
