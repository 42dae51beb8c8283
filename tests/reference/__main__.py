"""``python -m tests.reference NAME RUN_DIR``: keep RUN_DIR's event log as the reference NAME."""

import sys
from pathlib import Path

from tests.reference import keep

keep(sys.argv[1], Path(sys.argv[2]))
