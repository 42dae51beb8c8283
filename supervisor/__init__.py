"""The cell supervisor: recipes to operations, allocation policies, the ledger, KPIs."""

from supervisor.allocation import POLICIES
from supervisor.errors import LedgerError
from supervisor.ledger import Ledger
from supervisor.supervisor import Supervisor

__all__ = ["POLICIES", "Ledger", "LedgerError", "Supervisor"]
