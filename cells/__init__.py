"""Cell files, their validation, and the launcher that wires a cell."""

from cells.schema import load_cell, parse_cell

__all__ = ["load_cell", "parse_cell"]
