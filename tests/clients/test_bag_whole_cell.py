"""A recorded run with every kind of fault, read back with the ``mcap`` readers alone.

No project code and no rosbags read the bag here: only ``mcap`` and
``mcap-ros2-support``, as a viewer would. The run is real (processes, so the
launcher can kill an agent and the supervisor), and what the bag says is
checked against the world itself (its link poses each tick, through
``watch``) and against what the supervisor wrote (``events.jsonl``,
``kpis.json``).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from bus.cellspec import CellSpec
from bus.simtime import NS
from cells.faults import FaultKind, ScheduledFault
from clients.bag_record import RecordResult
from tests.clients.bagkit import Pose, recorded_run

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 60.0
FAULTS = (
    ScheduledFault(3.0, "R4", FaultKind.ROBOT_FAULT, 4.0),
    ScheduledFault(4.0, "infeed.end", FaultKind.SENSOR_BLACKOUT, 3.0),
    ScheduledFault(5.0, "R2", FaultKind.MESSAGE_LOSS, 3.0, share=0.5),
    ScheduledFault(10.0, "R1", FaultKind.GRIPPER_DROP),
    ScheduledFault(12.0, "R3", FaultKind.AGENT_CRASH),
    ScheduledFault(30.0, "outfeed", FaultKind.CONVEYOR_JAM, 10.0),
    ScheduledFault(30.0, "R2", FaultKind.SLOW_ROBOT, 10.0, factor=3.0),
    ScheduledFault(36.0, "supervisor", FaultKind.SUPERVISOR_CRASH),
)
"""Every kind the launcher injects, one after another, in a minute of sim time. The lossy
link is well again (``link_ok``: 10 s and 20 messages without a gap, about 20 s after it)
before the supervisor crashes: a restored supervisor does not know a link was lossy and
never says it is well again."""
GRACE_NS = 2 * NS
"""A fault nothing detected is over this long after its duration (the supervisor's grace)."""
KPI_LAG_NS = NS + NS // 24
"""A recovery the bag takes from the supervisor's fault list is known by its next snapshot."""
WARN = 1


def mul(a: Pose, b: Pose) -> Pose:
    """``a * b`` for (x, y, z, qx, qy, qz, qw) frames, written out here as a reader would."""
    ax, ay, az, aqx, aqy, aqz, aqw = a
    bx, by, bz, bqx, bqy, bqz, bqw = b
    # rotate b's position by a's quaternion: v + 2w(u x v) + 2u x (u x v)
    tx, ty, tz = 2 * (aqy * bz - aqz * by), 2 * (aqz * bx - aqx * bz), 2 * (aqx * by - aqy * bx)
    rx = bx + aqw * tx + aqy * tz - aqz * ty
    ry = by + aqw * ty + aqz * tx - aqx * tz
    rz = bz + aqw * tz + aqx * ty - aqy * tx
    return (
        ax + rx,
        ay + ry,
        az + rz,
        aqw * bqx + aqx * bqw + aqy * bqz - aqz * bqy,
        aqw * bqy - aqx * bqz + aqy * bqw + aqz * bqx,
        aqw * bqz + aqx * bqy - aqy * bqx + aqz * bqw,
        aqw * bqw - aqx * bqx - aqy * bqy - aqz * bqz,
    )


def _tf(tf: Any) -> tuple[str, str, Pose]:
    tr, q = tf.transform.translation, tf.transform.rotation
    return tf.header.frame_id, tf.child_frame_id, (tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w)


def chain(frames: dict[str, tuple[str, Pose]], child: str) -> Pose | None:
    """``child`` in ``world`` along the tree, or None if it does not reach ``world``."""
    pose: Pose = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    for _ in range(64):
        if child == "world":
            return pose
        if child not in frames:
            return None
        child, tf = frames[child]
        pose = mul(tf, pose)
    return None


def close(a: Pose, b: Pose) -> bool:
    """Same frame to 1e-6 m and 1e-6 in the quaternion (either sign)."""
    pos = max(abs(a[i] - b[i]) for i in range(3)) < 1e-6
    dot = abs(sum(a[i] * b[i] for i in range(3, 7)))
    return pos and math.isclose(dot, 1.0, abs_tol=1e-6)


@pytest.fixture(scope="module")
def run(
    cell: CellSpec, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[int, dict[str, list[Pose]]]]:
    """The recorded run: its directory and the world's link poses at every tick."""
    tmp = tmp_path_factory.mktemp("whole")
    # where ``lightsout run --record`` puts it: in the run's directory
    res, links = recorded_run(
        cell, tmp / "run", seed=1, duration_s=DURATION_S, processes=True, faults=FAULTS
    )
    assert isinstance(res, RecordResult) and res.reason == "run_end"
    assert res.lost == 0 and res.malformed == 0
    return tmp, links


@pytest.fixture(scope="module")
def bag(run: tuple[Path, Any]) -> list[tuple[str, int, Any]]:
    """Every message of the bag: (topic, log time, decoded), by the mcap readers."""
    (path,) = (run[0] / "run" / "bag").glob("*.mcap")
    with path.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        return [(ch.topic, m.log_time, d) for _s, ch, m, d in reader.iter_decoded_messages()]


def _events(run: tuple[Path, Any]) -> list[dict[str, Any]]:
    text = (run[0] / "run" / "events.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.timeout(600)
def test_every_link_and_live_part_hangs_from_world_where_the_world_has_it(
    cell: CellSpec, run: tuple[Path, dict[int, dict[str, list[Pose]]]], bag: list[Any]
) -> None:
    world_links = run[1]
    urdf_links = {}
    for topic, _t, msg in bag:
        if topic.endswith("/robot_description"):
            robot = topic.split("/")[1]
            urdf_links[robot] = [link.get("name") for link in ET.fromstring(msg.data).iter("link")]
    assert sorted(urdf_links) == sorted(r.name for r in cell.robots)
    frames: dict[str, tuple[str, Pose]] = {}
    live: set[str] = set()
    checked = 0
    by_time: dict[int, list[tuple[str, Any]]] = {}
    for topic, t, msg in bag:
        by_time.setdefault(t, []).append((topic, msg))
    for t in sorted(by_time):
        for topic, msg in by_time[t]:
            if topic in ("/tf", "/tf_static"):
                for tf in msg.transforms:
                    parent, child, pose = _tf(tf)
                    frames[child] = (parent, pose)
            elif topic == "/cell/scene":
                for m in msg.markers:
                    if m.ns == "parts":
                        (live.discard if m.action == 2 else live.add)(m.header.frame_id)
        if t not in world_links or (t // (NS // 24)) % 12:
            continue  # every half second of sim time is enough
        checked += 1
        for robot, names in urdf_links.items():
            for name, want in zip(names, world_links[t][robot], strict=True):
                got = chain(frames, name)
                assert got is not None, (t, name)
                assert close(got, want), (t, name, got, want)
        for part in live:
            assert chain(frames, part) is not None, (t, part)
    assert checked >= DURATION_S * 2 - 1


def test_the_robot_descriptions_are_urdfs_of_the_joint_states(bag: list[Any]) -> None:
    joints: dict[str, set[str]] = {}
    described: dict[str, ET.Element] = {}
    for topic, t, msg in bag:
        robot = topic.split("/")[1]
        if topic.endswith("/joint_states"):
            joints.setdefault(robot, set()).update(msg.name)
        elif topic.endswith("/robot_description"):
            assert t == 0 and robot not in described  # once, at the start
            described[robot] = ET.fromstring(msg.data)
    assert sorted(described) == sorted(joints)
    for robot, urdf in described.items():
        assert urdf.tag == "robot"
        kinds = {j.get("name"): j.get("type") for j in urdf.iter("joint")}
        links = {link.get("name") for link in urdf.iter("link")}
        assert joints[robot] <= set(kinds)
        assert joints[robot] == {n for n, k in kinds.items() if k == "revolute"}
        for j in urdf.iter("joint"):
            for end in ("parent", "child"):
                el = j.find(end)
                assert el is not None and el.get("link") in links
        assert all(name.startswith(f"{robot}/") for name in links)
        for mesh in urdf.iter("mesh"):
            uri = mesh.get("filename", "")
            assert uri.startswith("file://") and Path(uri.removeprefix("file://")).is_file()


def test_a_marker_for_every_part_from_creation_to_shipping_or_scrap(
    run: tuple[Path, Any], bag: list[Any]
) -> None:
    added: dict[str, int] = {}
    deleted: dict[str, int] = {}
    kinds = set()
    for topic, t, msg in bag:
        if topic != "/cell/scene":
            continue
        for m in msg.markers:
            kinds.add(m.ns)
            if m.ns == "parts":
                part = m.header.frame_id.removeprefix("part/")
                if m.action == 2:
                    deleted.setdefault(part, t)
                else:
                    added.setdefault(part, t)
                    assert m.frame_locked and m.scale.x > 0
    assert {"belt", "fixture", "tray", "parts"} <= kinds
    log = _events(run)
    end = log[-1]["t_ns"]
    created = {e["part"]: e["t_ns"] for e in log if e["kind"] == "part_created"}
    gone: dict[str, int] = {}
    for e in log:
        if e["kind"] in ("unit_shipped", "unit_scrapped"):
            gone.update(dict.fromkeys(e["parts"], e["t_ns"]))
        elif e["kind"] == "part_scrapped":
            gone[e["part"]] = e["t_ns"]
    assert gone, "the run shipped or scrapped nothing: make it longer"
    assert set(created) <= set(added)
    for part, t in gone.items():
        if t < end - NS // 4:  # the world retires it in the next tick
            assert part in deleted and deleted[part] >= added[part], part
    assert not set(deleted) - set(gone)  # nothing vanished that the ledger still has


def test_every_fault_is_on_the_diagnostics_until_it_is_over(
    run: tuple[Path, Any], bag: list[Any]
) -> None:
    log = _events(run)
    kpis = json.loads((run[0] / "run" / "kpis.json").read_text())
    injected = [e for e in log if e["kind"] == "fault_injected"]
    assert sorted(e["fault"] for e in injected) == sorted(f.kind.value for f in FAULTS)
    latest: dict[int, Any] = {}
    for topic, t, msg in bag:
        if topic == "/diagnostics":
            latest[t] = msg  # the last written at each sim time
    diags = sorted(latest.items())
    listed = {(f["kind"], f["target"]): f for f in kpis["faults"]}
    for ev in injected:
        kind, target = ev["fault"], ev["target"]
        f = listed[(kind, target)]
        if f["recovered_at_s"] is not None:
            end = round(f["recovered_at_s"] * NS) - NS // 2000  # kpis.json rounds to the ms
            slack = KPI_LAG_NS if kind == "gripper_drop" else 0
        else:
            assert f["detected_at_s"] is None, f  # detected and not recovered: run longer
            end = ev["t_ns"] + round(f["duration_s"] * NS) + GRACE_NS
            slack = NS // 24
        assert end + slack < diags[-1][0], f"{kind} on {target} is not over by the end"
        during = after = 0
        for t, msg in diags:
            mine = [s for s in msg.status if s.name.startswith(f"{target}: ")]
            if t < ev["t_ns"]:
                continue
            (st,) = mine
            values = {kv.key: kv.value for kv in st.values}
            if t < end:
                assert st.level >= WARN and kind in values["fault"], (kind, t, st.message)
                during += 1
            elif t >= end + slack:
                assert kind not in values["fault"], (kind, t, st.message)
                after += 1
        assert during and after, (kind, during, after)
        final = [s for s in diags[-1][1].status if s.name.startswith(f"{target}: ")]
        assert final[0].level == 0, (kind, final[0].message)


def test_the_report_draws_the_cell_from_the_bag(run: tuple[Path, Any], bag: list[Any]) -> None:
    from clients.report import write_report
    from clients.report_cell import read_snapshots

    snaps = read_snapshots(run[0] / "run" / "bag")
    assert len(snaps) == 3 and snaps[-1].t_ns == round(DURATION_S * NS)
    for snap in snaps:
        # every arm with a bone per URDF joint, belts, stations and the parts alive then
        assert {len(b) for b in snap.arms.values()} == {7, 12}  # iiwa, panda
        assert sum(b.part for b in snap.blocks) >= 1
        assert sum(not b.part for b in snap.blocks) == 7  # 2 belts, 3 trays, 2 fixtures
    page = write_report(run[0] / "run").read_text()
    assert 'id="figure-cell"' in page and page.count("<svg") == 4


def test_the_replay_and_the_console_show_the_cell_the_bag_shows(
    run: tuple[Path, dict[int, dict[str, list[Pose]]]], bag: list[Any]
) -> None:
    from bus.messages import JointsFrame, PartsFrame
    from clients.console_model import ConsoleModel
    from clients.replay import replay_frames

    world_links = run[1]
    live: set[str] = set()
    for topic, _t, msg in bag:
        if topic == "/cell/scene":
            for m in msg.markers:
                if m.ns == "parts":
                    (live.discard if m.action == 2 else live.add)(m.header.frame_id[5:])
    model = ConsoleModel()
    last_parts: set[str] = set()
    checked = 0
    for frame in replay_frames(run[0] / "run" / "bag"):
        model.feed(frame)
        if isinstance(frame, PartsFrame):
            last_parts = {p.part for p in frame.parts}
        if isinstance(frame, JointsFrame) and frame.t_ns in world_links and frame.t_ns % NS == 0:
            for arm in frame.arms:
                want = world_links[frame.t_ns][arm.robot]
                assert len(arm.poses()) == len(want) == len(arm.links)
                for got, w in zip(arm.poses(), want, strict=True):
                    assert close((got.x, got.y, got.z, got.qx, got.qy, got.qz, got.qw), w)
            checked += 1
    assert checked >= DURATION_S - 1
    assert last_parts == live  # the parts the replay ends with are the scene's
    end = world_links[max(world_links)]
    for robot, row in model.robots.items():
        assert len(row.links) == len(end[robot])
        assert all(
            max(abs(a - b) for a, b in zip(row.links[n], end[robot][i][:3], strict=False)) < 1e-6
            for i, n in enumerate(row.links)
        )
    shown = {p for parts in model.stations.values() for p in parts}
    shown |= {p for parts in model.joined.values() for p in parts} | set(model.joined)
    held = {row.holding for row in model.robots.values()} - {""}
    assert shown | held == live
