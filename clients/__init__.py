"""Everything that talks to a cell from outside: the CLI, tables, reports."""

from clients.kpi_table import kpi_tables, print_kpis

__all__ = ["kpi_tables", "print_kpis"]
