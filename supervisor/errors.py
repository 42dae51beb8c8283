"""The supervisor's errors, children of the project's root error (``bus.errors``).

Both mean a bug or a corrupt input rather than a fault of the cell: the
supervisor counts and logs a ``LedgerError`` from a world event it cannot
place, and lets an ``IllegalTransition`` surface, since it would mean an
operation was about to be done twice or lost.
"""

from __future__ import annotations

from bus.errors import LightsoutError


class LedgerError(LightsoutError):
    """An impossible ledger change (a part created twice, moved while not in the cell)."""


class IllegalTransition(LightsoutError):
    """An operation asked to change state along no edge of its transition table."""
