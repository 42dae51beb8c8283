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
    load_run,
    oee,
    op_spans,
    outages,
    part_flow,
    reliability,
    state_seconds,
    state_spans,
    throughput_bins,
)
from clients.report_plots import gantt_figure, to_svg
from tests.clients.runkit import S, fault_events, fault_kpis, fault_run, write_run

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
        cur = cur[part]
    return cur


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
    shown = dict(re.findall(r'data-kpi="([^"]+)" data-value="([^"]*)"', real_page))
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
    ):
        assert path in shown, path
    for path, raw in shown.items():
        assert json.loads(raw.replace("&quot;", '"')) == _at(kpis, path), path
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
    for i in range(len(flow.t_ns)):
        c = flow.columns
        assert c["created"][i] == c["shipped"][i] + c["scrapped"][i] + c["wip"][i]


def test_throughput_bins_count_every_shipped_unit(real_run: Path) -> None:
    run = load_run(real_run)
    starts, counts = throughput_bins(run, 10.0)
    assert sum(counts) == run.kpis["units_completed"] >= 1
    assert starts == [10.0 * i for i in range(len(starts))]


def test_a_run_without_faults_has_the_run_as_mtbf_and_no_mttr(
    real_run: Path, real_page: str
) -> None:
    run = load_run(real_run)
    rel = reliability(run)
    assert (rel.failures, rel.mtbf_s, rel.mttr_s) == (0, run.end_ns / NS, None)
    assert "(no failures)" in real_page
    assert 'data-oee="mttr_s">-<' in real_page
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


def test_outages_run_from_the_fault_to_execute(tmp_path: Path) -> None:
    run = load_run(fault_run(tmp_path / "run"))
    got = [(o.robot, o.start_ns, o.end_ns, o.cause, o.repaired) for o in outages(run)]
    assert got == [
        ("R2", 20 * S, 31 * S, "robot_fault", True),  # Aborted at 20, back in Execute at 31
        ("R1", 60 * S, 70 * S + 4 * S // 5, "lost", True),
    ]
    cell = reliability(run)
    assert cell.failures == 2
    assert cell.mttr_s == pytest.approx((11.0 + 10.8) / 2)
    assert cell.mtbf_s == pytest.approx((100 - 21.8) / 2)
    assert reliability(run, "R2").mttr_s == pytest.approx(11.0)


def test_oee_factors_follow_iso_22400(tmp_path: Path) -> None:
    run = load_run(fault_run(tmp_path / "run"))
    secs = state_seconds(run)
    assert secs["R1"]["Execute"] == pytest.approx(59.2 + 29.2)  # lost 60-70 s, back at 70.8
    assert secs["R2"]["Execute"] == pytest.approx(19.2 + 69.0)
    o = oee(run)
    assert o.availability == pytest.approx(0.883)
    assert o.ideal_cycle_s == 40.0 and o.stations == 1
    assert o.performance == pytest.approx(40.0 * 1 / (100 * 0.883))
    assert o.quality == 0.5
    assert o.oee == pytest.approx(o.availability * o.performance * o.quality)
    assert not o.from_kpis


def test_figures_kpis_json_has_are_used_as_they_are(tmp_path: Path) -> None:
    kpis = {**fault_kpis(), "oee": {"availability": 0.5, "oee": 0.1}}
    page = write_report(write_run(tmp_path / "run", kpis, fault_events())).read_text()
    assert re.search(
        r'data-oee="availability" data-value="0.5">50.0% <span class="src">\(kpis.json\)', page
    )
    assert re.search(r'data-oee="oee" data-value="0.1">10.0% <span class="src">\(kpis.json\)', page)
    assert re.search(
        r'data-oee="quality" data-value="0.5">50.0% <span class="src">\(computed\)', page
    )


def test_fault_page_lists_faults_and_repairs(tmp_path: Path) -> None:
    page = write_report(fault_run(tmp_path / "run")).read_text()
    assert 'id="faults"' in page and 'id="outages"' in page
    assert "robot_fault" in page and "robot_lost" in page
    assert 'data-oee="failures" data-value="2"' in page


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
    kpis = {**fault_kpis(), "sim": {"killed": [[50 * S, "supervisor"], [85 * S, "R2"]]}}
    events = [
        *fault_events(),
        {"t_ns": 52 * S, "kind": "supervisor_restored", "from_t_ns": 49 * S},
        *[
            {**e, "t_ns": e["t_ns"] + 86 * S}
            for e in fault_events()
            if e["kind"] == "robot_state" and e["robot"] == "R2" and e["t_ns"] < S
        ],
    ]
    run = load_run(write_run(tmp_path / "run", kpis, sorted(events, key=lambda e: e["t_ns"])))
    marks = {(m.t_ns, m.robot, m.kind, m.detail) for m in fault_marks(run)}
    assert (50 * S, "supervisor", "process_killed", "supervisor_crash") in marks
    assert (85 * S, "R2", "process_killed", "agent_crash") in marks
    outs = {(o.robot, o.start_ns, o.end_ns, o.cause) for o in outages(run)}
    assert ("", 50 * S, 52 * S, "supervisor_crash") in outs
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


def test_reliability_figures_kpis_json_has_are_used_as_they_are(tmp_path: Path) -> None:
    kpis = {**fault_kpis(), "reliability": {"mtbf_s": 12.5, "mttr_s": 3.0}}
    page = write_report(write_run(tmp_path / "run", kpis, fault_events())).read_text()
    assert 'data-oee="mtbf_s" data-value="12.5">12.5 s <span class="src">(kpis.json)' in page
    assert 'data-oee="mttr_s">3.0 s <span class="src">(kpis.json)' in page
    assert 'data-oee="failures" data-value="2">2</td>' in page  # computed: no figure given
