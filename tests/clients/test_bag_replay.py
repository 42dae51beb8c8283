"""Replaying a bag: the frames come back as they went in, and the console shows them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from bus.errors import ConfigError
from bus.messages import EventFrame, JointsFrame, KpiFrame, PartsFrame
from clients.bag import BagRecorder
from clients.cli import main
from clients.replay import replay_frames, run_replay
from tests.clients.test_bag import TICK_NS, frames


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "cell"
    with BagRecorder(path) as rec:
        for f in frames():
            rec.write(f)
    return path


def test_joints_come_back_as_recorded(bag: Path) -> None:
    sent = [f for f in frames() if isinstance(f, JointsFrame)]
    got = [f for f in replay_frames(bag) if isinstance(f, JointsFrame)]
    assert [f.t_ns for f in got] == [f.t_ns for f in sent]
    assert [f.seq for f in got] == list(range(len(sent)))
    for a, b in zip(sent, got, strict=True):
        assert b.arms == a.arms  # names, q, base, tcp, state, step, op, holding


def test_parts_events_and_kpis_come_back(bag: Path) -> None:
    sent = frames()
    got = list(replay_frames(bag))
    for kind in (EventFrame, KpiFrame):
        assert [(f.t_ns, f.data) for f in got if isinstance(f, kind)] == [
            (f.t_ns, f.data) for f in sent if isinstance(f, kind)
        ]
    events = [f for f in got if isinstance(f, EventFrame)]
    assert [e.kind for e in events] == ["note", "note"]
    parts_in = {f.t_ns: f for f in sent if isinstance(f, PartsFrame)}
    for f in (f for f in got if isinstance(f, PartsFrame)):
        assert f.parts == parts_in[f.t_ns].parts
        assert f.locations == parts_in[f.t_ns].locations
    times = [getattr(f, "t_ns", 0) for f in got]
    assert times == sorted(times)


def test_the_console_model_sees_the_run(bag: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=140, height=40, force_terminal=False)
    model = run_replay(bag, speed=0, console=console)
    assert model.t_ns == 79 * TICK_NS
    assert set(model.robots) == {"R1", "R2"}
    assert model.robots["R2"].state == "Execute"
    assert json.loads(json.dumps(model.kpis)) == {"units_completed": 3}
    assert [e.kind for e in model.events] == ["note", "note"]
    assert "conveyor:infeed" in model.stations
    assert "R2" in out.getvalue()


def test_replay_refuses_what_is_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such bag"):
        list(replay_frames(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a readable rosbag2"):
        list(replay_frames(tmp_path / "empty"))


def test_cli_replays_as_fast_as_possible(bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(bag), "--speed", "0"]) == 0
    assert "replayed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["replay", str(bag), "--speed", "-1"])
    assert stop.value.code == 2
    assert "--speed: must be >= 0" in capsys.readouterr().err
