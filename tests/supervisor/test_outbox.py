"""Message loss and the gap watchdog go through the ``Outbox`` protocol, whatever the outbox.

The supervisor is stepped with ``robots.fakes.FakeOutbox``, not a ``Mailbox``:
a ``message_loss`` fault must still reach the link, the link's gap counts must
still wake the watchdog, and its counters must still reach the KPIs.
"""

from __future__ import annotations

import json
import math

from bus.enums import ControlCommand, PackMLState
from bus.messages import ControlRequest
from bus.simtime import NS
from tests.kit.supervisor import Harness, World, request


def test_a_message_loss_fault_impairs_the_link_of_any_outbox() -> None:
    h = Harness()
    h.step(h.hb("R1", PackMLState.EXECUTE))
    req = ControlRequest("f-1", ControlCommand.FAULT, "R1", "message_loss", 2.0, factor=0.4)
    at = h.k
    _, lines = request(h, req)
    share, until = h.out.impaired["R1"]
    assert share == 0.4
    assert until == at + 1 + math.ceil(2 * NS / h.sup.cell.tick_ns)  # from the next tick, 2 s
    (logged,) = [json.loads(x) for x in lines if json.loads(x)["kind"] == "fault_injected"]
    assert (logged["fault"], logged["share"]) == ("message_loss", 0.4)


def test_gaps_counted_by_the_outbox_wake_the_watchdog() -> None:
    w = World()
    w.step()
    assert w.log("link_lossy") == []
    w.out.gaps["R2"] = 3
    w.step()
    assert [(e["robot"], e["lost"]) for e in w.log("link_lossy")] == [("R2", 3)]


def test_the_outbox_counters_reach_the_kpis() -> None:
    h = Harness()
    h.out.malformed, h.out.late, h.out.missing = 2, 1, 5
    h.out.refused, h.out.ahead, h.out.flooded, h.out.handshakes_failed = 3, 4, 6, 7
    h.step()
    assert h.sup.report()["bus"] == {
        "late": 1,
        "malformed": 2,
        "missing": 5,
        "refused": 3,
        "ahead": 4,
        "flooded": 6,
        "handshakes_failed": 7,
    }
