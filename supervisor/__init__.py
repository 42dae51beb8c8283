"""The cell supervisor: recipes to operations, contract-net allocation, the ledger, KPIs."""

from supervisor.ledger import Ledger, LedgerError
from supervisor.supervisor import Supervisor

__all__ = ["Ledger", "LedgerError", "Supervisor"]
