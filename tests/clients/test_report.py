"""report.html: figures, numbers that match kpis.json, faults on the Gantt chart, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigError
from cells.launch import RunOptions, run_cell
from cells.schema import load_cell
from clients.cli import main
from clients.report import write_report
from clients.report_data import (
    NS,
    fault_marks,
    has_figures,
    load_run,
    op_spans,
    outages,
    part_flow,
    state_spans,
    throughput_bins,
)
from clients.report_plots import gantt_figure, to_svg
from tests.clients.runkit import (
    S,
    fault_events,
    fault_kpis,
    fault_run,
    old_kpis,
    supervisor_figures,
    write_run,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 45 s assembly run (the first unit ships at about 38 s)."""
    out = tmp_path_factory.mktemp("report") / "assembly-seed1"
    run_cell(load_cell(ROOT / "cells" / "assembly.toml"), out, RunOptions(seed=1, duration_s=45))
    return out


@pytest.fixture(scope="module")
def real_page(real_run: Path) -> str:
    return write_report(real_run).read_text(encoding="utf-8")


def _at(kpis: dict[str, Any], path: str) -> Any:
    cur: Any = kpis
    for part in path.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def _shown(page: str) -> dict[str, Any]:
    """Every ``data-kpi`` path on the page and its ``data-value``, decoded."""
    pairs = re.findall(r'data-kpi="([^"]+)" data-value="([^"]*)"', page)
    return {path: json.loads(raw.replace("&quot;", '"')) for path, raw in pairs}


# ---------------------------------------------------------------- a real run


def test_page_is_self_contained_with_three_titled_figures(real_page: str) -> None:
    assert real_page.count('<svg class="figure"') == 3
    for title in ("PackML state of each robot", "Throughput", "Part flow"):
        assert f">{title}<" in real_page, title  # the title is text inside its SVG
    assert "<script" not in real_page
    assert "<link" not in real_page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", real_page), "no external asset"


def test_every_kpi_on_the_page_equals_kpis_json(real_run: Path, real_page: str) -> None:
    kpis = json.loads((real_run / "kpis.json").read_text())
    shown = _shown(real_page)
    for path in (
        "duration_s",
        "units_completed",
        "units_scrapped",
        "throughput_per_hour",
        "cycle_time_s.mean",
        "cycle_time_s.min",
        "ledger.created",
        "ledger.wip",
        "ledger_balanced",
        "robots.R1.utilisation",
        "robots.R4.starved_s",
        "robots.R2.blocked_s",
        "robots.R3.ops_done",
        "oee.oee",
        "oee.availability",
        "oee.performance",
        "oee.quality",
        "failures",
        "mtbf_s",
        "mttr_s",
        "robots.R1.availability",
        "robots.R2.mtbf_s",
        "robots.R4.oee.oee",
    ):
        assert path in shown, path
    for path, value in shown.items():
        assert value == _at(kpis, path), path
    assert f">{kpis['throughput_per_hour']:g} units/h<" in real_page


def test_state_times_from_events_agree_with_the_supervisors(real_run: Path) -> None:
    run = load_run(real_run)
    given = {r: v["state_s"] for r, v in run.kpis["robots"].items()}
    for robot, spans in state_spans(run).items():
        acc: dict[str, float] = {}
        for s in spans:
            acc[s.label] = acc.get(s.label, 0.0) + s.length_ns / NS
        assert acc.keys() == given[robot].keys()
        for state, secs in acc.items():
            assert secs == pytest.approx(given[robot][state], abs=0.002), (robot, state)


def test_part_flow_ends_where_the_ledger_does(real_run: Path) -> None:
    run = load_run(real_run)
    flow = part_flow(run)
    led = run.kpis["ledger"]
    for key in ("created", "shipped", "scrapped", "wip"):
        assert flow.columns[key][-1] == led[key], key
    assert list(flow.t_ns) == sorted(flow.t_ns)
    # (wip is drawn as created - shipped - scrapped: what can fail is a part leaving twice)
    assert min(flow.columns["wip"]) >= 0, "never more parts left than were created"


def test_throughput_bins_count_every_shipped_unit(real_run: Path) -> None:
    run = load_run(real_run)
    starts, counts = throughput_bins(run, 10.0)
    assert sum(counts) == run.kpis["units_completed"] >= 1
    assert starts == [10.0 * i for i in range(len(starts))]


def test_a_run_without_faults_has_the_run_as_mtbf_and_no_mttr(
    real_run: Path, real_page: str
) -> None:
    run = load_run(real_run)
    k = run.kpis
    assert (k["failures"], k["mtbf_s"], k["mttr_s"]) == (0, k["duration_s"], None)
    assert (k["faults"], k["by_fault_kind"], k["outages"]) == ([], {}, [])
    assert "(no failures)" in real_page
    assert 'data-kpi="mttr_s" data-value="null">-<' in real_page
    assert 'id="fault-list">No fault was injected.' in real_page
    assert not fault_marks(run)


# ---------------------------------------------------------------- faults


def test_faults_are_marked_on_the_gantt_chart(tmp_path: Path) -> None:
    run = load_run(fault_run(tmp_path / "run"))
    marks = [(m.t_ns, m.robot, m.kind) for m in fault_marks(run)]
    assert marks == [
        (20 * S, "R2", "fault_injected"),
        (20 * S, "R2", "Aborting"),
        (20 * S, "R2", "op_failed"),
        (20 * S + S // 10, "R2", "Aborted"),
        (60 * S, "R1", "robot_lost"),
    ]
    r2 = [(s.label, s.start_ns, s.end_ns) for s in state_spans(run)["R2"]]
    assert ("Aborted", 20 * S + S // 10, 30 * S) in r2
    svg = to_svg(gantt_figure(run), key="gantt")
    for i in range(len(marks)):
        assert f'id="fault-{i}"' in svg
    assert 'id="outage-0"' in svg and 'id="outage-1"' in svg


def test_a_fault_without_a_robot_is_a_line_across_the_chart(tmp_path: Path) -> None:
    events = [
        *fault_events(),
        {"t_ns": 90 * S, "kind": "fault_injected", "target": "infeed", "fault": "conveyor_jam"},
    ]
    run = load_run(
        write_run(tmp_path / "run", fault_kpis(), sorted(events, key=lambda e: e["t_ns"]))
    )
    fig = gantt_figure(run)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_xdata()[0] for ln in dashed] == [90.0]


def test_outages_are_the_supervisors(tmp_path: Path) -> None:
    run = load_run(fault_run(tmp_path / "run"))
    got = [(o.robot, o.start_ns, o.end_ns, o.cause, o.repaired) for o in outages(run)]
    assert got == [
        ("R2", 20 * S, 31 * S, "robot_fault", True),  # Aborted at 20, back in Execute at 31
        ("R1", 60 * S, 70 * S + 4 * S // 5, "lost", True),
    ]


def test_an_older_run_without_the_figures_still_opens(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "run", old_kpis(), fault_events()))
    assert not has_figures(run)
    assert outages(run) == []
    page = write_report(run.path).read_text()
    assert 'id="no-figures"' in page
    for path in ("oee.oee", "oee.availability", "failures", "mtbf_s", "robots.R2.availability"):
        assert f'data-kpi="{path}" data-value="null">-<' in page, path
    assert 'id="faults"' in page  # the fault events are still marked and listed


def test_fault_page_lists_faults_and_repairs(tmp_path: Path) -> None:
    run = fault_run(tmp_path / "run")
    page = write_report(run).read_text()
    for table in ("faults", "outages", "fault-list", "fault-kinds"):
        assert f'id="{table}"' in page, table
    assert "robot_fault" in page and "robot_lost" in page
    kpis = json.loads((run / "kpis.json").read_text())
    shown = _shown(page)
    for path in (
        "failures",
        "faults.0.at_s",
        "faults.0.detected_at_s",
        "faults.0.detection_s",
        "faults.0.recovered_at_s",
        "faults.0.recovery_s",
        "faults.0.detected_by",
        "by_fault_kind.robot_fault.count",
        "by_fault_kind.robot_fault.detection_s.mean",
        "by_fault_kind.robot_fault.recovery_s.max",
        "by_fault_kind.robot_fault.downtime_s",
        "by_fault_kind.robot_fault.oee_lost",
    ):
        assert shown[path] == _at(kpis, path), path
    assert shown["failures"] == 2
    assert shown["faults.0.detected_by"] == "robot_state Aborting"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "kpis.json").unlink(), "kpis.json: missing"),
        (lambda d: (d / "events.jsonl").unlink(), "events.jsonl: missing"),
        (lambda d: (d / "kpis.json").write_text("{nope"), "kpis.json: not JSON"),
        (lambda d: (d / "kpis.json").write_text("[1, 2]"), "kpis.json: not a JSON object"),
        (
            lambda d: (d / "kpis.json").write_text('{"duration_s": "long"}'),
            "kpis.json: duration_s: expected a number",
        ),
        (
            lambda d: (d / "kpis.json").write_text('{"outages": 3}'),
            "kpis.json: outages: expected an array",
        ),
        (
            lambda d: (d / "kpis.json").write_text('{"faults": [1]}'),
            "kpis.json: faults[0]: expected an object",
        ),
        (
            lambda d: (d / "events.jsonl").write_text('{"t_ns": 0, "kind": "a"}\n{"t_ns": \n'),
            "events.jsonl: line 2: not JSON",
        ),
        (
            lambda d: (d / "events.jsonl").write_text('{"kind": "a"}\n'),
            "events.jsonl: line 1: t_ns must be an integer",
        ),
        (
            lambda d: (d / "events.jsonl").write_text('{"t_ns": 5}\n'),
            "events.jsonl: line 1: kind must be a string",
        ),
    ],
)
def test_broken_runs_get_a_clear_error(tmp_path: Path, damage: Any, message: str) -> None:
    run = fault_run(tmp_path / "run")
    damage(run)
    with pytest.raises(ConfigError, match=re.escape(message)):
        write_report(run)
    assert not (run / "report.html").exists()


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = fault_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()
    assert str(run / "report.html") in capsys.readouterr().out.replace("\n", "")


def test_cli_says_what_is_wrong_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "no such run directory" in err


def test_killed_processes_are_faults_and_a_supervisor_crash_downs_the_cell(tmp_path: Path) -> None:
    # what the supervisor logs: a restored supervisor logs the crash that killed it
    events = [
        *fault_events(),
        {"t_ns": 52 * S, "kind": "supervisor_restored", "from_t_ns": 49 * S},
        {
            "t_ns": 52 * S,
            "kind": "fault_injected",
            "target": "supervisor",
            "fault": "supervisor_crash",
        },
        {"t_ns": 53 * S, "kind": "op_awarded", "op": "frame-2/load", "robot": "R1"},
        {"t_ns": 85 * S, "kind": "fault_injected", "target": "R2", "fault": "agent_crash"},
        {"t_ns": 86 * S, "kind": "robot_lost", "robot": "R2"},
        *[
            {**e, "t_ns": e["t_ns"] + 86 * S}
            for e in fault_events()
            if e["kind"] == "robot_state" and e["robot"] == "R2" and e["t_ns"] < S
        ],
    ]
    events.sort(key=lambda e: e["t_ns"])
    kpis = {
        **supervisor_figures(old_kpis(), events),
        "sim": {"killed": [[50 * S, "supervisor"], [85 * S, "R2"]]},
    }
    run = load_run(write_run(tmp_path / "run", kpis, events))
    marks = {(m.t_ns, m.robot, m.kind, m.detail) for m in fault_marks(run)}
    assert (50 * S, "supervisor", "process_killed", "supervisor_crash") in marks
    assert (85 * S, "R2", "process_killed", "agent_crash") in marks
    outs = {(o.robot, o.start_ns, o.end_ns, o.cause) for o in outages(run)}
    assert ("", 49 * S, 53 * S, "supervisor_crash") in outs  # from its last commit to work again
    assert ("R2", 85 * S, 86 * S + 4 * S // 5, "agent_crash") in outs  # back in Execute at 86.8
    fig = gantt_figure(run)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["cell", "R1", "R2"]


def test_an_operation_ends_when_settled_taken_back_or_followed(tmp_path: Path) -> None:
    events = [
        {"t_ns": 1 * S, "kind": "op_started", "op": "a", "robot": "R1"},
        {"t_ns": 2 * S, "kind": "op_settled", "op": "a", "robot": "R1", "how": "done"},
        {"t_ns": 3 * S, "kind": "op_started", "op": "b", "robot": "R1"},
        {"t_ns": 4 * S, "kind": "op_requeued", "op": "b", "reason": "R1 lost"},
        {"t_ns": 5 * S, "kind": "op_started", "op": "c", "robot": "R1"},
        {"t_ns": 6 * S, "kind": "op_started", "op": "d", "robot": "R1"},
        {"t_ns": 10 * S, "kind": "run_end"},
    ]
    run = load_run(write_run(tmp_path / "run", {"robots": {"R1": {}}}, events))
    got = [(s.start_ns // S, s.end_ns // S, s.label) for s in op_spans(run)["R1"]]
    assert got == [(1, 2, "ok"), (3, 4, "failed"), (5, 6, "ok"), (6, 10, "running")]
