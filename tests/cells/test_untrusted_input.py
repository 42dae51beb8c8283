"""Names that become paths, numbers that overflow, directories others can write, and tcp
without keys: each is one line naming the file and key (or the flag) and exit 2."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import msgpack
import pytest

from bus.endpoints import ensure_ipc_dir
from bus.errors import ConfigError
from bus.simtime import NS
from bus.trust import LiveKeys, create_participant, read_participants
from cells.launch import run_dir
from clients.cli import main
from supervisor.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
ASSEMBLY = ROOT / "cells" / "assembly.toml"


def one_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lightsout ARGV``; it must exit 2 with one line on stderr. That line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an option itself
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


def cell_with(tmp_path: Path, old: str, new: str) -> str:
    source = ASSEMBLY if old in ASSEMBLY.read_text() else ROOT / "cells" / "robot_building.toml"
    text = source.read_text()
    assert old in text
    path = tmp_path / "cell.toml"
    path.write_text(text.replace(old, new, 1))
    return str(path)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('name = "assembly"', 'name = "../../x"', "cell.name"),
        ('name = "R1"', 'name = "../x"', "robots"),
        ("[fixtures.F1]", '[fixtures."../F1"]', "fixtures"),
        ("[feeders.frames]", '[feeders."a/b"]', "feeders"),
        ("[mounts.M2]", '[mounts."M2/../.."]', "mounts"),
        ("[stands.T1]", '[stands."T 1"]', "stands"),
    ],
)
def test_a_name_that_could_be_a_path_is_refused_in_a_cell_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str
) -> None:
    line = one_error(["validate", cell_with(tmp_path, old, new)], capsys)
    assert line.startswith(f"error: {tmp_path / 'cell.toml'}: {key}") and "letters, digits" in line


def test_a_run_name_that_climbs_out_of_the_runs_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    for name in ("../../x", "a/b", "..", ".hidden", ""):
        with pytest.raises(ConfigError):
            run_dir(runs, name)
    line = one_error(
        ["run", str(ASSEMBLY), "--name", "../../x", "--runs-dir", str(runs), "--duration", "1"],
        capsys,
    )
    assert "--name" in line
    assert not (tmp_path / "x").exists() and not (ROOT.parent / "x").exists()
    assert run_dir(runs, "ok-name").parent == runs


def test_key_and_participant_names_are_safe_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    one_error(["keys", "create", "../x", "--role", "viewer", "--dir", str(keys)], capsys)
    line = one_error(
        ["keys", "create", "R1", "--role", "participant", "--cell", "../x", "--dir", str(keys)],
        capsys,
    )
    assert "--cell" in line
    one_error(["keys", "create", "R1", "--role", "participant", "--dir", str(keys)], capsys)
    assert main(["keys", "create", "R1", "--role", "participant", "--cell", "assembly",
                 "--dir", str(keys)]) == 0  # fmt: skip
    secret = create_participant(keys, "assembly", "R2")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(read_participants(keys, "assembly").values()) == ["R1", "R2"]
    assert LiveKeys(keys, "assembly").names == read_participants(keys, "assembly")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["run", str(ASSEMBLY), "--duration", "1e300"], "--duration"),
        (["run", str(ASSEMBLY), "--duration", "inf"], "--duration"),
        (["run", str(ASSEMBLY), "--realtime", "inf"], "--realtime"),
        (["run", str(ASSEMBLY), "--realtime", "1e-300"], "--realtime"),
        (["run", str(ASSEMBLY), "--seed", "99999999999999999999"], "--seed"),
        (["fault", "inject", "infeed", "conveyor_jam", "--duration", "1e300"], "--duration"),
        (["pace", "realtime", "--factor", "1e-300"], "--factor"),
        (["sim", str(ASSEMBLY), "--endpoint", "ipc:///tmp/x", "--duration", "nan"], "--duration"),
    ],
)
def test_a_giant_or_tiny_number_on_the_command_line_is_one_line_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    assert flag in one_error(argv, capsys)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("physics_hz = 240", "physics_hz = 240000000", "cell.physics_hz"),
        ("physics_hz = 240", "physics_hz = 2.4e8", "cell.physics_hz"),
        ("heartbeat_s = 1.0", "heartbeat_s = 1e300", "cell.heartbeat_s"),
        ("mass = 0.05", "mass = 1e300", "parts.frame.mass"),
    ],
)
def test_a_giant_number_in_a_cell_file_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str
) -> None:
    line = one_error(["validate", cell_with(tmp_path, old, new)], capsys)
    assert line.startswith(f"error: {tmp_path / 'cell.toml'}: {key}")


def test_a_giant_number_in_a_scenario_file_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[faults]]\nat = 1e300\ntarget = "R1"\nkind = "robot_fault"\n')
    line = one_error(["run", str(ASSEMBLY), "--faults", str(scenario), "--duration", "1"], capsys)
    assert f"{scenario}: faults[0].at" in line


def test_an_ipc_directory_others_can_write_or_another_users_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    line = one_error(["run", str(ASSEMBLY), "--endpoint", f"ipc://{shared}"], capsys)
    assert "others may write" in line
    line = one_error(["sim", str(ASSEMBLY), "--endpoint", f"ipc://{shared}"], capsys)
    assert "others may write" in line
    if os.stat("/tmp").st_uid != os.getuid():
        with pytest.raises(ConfigError, match="another user's"):
            ensure_ipc_dir("ipc:///tmp")
    link = tmp_path / "link"
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link.symlink_to(mine)
    with pytest.raises(ConfigError, match="symbolic link"):
        ensure_ipc_dir(f"ipc://{link}")
    assert ensure_ipc_dir(f"ipc://{mine}") is False  # the user's own, closed: fine
    fresh = tmp_path / "fresh"
    assert ensure_ipc_dir(f"ipc://{fresh}") is True
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_lightsout_sim_over_tcp_needs_keys_or_insecure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error(["sim", str(ASSEMBLY), "--endpoint", "tcp://127.0.0.1:47310"], capsys)
    assert "--keys" in line and "--insecure" in line
    # with --insecure it starts, waits for its participants, and says who did not come
    line = one_error(
        [
            "sim",
            str(ASSEMBLY),
            "--endpoint",
            "tcp://127.0.0.1:47310",
            "--insecure",
            "--join-timeout",
            "0.3",
        ],
        capsys,
    )
    assert "not joined within" in line


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", "abc"),
        ("seed", 1e300),
        ("seed", -1),
        ("duration_s", 1e300),
        ("duration_s", float("nan")),
        ("guard_s", -5),
        ("processes", "yes"),
        ("cell", 5),
    ],
)
def test_a_damaged_run_json_is_one_line_naming_its_key_when_resuming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object
) -> None:
    """``run.json`` is read back from disk, so ``lightsout resume`` checks it as any input."""
    meta: dict[str, object] = {"cell": str(ASSEMBLY), "seed": 1, "duration_s": 60.0}
    meta[key] = value
    (tmp_path / "run.json").write_text(json.dumps(meta))
    line = one_error(["resume", str(tmp_path)], capsys)
    assert "run.json" in line and f"{key}:" in line


@pytest.mark.parametrize("part", [None, b"\xc1 not msgpack", msgpack.packb({"x": 1}), "old"])
def test_a_damaged_journal_is_one_line_naming_it_when_resuming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], part: bytes | str | None
) -> None:
    """Garbage for a file, a component row that is not msgpack, one no supervisor wrote, or
    a journal of the older layout (the whole state in one JSON text)."""
    meta = {"cell": str(ASSEMBLY), "seed": 1, "duration_s": 60.0}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    path = tmp_path / "journal.sqlite"
    if part is None:
        path.write_bytes(os.urandom(4096))
    elif part == "old":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, tick INT, t_ns INT, data TEXT)")
        db.execute("INSERT INTO state VALUES (1, 24, ?, '{}')", (NS,))
        db.commit()
        db.close()
    else:
        Journal(path).close()  # the layout a supervisor makes
        db = sqlite3.connect(path)
        db.execute("INSERT INTO state (id, tick, t_ns) VALUES (1, 24, ?)", (NS,))
        db.execute("INSERT INTO parts (name, data) VALUES ('ledger', ?)", (part,))
        db.commit()
        db.close()
    assert "journal.sqlite" in one_error(["resume", str(tmp_path)], capsys)
