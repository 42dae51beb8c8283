"""The simulated cell: a PyBullet world built from a ``CellSpec`` and the server
that owns it and the lock-step clock."""

from sim.world import World

__all__ = ["World"]
