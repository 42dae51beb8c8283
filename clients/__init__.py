"""Everything that talks to a cell from outside: the CLI, control client, console, tables, reports."""

from bus.security import CurveKeys
from clients.console_model import ConsoleModel
from clients.control import ControlClient, ControlError, Gap, NoAnswer, Subscriber
from clients.kpi_table import kpi_tables, print_kpis

__all__ = [
    "ConsoleModel",
    "ControlClient",
    "ControlError",
    "CurveKeys",
    "Gap",
    "NoAnswer",
    "Subscriber",
    "kpi_tables",
    "print_kpis",
]
