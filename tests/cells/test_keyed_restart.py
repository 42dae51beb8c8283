"""A killed supervisor comes back on a cell signed with CURVE keys, over tcp or ipc.

Under keys the supervisor (the cell bus's hub) learns each agent's route only
from the agent's signed hello; a restarted supervisor waits for every hello
before it joins the clock. The agents' sockets reconnect on their own, so they
must say hello again (``Mailbox.rehello``): this runs that path in real
processes and checks the run is the same, event for event, as the unsigned one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.cellspec import CellSpec
from bus.endpoints import free_loopback_base
from bus.enums import FaultKind
from bus.simtime import NS
from cells.faults import ScheduledFault
from cells.launch import RunOptions, run_cell


@pytest.mark.timeout(600)
@pytest.mark.parametrize("over", ["tcp", "ipc"])
def test_a_killed_supervisor_of_a_keyed_cell_comes_back_as_an_unsigned_one_does(
    cell: CellSpec, tmp_path: Path, over: str
) -> None:
    """``ipc``: no ``--endpoint``, the private ipc base ``--processes`` makes (keyed too)."""
    crash = (ScheduledFault(20.0, "supervisor", FaultKind.SUPERVISOR_CRASH),)
    keyed = run_cell(
        cell,
        tmp_path / "keyed",
        RunOptions(
            seed=1,
            duration_s=45,
            processes=True,
            faults=crash,
            endpoint=free_loopback_base() if over == "tcp" else None,
            keys_dir=tmp_path / "keys",
        ),
    )
    plain = run_cell(
        cell, tmp_path / "plain", RunOptions(seed=1, duration_s=45, processes=True, faults=crash)
    )
    assert keyed["sim"]["restarts"] == {"supervisor": 1}
    # the run was signed: its participants' keys were made for it
    assert (tmp_path / "keys" / "participants" / cell.name / "R1.key_secret").exists()
    rows = (tmp_path / "keyed" / "events.jsonl").read_text().splitlines()
    kinds = [json.loads(r)["kind"] for r in rows]
    assert "supervisor_restored" in kinds
    after = [json.loads(r) for r in rows if json.loads(r)["t_ns"] > 25 * NS]
    assert any(e["kind"] == "op_done" for e in after), "nothing was done after the restart"
    assert rows == (tmp_path / "plain" / "events.jsonl").read_text().splitlines()
    assert keyed["ledger_balanced"] and keyed["units_completed"] == plain["units_completed"]
