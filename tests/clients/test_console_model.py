"""ConsoleModel: frames in, text out, with no terminal and no sockets."""

from __future__ import annotations

import dataclasses
import io
import json
import time

import pytest
from rich.console import Console

from bus.enums import ExecStep, PackMLState
from bus.messages import (
    ArmState,
    EventFrame,
    JointsFrame,
    KpiFrame,
    PartPose,
    PartsFrame,
    Pose3,
    RobotStatus,
)
from bus.simtime import NS
from clients.console_model import ConsoleModel
from tests.clients.fakehost import cell_status

ORIGIN = Pose3(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def arm(
    name: str,
    state: PackMLState,
    *,
    step: ExecStep = ExecStep.WAITING,
    op: str = "",
    holding: str = "",
) -> ArmState:
    return ArmState(name, ("j1", "j2"), (0.1, 0.2), ORIGIN, ORIGIN, state, step, op, holding)


def kpis(robots: list[str], **extra: object) -> KpiFrame:
    data = {
        "cell": "assembly",
        "units_completed": 7,
        "units_scrapped": 1,
        "units_in_progress": 2,
        "throughput_per_hour": 123.45,
        "cycle_time_s": {"mean": 28.75, "min": 28.4, "max": 29.1},
        "ledger": {"created": 40, "shipped": 28, "scrapped": 4, "wip": 8},
        "ledger_balanced": True,
        "robots": {
            r: {
                "utilisation": 0.5 + i / 100,
                "ops_done": 10 + i,
                "ops_failed": i % 2,
                "state": "Execute",
            }
            for i, r in enumerate(robots)
        },
        **extra,
    }
    return KpiFrame(3, 61 * NS, json.dumps(data))


def text_of(model: ConsoleModel, *, width: int = 120, height: int | None = 60) -> str:
    con = Console(record=True, width=width, file=io.StringIO())
    con.print(model.render(height=height))
    return con.export_text()


def line_of(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def four_robot_model() -> ConsoleModel:
    m = ConsoleModel(endpoint="ipc:///tmp/cell1")
    m.feed(
        JointsFrame(
            5,
            61 * NS,
            (
                arm("R1", PackMLState.EXECUTE, step=ExecStep.PICK, op="frame-0003/load_frame"),
                arm("R2", PackMLState.HELD, holding="battery-0002"),
                arm("R3", PackMLState.ABORTED),
                arm("R4", PackMLState.SUSPENDED, step=ExecStep.FASTEN, op="frame-0002/fasten"),
            ),
        )
    )
    m.feed(kpis(["R1", "R2", "R3", "R4"]))
    return m


def test_every_robot_shows_its_state_step_operation_and_holding() -> None:
    text = text_of(four_robot_model())
    r1, r2, r3, r4 = (line_of(text, f" R{i} ") for i in range(1, 5))
    assert "Execute" in r1 and "pick" in r1 and "frame-0003/load_frame" in r1
    assert "Held" in r2 and "battery-0002" in r2
    assert "Aborted" in r3
    assert "Suspended" in r4 and "fasten" in r4 and "frame-0002/fasten" in r4


def test_a_robot_out_of_production_shows_its_mode() -> None:
    m = four_robot_model()
    data = {"robot": "R2", "src": "Production", "dst": "Maintenance", "reason": "command"}
    m.feed(EventFrame(9, 62 * NS, "robot_mode", json.dumps(data)))
    text = text_of(m)
    assert "mode: Maintenance" in line_of(text, " R2 ")
    assert "mode:" not in line_of(text, " R1 "), "Production is not shown"


def test_utilisation_and_operation_counts_come_from_the_kpis() -> None:
    text = text_of(four_robot_model())
    assert "50%" in line_of(text, " R1 ") and "53%" in line_of(text, " R4 ")
    assert " 13 " in line_of(text, " R4 ")  # ops done


def test_the_kpis_are_shown() -> None:
    text = text_of(four_robot_model())
    assert "7" in line_of(text, "units completed")
    assert "1" in line_of(text, "units scrapped")
    assert "123.5 units/h" in line_of(text, "throughput")
    assert "28.8 s" in line_of(text, "cycle time")
    assert "40/28/4/8" in text
    assert "yes" in line_of(text, "ledger balanced")
    assert "assembly" in text.splitlines()[0]


def test_an_unbalanced_ledger_says_no() -> None:
    m = four_robot_model()
    m.feed(kpis(["R1"], ledger_balanced=False))
    assert "NO" in line_of(text_of(m), "ledger balanced")


def test_twelve_robots_all_fit_in_a_120_by_50_screen() -> None:
    m = ConsoleModel()
    names = [f"R{i}" for i in range(1, 13)]
    m.feed(JointsFrame(0, NS, tuple(arm(n, PackMLState.EXECUTE) for n in names)))
    m.feed(kpis(names))
    text = text_of(m, height=50)
    lines = text.splitlines()
    assert len(lines) <= 50
    order = [next(i for i, line in enumerate(lines) if f" {n} " in line) for n in names]
    assert order == sorted(order), "robots in natural order, R2 before R10"
    assert "units completed" in text


def test_rendering_twelve_robots_is_cheap_enough_for_ten_frames_a_second() -> None:
    m = ConsoleModel()
    names = [f"R{i}" for i in range(1, 13)]
    m.feed(JointsFrame(0, NS, tuple(arm(n, PackMLState.EXECUTE, op="x/y") for n in names)))
    m.feed(kpis(names))
    for i in range(200):
        m.feed(EventFrame(i, i, "op_done", json.dumps({"robot": "R1", "op": f"u/{i}"})))
    con = Console(width=160, height=50, file=io.StringIO(), force_terminal=True)
    start = time.perf_counter()
    for _ in range(20):
        con.print(m.render(height=50))
    per_frame = (time.perf_counter() - start) / 20
    assert per_frame < 0.05, f"{per_frame * 1000:.1f} ms a frame"


def test_parts_are_listed_by_station_with_joined_counts() -> None:
    m = four_robot_model()
    poses = [
        PartPose(p, k, 0, 0, 0, 0, 0, 0, 1)
        for p, k in (
            ("frame-0001", "frame"),
            ("battery-0001", "battery"),
            ("board-0001", "board"),
            ("frame-0002", "frame"),
            ("frame-0003", "frame"),
            ("screen-0009", "screen"),
            ("battery-0002", "battery"),
        )
    ]
    locations = (
        "fixture:F1",
        "unit:frame-0001",
        "unit:frame-0001",
        "conveyor:infeed",
        "conveyor:infeed",
        "floor",
        "gripper:R2",
    )
    m.feed(PartsFrame(0, NS, tuple(poses), locations))
    text = text_of(m)
    assert "frame-0001+2" in line_of(text, "fixture:F1")
    assert "frame-0002 frame-0003" in line_of(text, "conveyor:infeed")
    assert "screen-0009" in line_of(text, "floor")
    assert "gripper:R2" not in text  # shown in R2's row instead
    lines = text.splitlines()
    assert lines.index(line_of(text, "conveyor:infeed")) < lines.index(line_of(text, "fixture:F1"))


def test_a_station_stays_listed_when_it_empties() -> None:
    m = ConsoleModel()
    m.feed(
        PartsFrame(0, 0, (PartPose("frame-0001", "frame", 0, 0, 0, 0, 0, 0, 1),), ("fixture:F2",))
    )
    m.feed(PartsFrame(1, 1, (), ()))
    assert line_of(text_of(m), "fixture:F2").split("fixture:F2")[1].strip(" │").startswith("-")


def test_events_scroll_and_faults_can_be_shown_alone() -> None:
    m = four_robot_model()
    for i in range(30):
        m.feed(
            EventFrame(
                i,
                i * NS,
                "op_done",
                json.dumps({"t_ns": i * NS, "kind": "op_done", "op": f"u/{i}"}),
            )
        )
    m.feed(
        EventFrame(
            30, 31 * NS, "fault_injected", json.dumps({"robot": "R3", "fault": "robot_fault"})
        )
    )
    text = text_of(m, height=40)
    assert len(text.splitlines()) <= 40
    assert "fault_injected" in text and "robot=R3" in text
    assert "op=u/29" in text and "op=u/0 " not in text  # only the tail fits
    m.faults_only = True
    text = text_of(m, height=60)
    assert "fault_injected" in text and "op_done" not in text


def test_odd_input_never_breaks_the_view() -> None:
    m = ConsoleModel()
    m.feed(EventFrame(0, 0, "weird", "not json"))
    m.feed(EventFrame(1, 0, "weird", "[1, 2]"))
    m.feed(KpiFrame(0, 0, "{broken"))
    m.feed(KpiFrame(1, 0, json.dumps({"robots": {"R1": "x"}, "ledger": 5, "cycle_time_s": None})))
    m.feed(cell_status())  # not telemetry: ignored
    m.feed(EventFrame(2, 0, "note", json.dumps({"part": "[bold]x[/bold] [red"})))
    text = text_of(m)
    assert "[bold]x[/bold] [red" in text  # shown as written, never read as markup


def test_header_shows_sim_time_pace_and_gaps() -> None:
    m = four_robot_model()
    m.pace = "realtime x2"
    m.set_link(gaps=3, lost=17, malformed=2)
    header = text_of(m).splitlines()[0]
    assert "61.0 s" in header and "realtime x2" in header
    assert "gaps 3 (lost 17)" in header and "malformed 2" in header


def test_header_shows_what_the_cell_refused_and_dropped() -> None:
    m = four_robot_model()
    assert "cell: refused" not in text_of(m, width=200).splitlines()[0]  # not asked yet
    m.apply_status(cell_status())
    header = text_of(m, width=200).splitlines()[0]
    assert "cell: refused 2 malformed 1 dropped 5" in header
    m.apply_snapshot({"refused": 4, "malformed": 1, "dropped": 6})
    assert "cell: refused 4 malformed 1 dropped 6" in text_of(m, width=200).splitlines()[0]


def test_status_fills_in_pace_liveness_and_faults() -> None:
    m = four_robot_model()
    base = cell_status(4, state=PackMLState.HELD)
    robots = list(base.robots)
    robots[1] = RobotStatus(
        "R2", PackMLState.ABORTED, ExecStep.WAITING, "", "", False, "robot_fault"
    )
    s = dataclasses.replace(base, pace="paused", robots=tuple(robots))
    m.apply_status(s)
    text = text_of(m)
    assert "paused" in text.splitlines()[0]
    assert "Held" in line_of(text, " R1 ")
    r2 = line_of(text, " R2 ")
    assert "Aborted" in r2 and "NO" in r2 and "robot_fault" in r2


def test_a_snapshot_rebuilds_robots_parts_and_kpis() -> None:
    m = ConsoleModel()
    m.apply_snapshot(
        {
            "t_ns": 9 * NS,
            "pace": "paused",
            "robots": {
                "R1": {
                    "state": "Held",
                    "step": "place",
                    "op": "u/1",
                    "holding": "frame-0004",
                    "q": [],
                }
            },
            "parts": {
                "frame-0004": {"kind": "frame", "location": "gripper:R1", "position": None},
                "frame-0005": {"kind": "frame", "location": "conveyor:infeed", "position": None},
            },
            "kpis": {"units_completed": 4, "robots": {"R1": {"utilisation": 0.25}}},
            "seq": {"joints": 10},
        }
    )
    text = text_of(m)
    r1 = line_of(text, " R1 ")
    assert "Held" in r1 and "frame-0004" in r1 and "25%" in r1
    assert "frame-0005" in line_of(text, "conveyor:infeed")
    assert "4" in line_of(text, "units completed")
    assert "9.0 s" in text.splitlines()[0] and "paused" in text.splitlines()[0]


@pytest.mark.parametrize(
    ("moves", "chosen"), [((), "R1"), ((1,), "R2"), ((1, 1, 1, 1), "R1"), ((-1,), "R4")]
)
def test_selection_moves_and_wraps(moves: tuple[int, ...], chosen: str) -> None:
    m = four_robot_model()
    for d in moves:
        m.select(d)
    assert m.selected_robot == chosen
    assert line_of(text_of(m), f" {chosen} ").lstrip("│ ").startswith(">")


def test_the_last_command_answer_is_shown() -> None:
    m = four_robot_model()
    m.note("cell Hold: R3: Hold refused in state Aborted (refused)", alarm=True)
    assert "Hold refused in state Aborted" in text_of(m)
