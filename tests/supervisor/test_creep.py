"""Cycle creep: the supervisor tells a creeping robot its growing slowdown every second, and
a restarted supervisor carries it on."""

from __future__ import annotations

from bus.enums import ControlCommand
from bus.messages import ControlRequest, Degrade
from tests.kit.supervisor import Harness, request


def test_a_creeping_robot_is_told_a_growing_slowdown_every_second() -> None:
    h = Harness()
    sent, lines = request(
        h, ControlRequest("c1", ControlCommand.FAULT, "R2", "cycle_creep", 4.0, 3.0)
    )
    assert any('"fault":"cycle_creep"' in line and '"factor":3.0' in line for line in lines)
    told = [m for _, m in sent if isinstance(m, Degrade)]
    for _ in range(24 * 6):
        told += [m for dst, m in h.step() if isinstance(m, Degrade) and dst == "R2"]
    factors = [m.factor for m in told]
    assert 5 <= len(factors) <= 8  # once a sim second
    assert factors == sorted(factors) and factors[0] < 1.2
    assert factors[-1] == 3.0  # full wear after its 4 s, and it stays
    assert all(m.robot == "R2" and m.until_ns > 10**18 for m in told)
    assert factors.count(3.0) >= 2
    assert h.sup.desk.snapshot()["creeps"]["R2"]["factor"] == 3.0
