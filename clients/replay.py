"""Play a recorded bag back through the console: ``lightsout replay BAG [--speed X]``.

``replay_frames`` rebuilds the telemetry frames a ``BagRecorder`` took from
the bag's standard messages (joint states, tf and tf_static, the robot
descriptions, the scene markers, diagnostics, the cell's JSON topics), so
anything that eats telemetry, the console's ``ConsoleModel`` first, can be
fed a past run as if it were live: each arm's links come back as the world
had them (composed along the tf tree the URDF names), and the parts are the
ones the scene shows. ``run_replay`` paces them
by their sim time (``speed`` times the wall clock, or as fast as it can).
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rosbags.typesys import get_typestore

from bus.enums import ExecStep, PackMLState
from bus.errors import ConfigError
from bus.messages import (
    ArmState,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartPose,
    PartsFrame,
    Pose3,
)
from bus.simtime import NS
from clients.bag import (
    STORE,
    TOPIC_DIAGNOSTICS,
    TOPIC_EVENTS,
    TOPIC_KPIS,
    TOPIC_PARTS,
    TOPIC_SCENE,
    TOPIC_TF,
    TOPIC_TF_STATIC,
    WORLD,
    open_bag,
)
from clients.bag_scene import NS_PARTS
from clients.bag_tf import LinkTree, mul, parse_urdf
from clients.console_model import ConsoleModel

IDENTITY = Pose3(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def _pose(tf: Any) -> Pose3:
    tr, rot = tf.transform.translation, tf.transform.rotation
    return Pose3(
        float(tr.x),
        float(tr.y),
        float(tr.z),
        float(rot.x),
        float(rot.y),
        float(rot.z),
        float(rot.w),
    )


def _state(text: str) -> PackMLState:
    try:
        return PackMLState(text)
    except ValueError:
        return PackMLState.STOPPED


def _step(text: str) -> ExecStep:
    try:
        return ExecStep(text)
    except ValueError:
        return ExecStep.WAITING


class _Rebuild:
    """What the bag said so far: frames, poses, robot status, part locations."""

    def __init__(self) -> None:
        self.frames: dict[str, tuple[str, Pose3]] = {}
        """Child frame -> (parent frame, transform), from ``/tf`` and ``/tf_static``."""
        self.status: dict[str, dict[str, str]] = {}
        self.where: dict[str, tuple[str, str]] = {}
        self.trees: dict[str, LinkTree] = {}
        self.scene: dict[str, str] | None = None
        """Live parts (``part/<id>`` frame -> marker id) as ``/cell/scene`` last drew them."""
        self.seq: collections.Counter[str] = collections.Counter()

    def world(self, frame: str) -> Pose3 | None:
        """``frame``'s pose in ``world``, composed along the tree (None if it does not reach)."""
        pose: Pose3 | None = None
        for _ in range(64):  # deeper than any arm; a loop in a bad bag ends here
            if frame == WORLD:
                return pose or IDENTITY
            link = self.frames.get(frame)
            if link is None:
                return None
            frame, tf = link
            pose = tf if pose is None else mul(tf, pose)
        return None

    def _links(self, robot: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
        tree = self.trees.get(robot)
        if tree is None:
            return (), ()
        prefix = f"{robot}/"
        names: list[str] = []
        poses: list[float] = []
        for link in tree.links:
            p = self.world(link)
            if p is not None:
                names.append(link.removeprefix(prefix))
                poses += (p.x, p.y, p.z, p.qx, p.qy, p.qz, p.qw)
        return tuple(names), tuple(poses)

    def next_seq(self, topic: str) -> int:
        n = self.seq[topic]
        self.seq[topic] += 1
        return n

    def group(self, t_ns: int, msgs: list[tuple[str, Any]]) -> Iterator[Message]:
        """The frames of one sim time, from every message stamped with it."""
        joints: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
        parts_moved = False
        out: list[Message] = []
        for topic, msg in msgs:
            if topic in (TOPIC_TF, TOPIC_TF_STATIC):
                for tf in msg.transforms:
                    child = str(tf.child_frame_id)
                    self.frames[child] = (str(tf.header.frame_id), _pose(tf))
                    parts_moved |= child.startswith("part/")
            elif topic.endswith("/robot_description"):
                robot = topic.strip("/").split("/")[0]
                self.trees[robot] = parse_urdf(robot, str(msg.data))
            elif topic == TOPIC_SCENE:
                scene = dict(self.scene or {})
                for m in msg.markers:
                    if m.ns == NS_PARTS:
                        frame = str(m.header.frame_id)
                        if m.action == m.DELETE:
                            scene.pop(frame, None)
                        else:
                            scene[frame] = str(m.id)
                self.scene = scene
                parts_moved = True
            elif topic == TOPIC_DIAGNOSTICS:
                for st in msg.status:
                    values = {str(kv.key): str(kv.value) for kv in st.values}
                    robot = values.get("robot") or str(st.hardware_id)
                    if robot:
                        self.status[robot] = values
            elif topic == TOPIC_PARTS:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    self.where = {
                        str(k): (str(v[0]), str(v[1]))
                        for k, v in data.items()
                        if isinstance(v, list) and len(v) == 2
                    }
                    parts_moved = True
            elif topic == TOPIC_EVENTS:
                try:
                    kind = str(json.loads(msg.data).get("kind", ""))
                except (ValueError, AttributeError):
                    kind = ""
                out.append(EventFrame(self.next_seq("events"), t_ns, kind, str(msg.data)))
            elif topic == TOPIC_KPIS:
                out.append(KpiFrame(self.next_seq("kpis"), t_ns, str(msg.data)))
            elif topic.endswith("/joint_states"):
                robot = topic.strip("/").split("/")[0]
                joints[robot] = (
                    tuple(str(n) for n in msg.name),
                    tuple(float(q) for q in msg.position),
                )
        if joints:
            arms = []
            for robot, (names, q) in sorted(joints.items()):
                st = self.status.get(robot, {})
                links, link_poses = self._links(robot)
                arms.append(
                    ArmState(
                        robot=robot,
                        names=names,
                        q=q,
                        base=self.world(f"{robot}/base") or IDENTITY,
                        tcp=self.world(f"{robot}/tcp") or IDENTITY,
                        state=_state(st.get("state", "")),
                        step=_step(st.get("step", "")),
                        op_id=st.get("op", ""),
                        holding=st.get("holding", ""),
                        links=links,
                        link_poses=link_poses,
                    )
                )
            yield JointsFrame(self.next_seq("joints"), t_ns, tuple(arms))
        if parts_moved:
            poses, locations = [], []
            for part, (kind, loc) in sorted(self.where.items()):
                if self.scene is not None and f"part/{part}" not in self.scene:
                    continue  # the scene has it gone (shipped, scrapped) before its location
                p = self.world(f"part/{part}")
                if p is not None:
                    poses.append(PartPose(part, kind, p.x, p.y, p.z, p.qx, p.qy, p.qz, p.qw))
                    locations.append(loc)
            yield PartsFrame(self.next_seq("parts"), t_ns, tuple(poses), tuple(locations))
        yield from out


def replay_frames(path: Path) -> Iterator[Message]:
    """The telemetry frames of a bag ``BagRecorder`` wrote, in sim-time order.

    Robot status between diagnostics (written on every change) is the last
    one seen; part locations come from ``/cell/parts``. Topics the recorder
    does not write are skipped, so a bag with more in it still plays.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(str(path), "", "no such bag")
    store = get_typestore(STORE)
    state = _Rebuild()
    reader = open_bag(path)
    try:
        group: list[tuple[str, Any]] = []
        group_t = -1
        for conn, t, raw in reader.messages():
            topic = conn.topic
            wanted = topic in (TOPIC_TF, TOPIC_TF_STATIC, TOPIC_SCENE, TOPIC_DIAGNOSTICS)
            wanted |= topic in (TOPIC_PARTS, TOPIC_EVENTS, TOPIC_KPIS)
            if not (wanted or topic.endswith(("/joint_states", "/robot_description"))):
                continue
            if t != group_t and group:
                yield from state.group(group_t, group)
                group = []
            group_t = t
            group.append((topic, store.deserialize_cdr(raw, conn.msgtype)))
        if group:
            yield from state.group(group_t, group)
    finally:
        reader.close()


def run_replay(
    path: Path,
    *,
    speed: float = 1.0,
    fps: float = 12.0,
    console: Console | None = None,
    model: ConsoleModel | None = None,
) -> ConsoleModel:
    """Feed a bag's frames to a console model and show it live; return the model at the end.

    ``speed`` is sim seconds per wall second (0: as fast as possible).
    Ctrl-C stops the replay where it is.
    """
    if speed < 0:
        raise ConfigError("--speed", str(speed), "must be >= 0 (0: as fast as possible)")
    console = console or Console()
    model = model or ConsoleModel(endpoint=f"replay {Path(path).name}")
    model.pace = "as fast as possible" if speed == 0 else f"replay x{speed:g}"
    model.keys = False
    model.note("replay of a recorded bag: Ctrl-C stops it")
    frames = replay_frames(path)
    period = 1.0 / fps
    with Live(model.render(height=console.height), console=console, auto_refresh=False) as live:
        start_wall = time.monotonic()
        start_t: int | None = None
        drawn = 0.0
        try:
            for frame in frames:
                t_ns = int(getattr(frame, "t_ns", 0))
                if start_t is None:
                    start_t = t_ns
                if speed > 0:
                    due = start_wall + (t_ns - start_t) / NS / speed
                    while (left := due - time.monotonic()) > 0:
                        time.sleep(min(left, period))  # pacing a replay, not waiting on a test
                model.feed(frame)
                now = time.monotonic()
                if now - drawn >= period:
                    live.update(model.render(height=console.height), refresh=True)
                    drawn = now
        except KeyboardInterrupt:
            model.note("replay stopped")
        live.update(model.render(height=console.height), refresh=True)
    return model
