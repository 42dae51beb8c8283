"""ROS 2 bags from telemetry: topics, types, stamps, values, embedded schemas, no overwrite.

The format tests feed scripted joint and part frames (no event in them
stands in for what a supervisor logs); what the diagnostics make of faults
is tested over a real cell, its supervisor and its telemetry.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from bus.enums import ExecStep, PackMLState
from bus.errors import ConfigError
from bus.messages import (
    ArmState,
    Count,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartPose,
    PartsFrame,
    Pose3,
)
from clients.bag import ERROR, OK, WARN, BagRecorder, level_of

TICK_NS = 1_000_000_000 // 24
NAMES = ("j1", "j2", "j3")
TYPES = {
    "/tf_static": "tf2_msgs/msg/TFMessage",
    "/clock": "rosgraph_msgs/msg/Clock",
    "/cell/scene": "visualization_msgs/msg/MarkerArray",
    "/R1/joint_states": "sensor_msgs/msg/JointState",
    "/R2/joint_states": "sensor_msgs/msg/JointState",
    "/tf": "tf2_msgs/msg/TFMessage",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    "/cell/events": "std_msgs/msg/String",
    "/cell/kpis": "std_msgs/msg/String",
    "/cell/parts": "std_msgs/msg/String",
}


def _state(k: int, robot: str) -> PackMLState:
    """R2 is Aborted from tick 30 to 59; R1 always executes."""
    if robot == "R2" and 30 <= k < 60:
        return PackMLState.ABORTED
    return PackMLState.EXECUTE


def frames(ticks: int = 80) -> list[Message]:
    """Telemetry of a scripted two-arm cell, in the order the cell host publishes it."""
    out: list[Message] = []
    ev = 0
    for k in range(ticks):
        t = k * TICK_NS
        arms = tuple(
            ArmState(
                robot=r,
                names=NAMES,
                q=(0.01 * k, -0.02 * k + i, math.sin(k / 10)),
                base=Pose3(float(i), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
                tcp=Pose3(float(i), 0.5, 0.001 * k, 0.0, 0.0, 0.0, 1.0),
                state=_state(k, r),
                step=ExecStep.PICK if k % 20 < 10 else ExecStep.PLACE,
                op_id=f"u1/op{k // 20}",
                holding="",
            )
            for i, r in enumerate(("R1", "R2"))
        )
        if k in (29, 59):
            # the log's lines go through as they are; what they say is not read here
            line = {"t_ns": t, "kind": "note", "k": k}
            out.append(EventFrame(ev, t, "note", json.dumps(line)))
            ev += 1
        out.append(JointsFrame(k, t, arms))
        parts = tuple(
            PartPose(f"p{j}", "frame", 1.0 + j, 0.01 * k, 0.8, 0.0, 0.0, 0.0, 1.0)
            for j in range(3 if k < 40 else 2)
        )
        out.append(PartsFrame(k, t, parts, tuple("conveyor:infeed" for _ in parts)))
        if k % 24 == 0:
            out.append(KpiFrame(k // 24, t, json.dumps({"units_completed": k // 24})))
    return out


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bags") / "cell"
    with BagRecorder(path) as rec:
        for f in frames():
            rec.write(f)
    return path


def read_bag(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """Every message of the bag by topic: (log time, decoded message), via rosbags."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(path) as reader:
        store = _store()
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
        assert {c.topic: c.msgtype for c in reader.connections} == TYPES
    return out


def _store() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def test_every_topic_has_its_standard_type(bag: Path) -> None:
    msgs = read_bag(bag)
    assert set(msgs) == set(TYPES) - {"/tf_static"}  # no cell given: no URDF, nothing static
    assert len(msgs["/R1/joint_states"]) == 80
    assert len(msgs["/cell/kpis"]) == 4
    assert len(msgs["/cell/events"]) == 2
    # part locations only when they change: three parts, then two from tick 40
    assert [t for t, _m in msgs["/cell/parts"]] == [0, 40 * TICK_NS]
    assert json.loads(msgs["/cell/parts"][1][1].data) == {
        "p0": ["frame", "conveyor:infeed"],
        "p1": ["frame", "conveyor:infeed"],
    }


def test_stamps_are_sim_time_and_never_go_back(bag: Path) -> None:
    for topic, items in read_bag(bag).items():
        times = [t for t, _ in items]
        assert times == sorted(times), topic
        for t, msg in items:
            if hasattr(msg, "header"):
                assert _stamp_ns(msg) == t, topic
            for tf in getattr(msg, "transforms", ()):
                assert _stamp_ns(tf) == t


def test_joint_positions_are_the_frames(bag: Path) -> None:
    msgs = read_bag(bag)
    want = {(a.robot, f.t_ns): a.q for f in frames() if isinstance(f, JointsFrame) for a in f.arms}
    for robot in ("R1", "R2"):
        for t, msg in msgs[f"/{robot}/joint_states"]:
            assert list(msg.name) == list(NAMES)
            assert list(msg.position) == list(want[(robot, t)])


def test_tf_has_bases_tools_and_parts_from_world(bag: Path) -> None:
    msgs = read_bag(bag)
    children: dict[str, list[Any]] = {}
    for _t, msg in msgs["/tf"]:
        for tf in msg.transforms:
            assert tf.header.frame_id == "world"  # no cell, no URDF: every frame from the world
            children.setdefault(tf.child_frame_id, []).append(tf.transform)
    assert set(children) == {
        "R1/base",
        "R1/tcp",
        "R2/base",
        "R2/tcp",
        "part/p0",
        "part/p1",
        "part/p2",
    }
    assert len(children["part/p2"]) == 40  # gone after tick 40
    last = children["R2/tcp"][-1]
    assert (last.translation.x, last.translation.y, last.translation.z) == (1.0, 0.5, 0.079)
    assert last.rotation.w == 1.0


def test_diagnostics_follow_state(bag: Path) -> None:
    diags = read_bag(bag)["/diagnostics"]
    times = [t for t, _ in diags]
    assert all(b - a <= 1_000_000_000 for a, b in itertools.pairwise(times))
    assert times[-1] >= 79 * TICK_NS - 1_000_000_000
    by_t = {t: {s.name: s for s in msg.status} for t, msg in diags}
    assert set(by_t[0]) == {"R1: PackML", "R2: PackML"}  # named once, with no hardware id
    r2 = {t: s["R2: PackML"] for t, s in by_t.items()}
    assert r2[0].level == OK and r2[0].hardware_id == ""
    assert r2[30 * TICK_NS].level == ERROR and r2[30 * TICK_NS].message == "Aborted"
    assert r2[60 * TICK_NS].level == OK
    values = {kv.key: kv.value for kv in r2[60 * TICK_NS].values}
    assert values == {
        "robot": "R2",
        "state": "Execute",
        "step": "pick",
        "op": "u1/op3",
        "holding": "",
        "fault": "",
    }


def test_levels() -> None:
    assert level_of(PackMLState.EXECUTE, "") == OK
    assert level_of(PackMLState.IDLE, "") == OK
    assert level_of(PackMLState.HELD, "") == WARN
    assert level_of(PackMLState.SUSPENDED, "") == WARN
    assert level_of(PackMLState.STOPPED, "") == WARN
    assert level_of(PackMLState.ABORTING, "") == ERROR
    # a fault that takes the robot down is an error in any state; any other, a warning
    assert level_of(PackMLState.EXECUTE, "robot_fault") == ERROR
    assert level_of(PackMLState.IDLE, "agent_crash") == ERROR
    assert level_of(PackMLState.EXECUTE, "gripper_drop") == WARN
    assert level_of(PackMLState.EXECUTE, "slow_robot, message_loss") == WARN


def test_events_and_kpis_are_the_json_lines(bag: Path) -> None:
    msgs = read_bag(bag)
    sent = [f.data for f in frames() if isinstance(f, EventFrame)]
    assert [m.data for _t, m in msgs["/cell/events"]] == sent
    assert json.loads(msgs["/cell/kpis"][-1][1].data) == {"units_completed": 3}


def test_the_mcap_file_carries_every_message_definition(bag: Path) -> None:
    """A reader that never saw lightsout or rosbags decodes every message from the file alone."""
    (mcap,) = bag.glob("*.mcap")
    with mcap.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == set(TYPES.values())
        for s in schemas.values():
            assert s.encoding == "ros2msg"
        text = {name: s.data.decode() for name, s in schemas.items()}
        assert "float64[] position" in text["sensor_msgs/msg/JointState"]
        assert "MSG: geometry_msgs/TransformStamped" in text["tf2_msgs/msg/TFMessage"]
        assert "MSG: diagnostic_msgs/KeyValue" in text["diagnostic_msgs/msg/DiagnosticArray"]
        assert "string data" in text["std_msgs/msg/String"]
        counts: dict[str, int] = {}
        first_q: list[float] = []
        for _schema, channel, _msg, decoded in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if channel.topic == "/R2/joint_states" and not first_q:
                first_q = list(decoded.position)
    assert counts == {t: len(v) for t, v in read_bag(bag).items()}
    assert first_q == [0.0, 1.0, 0.0]


def test_metadata_is_rosbag2s(bag: Path) -> None:
    meta = YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9
    assert meta["ros_distro"] == "jazzy"
    assert meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == [f"{bag.name}.mcap"]
    assert meta["starting_time"]["nanoseconds_since_epoch"] == 0
    assert meta["duration"]["nanoseconds"] == 79 * TICK_NS
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert set(topics) == set(TYPES)
    assert topics["/R1/joint_states"]["message_count"] == 80
    assert topics["/tf"]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
    assert meta["message_count"] == sum(t["message_count"] for t in topics.values())


def test_an_existing_bag_is_never_overwritten(bag: Path) -> None:
    before = sorted((p.name, p.stat().st_size) for p in bag.iterdir())
    with pytest.raises(ConfigError, match="exists already"):
        BagRecorder(bag)
    assert sorted((p.name, p.stat().st_size) for p in bag.iterdir()) == before


def test_a_bag_needs_its_parent_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no directory"):
        BagRecorder(tmp_path / "nope" / "bag")


def test_only_telemetry_goes_in_and_nothing_after_close(tmp_path: Path) -> None:
    rec = BagRecorder(tmp_path / "bag")
    with pytest.raises(TypeError, match="not a telemetry frame"):
        rec.write(Count("x", 1))
    rec.close()
    rec.close()  # twice is fine
    with pytest.raises(Exception, match="closed"):
        rec.write(KpiFrame(0, 0, "{}"))
    assert (tmp_path / "bag" / "metadata.yaml").is_file()


@pytest.mark.timeout(300)
def test_a_robot_fault_a_real_supervisor_logs_is_on_until_it_is_recovered(
    tmp_path: Path, base: str, ctx: Any
) -> None:
    """The fault is the supervisor's ``fault_injected`` (``target``, not ``robot``): R2 is
    an error naming it from then, through Aborted, Clearing, Resetting and Idle, until the
    log has it back in Execute, and OK after."""
    import threading

    from cells.faults import FaultKind, ScheduledFault
    from cells.launch import RunOptions, run_cell
    from cells.schema import load_cell
    from clients.bag_record import RecordResult, record

    root = Path(__file__).resolve().parents[2]
    cell = load_cell(root / "cells" / "assembly.toml")
    fault = ScheduledFault(2.0, "R2", FaultKind.ROBOT_FAULT, 3.0)
    ready, out = threading.Event(), {}

    def body() -> None:
        out["res"] = record(base, tmp_path / "bag", cell=cell, ready=ready, ctx=ctx)

    thread = threading.Thread(target=body)
    thread.start()
    try:
        assert ready.wait(10)
        opts = RunOptions(seed=1, duration_s=9.0, endpoint=base, subscribers=1, faults=(fault,))
        run_cell(cell, tmp_path / "run", opts)
    finally:
        thread.join(timeout=60)
    assert isinstance(out.get("res"), RecordResult) and out["res"].reason == "run_end"
    log = [
        json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    ]
    (inj,) = [e for e in log if e["kind"] == "fault_injected"]
    assert inj["target"] == "R2" and "robot" not in inj
    mine = [e for e in log if e["kind"] == "robot_state" and e.get("robot") == "R2"]
    went = [e for e in mine if e["t_ns"] >= inj["t_ns"]]
    back = next(e["t_ns"] for e in went if e["dst"] == "Execute")
    assert {e["dst"] for e in went} >= {"Aborted", "Idle"}  # the state came and went meanwhile
    seen = []
    # the last status written at each sim time (an event may change it after that tick's joints)
    latest = dict(read_all(tmp_path / "bag")["/diagnostics"])
    for t, msg in sorted(latest.items()):
        (st,) = [s for s in msg.status if s.name == "R2: PackML"]
        fault_kv = {kv.key: kv.value for kv in st.values}["fault"]
        if inj["t_ns"] <= t < back:
            assert (st.level, fault_kv) == (ERROR, "robot_fault"), (t, st.message)
            seen.append(t)
        elif t >= back or t < inj["t_ns"]:
            assert fault_kv == "" and (t < inj["t_ns"] or st.level == OK), (t, st.message)
    assert seen and seen[0] == inj["t_ns"]


def read_all(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """Every message of a bag by topic, via rosbags (any topics)."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(path) as reader:
        store = _store()
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_tf_is_packed_as_rosbags_serializes_it(count: int) -> None:
    """The recorder packs ``/tf`` itself (its hot path): the bytes are rosbags' to the byte."""
    import random

    from clients.bag_cdr import tf_message

    rng = random.Random(count)
    store = _store()
    t = store.types
    items = [
        (
            "w" * rng.randint(0, 9),
            "R1/" + "x" * rng.randint(0, 12),
            [rng.random() for _ in range(7)],
        )
        for _ in range(count)
    ]
    msg = t["tf2_msgs/msg/TFMessage"](
        transforms=[
            t["geometry_msgs/msg/TransformStamped"](
                header=t["std_msgs/msg/Header"](
                    stamp=t["builtin_interfaces/msg/Time"](sec=3, nanosec=41_666_666), frame_id=p
                ),
                child_frame_id=c,
                transform=t["geometry_msgs/msg/Transform"](
                    translation=t["geometry_msgs/msg/Vector3"](x=v[0], y=v[1], z=v[2]),
                    rotation=t["geometry_msgs/msg/Quaternion"](x=v[3], y=v[4], z=v[5], w=v[6]),
                ),
            )
            for p, c, v in items
        ]
    )
    assert tf_message(3, 41_666_666, items) == store.serialize_cdr(msg, "tf2_msgs/msg/TFMessage")


@pytest.mark.parametrize("count", [0, 1, 7])
def test_joint_states_and_clock_are_packed_as_rosbags_serializes_them(count: int) -> None:
    import numpy as np

    from clients.bag_cdr import clock, joint_state

    store = _store()
    t = store.types
    names = [f"joint_{'x' * i}" for i in range(count)]
    q = [0.1 * i - 0.3 for i in range(count)]
    stamp = t["builtin_interfaces/msg/Time"](sec=5, nanosec=7)
    msg = t["sensor_msgs/msg/JointState"](
        header=t["std_msgs/msg/Header"](stamp=stamp, frame_id=""),
        name=names,
        position=np.asarray(q, dtype=np.float64),
        velocity=np.zeros(0, dtype=np.float64),
        effort=np.zeros(0, dtype=np.float64),
    )
    assert joint_state(5, 7, names, q) == store.serialize_cdr(msg, "sensor_msgs/msg/JointState")
    tick = t["rosgraph_msgs/msg/Clock"](clock=stamp)
    assert clock(5, 7) == store.serialize_cdr(tick, "rosgraph_msgs/msg/Clock")
