"""The control client and subscriber against a real running cell (``lightsout run`` over ipc)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.enums import PackMLState
from bus.messages import EventFrame, JointsFrame, KpiFrame, Message, PartsFrame
from clients.cli import main
from clients.control import ControlClient, ControlError, Subscriber
from tests.clients.livecell import LiveCell, poll_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCell]:
    with LiveCell(tmp_path_factory.mktemp("live-control")) as c:
        yield c


def state_of(cell: LiveCell, robot: str) -> PackMLState:
    return next(r.state for r in cell.status().robots if r.robot == robot)


def until_state(cell: LiveCell, robot: str, state: PackMLState) -> None:
    poll_until(
        lambda: True if state_of(cell, robot) is state else None,
        f"{robot} in {state.value}",
        timeout_s=30,
    )


def test_status_shows_the_four_robots(cell: LiveCell) -> None:
    status = cell.status()
    assert [r.robot for r in status.robots] == ["R1", "R2", "R3", "R4"]
    assert all(r.alive for r in status.robots)
    assert status.pace == "fast" and status.t_ns > 0


def test_hold_puts_a_robot_in_held_and_unhold_brings_it_back(cell: LiveCell) -> None:
    with ControlClient(cell.base) as c:
        assert c.robot("R1", "hold").ok
        until_state(cell, "R1", PackMLState.HELD)
        others = {r.robot: r.state for r in cell.status().robots if r.robot != "R1"}
        assert PackMLState.HELD not in others.values()
        assert c.robot("R1", "unhold").ok
        until_state(cell, "R1", PackMLState.EXECUTE)


def test_the_cli_holds_and_resumes_the_whole_cell(
    cell: LiveCell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cell", "hold", "--endpoint", cell.base]) == 0
    for r in ("R1", "R2", "R3", "R4"):
        until_state(cell, r, PackMLState.HELD)
    assert main(["status", "--endpoint", cell.base, "--json"]) == 0
    capsys.readouterr()
    assert main(["cell", "unhold", "--endpoint", cell.base]) == 0
    for r in ("R1", "R2", "R3", "R4"):
        until_state(cell, r, PackMLState.EXECUTE)
    assert "Unhold accepted" in capsys.readouterr().out


def test_refusals_come_back_as_errors_with_codes(cell: LiveCell) -> None:
    with ControlClient(cell.base) as c:
        with pytest.raises(ControlError) as err:
            c.robot("R9", "hold")
        assert err.value.code == "unknown_robot"
        with pytest.raises(ControlError) as err:
            c.robot("R2", "unhold")  # R2 is in Execute, not Held
        assert err.value.code == "refused"
        with pytest.raises(ControlError) as err:
            c.order("phone", 0)
        assert err.value.code == "bad_argument"
    assert state_of(cell, "R2") is PackMLState.EXECUTE


def test_a_robot_fault_aborts_the_robot_and_the_cell_clears_it(cell: LiveCell) -> None:
    with ControlClient(cell.base) as c:
        assert c.fault("R2", "robot_fault", 2.0).ok
    until_state(cell, "R2", PackMLState.ABORTED)
    until_state(cell, "R2", PackMLState.EXECUTE)


def test_pause_stops_sim_time_and_run_starts_it(cell: LiveCell) -> None:
    with ControlClient(cell.base) as c:
        c.pace("pause")
        paused = c.status()
        assert paused.pace == "paused"
        assert c.status().t_ns == paused.t_ns
        with pytest.raises(ControlError) as err:
            c.robot("R1", "hold")
        assert err.value.code == "paused"
        c.pace("run")
        poll_until(lambda: True if c.status().t_ns > paused.t_ns else None, "sim time to move")


def test_telemetry_brings_every_topic_in_sequence(cell: LiveCell) -> None:
    got: dict[type[Message], Message] = {}
    with Subscriber(cell.base) as sub:

        def probe() -> bool | None:
            for m in sub.poll(0.2):
                got.setdefault(type(m), m)
            return True if len(got) == 4 else None

        poll_until(probe, "a frame of every topic", timeout_s=30, every_s=0)
        assert sub.malformed == 0 and sub.gap_count == 0, list(sub.gaps)
        with ControlClient(cell.base) as c:
            snap = c.snapshot()
    joints = got[JointsFrame]
    assert isinstance(joints, JointsFrame)
    assert [a.robot for a in joints.arms] == ["R1", "R2", "R3", "R4"]
    assert all(len(a.q) == len(a.names) > 0 for a in joints.arms)
    parts = got[PartsFrame]
    assert isinstance(parts, PartsFrame) and len(parts.parts) == len(parts.locations) > 0
    kpis = got[KpiFrame]
    assert isinstance(kpis, KpiFrame) and json.loads(kpis.data)["ledger_balanced"] is True
    event = got[EventFrame]
    assert isinstance(event, EventFrame) and json.loads(event.data)["kind"] == event.kind
    assert all(snap["seq"][t] >= sub.last_seq[t] for t in sub.last_seq)
    assert set(snap["robots"]) == {"R1", "R2", "R3", "R4"}
    assert snap["kpis"]["ledger_balanced"] is True


def test_orders_are_taken(cell: LiveCell) -> None:
    with ControlClient(cell.base) as c:
        assert "phone" in c.order("phone", 2).reason
        poll_until(
            lambda: True if c.snapshot()["kpis"].get("orders") else None, "the order in the KPIs"
        )


def test_results_are_written_when_the_cell_is_shut_down(tmp_path: Path) -> None:
    with LiveCell(tmp_path) as c:
        reply = c.client.shutdown()
        assert reply.ok
        assert c.proc is not None and c.proc.wait(60) == 0
    kpis = json.loads((tmp_path / "e2e" / "kpis.json").read_text())
    assert kpis["ledger_balanced"] is True
