"""Record a cell's telemetry as a ROS 2 bag (rosbag2, MCAP storage) in sim time.

``BagRecorder(path)`` takes the telemetry frames (``JointsFrame``,
``PartsFrame``, ``EventFrame``, ``KpiFrame``) and writes standard ROS 2
messages, so RViz, Foxglove, PlotJuggler or ``ros2 bag`` can open a run
without knowing lightsout, and draw the whole cell moving:

* ``/<robot>/robot_description`` (``std_msgs/msg/String``, latched): the
  arm's URDF with links named ``<robot>/<link>`` (``cells.models``), once
  at the start;
* ``/<robot>/joint_states`` (``sensor_msgs/msg/JointState``): joint names and
  positions, every control tick;
* ``/tf_static`` (latched): ``world`` -> ``<robot>/base`` -> the URDF's root
  link, and every fixed joint of the URDF, once at the start;
* ``/tf`` (``tf2_msgs/msg/TFMessage``): every movable joint, parent link to
  child link, from the world's own link poses, and ``world`` ->
  ``<robot>/tcp``, every tick; ``world`` -> ``part/<id>`` for every live part;
* ``/cell/scene`` (``visualization_msgs/msg/MarkerArray``): belts, stations
  and a box per live part, written when a part appears or goes
  (``clients.bag_scene``);
* ``/diagnostics`` (``diagnostic_msgs/msg/DiagnosticArray``): one status per
  robot (its PackML state, step, operation, part held and the faults on it)
  and one per belt, sensor or process that had a fault, whenever one of them
  changes and at least once a sim second (``clients.bag_faults``);
* ``/clock`` (``rosgraph_msgs/msg/Clock``): sim time, every tick, for
  ``use_sim_time``;
* ``/cell/events`` and ``/cell/kpis`` (``std_msgs/msg/String``): the event
  log lines and the KPI snapshots as JSON;
* ``/cell/parts`` (``std_msgs/msg/String``): every live part's kind and
  ledger location as JSON (``{"frame-0001": ["frame", "fixture:F1"]}``),
  whenever one of them changes, so a replay can show the stations again.

Every message is stamped with the frame's sim time: the bag's log time and
each header's stamp are ``t_ns``. The bag is rosbag2 version 9 with the ROS 2
Jazzy message definitions embedded in the MCAP file, which is all a tool
needs to decode it; ``metadata.yaml`` names ``jazzy`` as its ``ros_distro``.
An existing path is never overwritten.
"""

from __future__ import annotations

import collections
import json
import logging
import math
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from bus.cellspec import CellSpec, RobotSpec
from bus.enums import PackMLState
from bus.errors import ConfigError, LightsoutError
from bus.messages import ArmState, EventFrame, JointsFrame, KpiFrame, Message, PartsFrame, Pose3
from clients.bag_cdr import Transform, joint_state, tf_message
from clients.bag_cdr import clock as cdr_clock
from clients.bag_faults import STOPPING, ActiveFaults
from clients.bag_scene import SceneMarkers
from clients.bag_tf import IDENTITY, LinkTree, Mover, parse_urdf

log = logging.getLogger(__name__)

STORE = Stores.ROS2_JAZZY
"""The ROS 2 distribution whose message definitions the bag carries (rosbag2 v9 is Jazzy's)."""
ROS_DISTRO = "jazzy"
"""What ``metadata.yaml`` says of ``STORE`` (rosbags' writer puts its own name there)."""
BAG_VERSION: Literal[9] = 9
WORLD = "world"
"""The fixed frame every transform hangs from."""

JOINT_STATE = "sensor_msgs/msg/JointState"
TF = "tf2_msgs/msg/TFMessage"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
STRING = "std_msgs/msg/String"
MARKERS = "visualization_msgs/msg/MarkerArray"
CLOCK = "rosgraph_msgs/msg/Clock"

TOPIC_TF = "/tf"
TOPIC_TF_STATIC = "/tf_static"
TOPIC_CLOCK = "/clock"
TOPIC_SCENE = "/cell/scene"
TOPIC_DIAGNOSTICS = "/diagnostics"
TOPIC_EVENTS = "/cell/events"
TOPIC_KPIS = "/cell/kpis"
TOPIC_PARTS = "/cell/parts"

DIAG_PERIOD_NS = 1_000_000_000
"""Diagnostics are written at least this often (sim time), and on every change."""

ERROR_STATES = frozenset({PackMLState.ABORTING, PackMLState.ABORTED})
WARN_STATES = frozenset(
    {
        PackMLState.STOPPED,
        PackMLState.STOPPING,
        PackMLState.HOLDING,
        PackMLState.HELD,
        PackMLState.SUSPENDING,
        PackMLState.SUSPENDED,
        PackMLState.CLEARING,
    }
)
"""States that need attention but are no fault; every other state is OK."""

_INFINITE = QosTime(9223372036, 854775807)
DEFAULT_QOS = Qos(
    QosHistory.KEEP_LAST,
    10,
    QosReliability.RELIABLE,
    QosDurability.VOLATILE,
    _INFINITE,
    _INFINITE,
    QosLiveliness.AUTOMATIC,
    _INFINITE,
    False,
)
"""What a ROS 2 publisher offers by default; ``ros2 bag play`` republishes with it."""
LATCHED_QOS = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    _INFINITE,
    _INFINITE,
    QosLiveliness.AUTOMATIC,
    _INFINITE,
    False,
)
"""What ``robot_state_publisher`` offers on ``/tf_static`` and ``robot_description``: a
viewer that subscribes late still gets the one message."""
LATCHED = frozenset({TOPIC_TF_STATIC})
FAULT_PLACES = {"conveyor_jam": "conveyor", "sensor_blackout": "sensor"}
"""What a fault's target is when it is no robot (its status is named ``<target>: <this>``)."""

OK, WARN, ERROR = 0, 1, 2
"""``diagnostic_msgs/msg/DiagnosticStatus`` levels."""


def level_of(state: PackMLState, fault: str) -> int:
    """OK, WARN or ERROR for a robot in ``state`` with the faults ``fault`` ("" for none).

    A fault that takes the robot down is an ERROR, any other (slow, lossy
    link, a drop) a WARN, whatever state the robot is in meanwhile.
    """
    kinds = set(fault.split(", ")) - {""}
    if kinds & STOPPING or state in ERROR_STATES:
        return ERROR
    if kinds:
        return WARN
    if state in WARN_STATES:
        return WARN
    return OK


class BagRecorder:
    """Writes telemetry frames to a new rosbag2 directory at ``path``.

    ``cell`` (optional) names the robots up front, so their topics exist in
    the order of the cell file even before the first frame, and goes into the
    bag's ``custom_data``; it is also what the robot descriptions, the link
    tree, the static frames and the scene's stations come from (without it,
    each link's frame is written straight from ``world``, and the scene has
    only the parts). Call ``write`` per frame and ``close`` at the end
    (or use it as a context manager); a bag that is not closed has no index
    and no ``metadata.yaml``.
    """

    def __init__(self, path: Path, *, cell: CellSpec | None = None) -> None:
        path = Path(path)
        if path.exists():
            raise ConfigError(str(path), "", "exists already; a bag is never overwritten")
        if not path.parent.is_dir():
            raise ConfigError(str(path), "", f"no directory {path.parent} to create the bag in")
        self.path = path
        self.store = get_typestore(STORE)
        t = self.store.types
        self._Time = t["builtin_interfaces/msg/Time"]
        self._Header = t["std_msgs/msg/Header"]
        self._JointState = t[JOINT_STATE]
        self._TFMessage = t[TF]
        self._TransformStamped = t["geometry_msgs/msg/TransformStamped"]
        self._Transform = t["geometry_msgs/msg/Transform"]
        self._Vector3 = t["geometry_msgs/msg/Vector3"]
        self._Quaternion = t["geometry_msgs/msg/Quaternion"]
        self._DiagnosticArray = t[DIAGNOSTICS]
        self._DiagnosticStatus = t["diagnostic_msgs/msg/DiagnosticStatus"]
        self._KeyValue = t["diagnostic_msgs/msg/KeyValue"]
        self._String = t[STRING]
        self._Clock = t[CLOCK]
        self.counts: collections.Counter[str] = collections.Counter()
        """Messages written per topic."""
        self.frames = 0
        """Frames taken by ``write``."""
        self.last_t_ns = -1
        """The latest sim time written."""
        self._conns: dict[str, Connection] = {}
        self._stamp: tuple[int, Any] = (-1, None)
        self._last_ns: dict[str, int] = {}
        self.faults = ActiveFaults()
        """The injected faults on now, from the events (and KPI snapshots) recorded."""
        self._places: dict[str, str] = {}
        """Targets of faults that are no robot, and what they are, in the order they came."""
        self._arms: tuple[ArmState, ...] = ()
        self._where: dict[str, tuple[str, str]] | None = None
        self._diag_key: tuple[tuple[Any, ...], ...] | None = None
        self._diag_ns = -1
        self.descriptions: dict[str, str] = {}
        """Each robot's URDF as the bag carries it."""
        self.trees: dict[str, LinkTree] = {}
        self._movers: dict[str, Mover] = {}
        if cell is not None:
            from cells.models import robot_description

            for r in cell.robots:
                self.descriptions[r.name] = robot_description(r.name, r.model)
                self.trees[r.name] = parse_urdf(r.name, self.descriptions[r.name])
                self._movers[r.name] = Mover(self.trees[r.name])
        self.scene = SceneMarkers(t, cell, WORLD)
        self._cell = cell
        self._writer: Writer | None = Writer(
            path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP
        )
        try:
            if cell is not None:
                self._writer.set_custom_data("lightsout.cell", cell.name)
                self._writer.set_custom_data("lightsout.source", cell.source)
            self._writer.set_custom_data(
                "lightsout.time", "sim time: stamps are ns from the run's start"
            )
            self._writer.open()
            for r in cell.robots if cell is not None else ():
                self._conn(f"/{r.name}/robot_description", STRING, latched=True)
                self._conn(f"/{r.name}/joint_states", JOINT_STATE)
            for topic, kind in (
                (TOPIC_TF_STATIC, TF),
                (TOPIC_TF, TF),
                (TOPIC_CLOCK, CLOCK),
                (TOPIC_SCENE, MARKERS),
                (TOPIC_DIAGNOSTICS, DIAGNOSTICS),
                (TOPIC_EVENTS, STRING),
                (TOPIC_KPIS, STRING),
                (TOPIC_PARTS, STRING),
            ):
                self._conn(topic, kind, latched=topic in LATCHED)
            self._start()
        except WriterError as exc:
            self._writer = None
            raise ConfigError(str(path), "", str(exc)) from None

    def _start(self) -> None:
        """What is written once, at sim time 0: the URDFs and the static frames."""
        for robot, text in self.descriptions.items():
            self._put(f"/{robot}/robot_description", STRING, 0, self._String(data=text))
        if self._cell is None:
            return
        static = [tf for r in self._cell.robots for tf in self._static(0, r)]
        self._put(TOPIC_TF_STATIC, TF, 0, self._TFMessage(transforms=static))
        marks = self.scene.update(self._header(0, WORLD), {})
        if marks is not None:
            self._put(TOPIC_SCENE, MARKERS, 0, marks)

    def _static(self, t_ns: int, r: RobotSpec) -> list[Any]:
        """A robot's fixed frames: world to its base, its base to the URDF's root, fixed joints."""
        b = r.base
        half = b.yaw / 2
        base = Pose3(b.x, b.y, b.z, 0.0, 0.0, math.sin(half), math.cos(half))
        tree = self.trees[r.name]
        out = [
            self._transform(t_ns, f"{r.name}/base", base),
            self._transform(t_ns, tree.root, IDENTITY, parent=f"{r.name}/base"),
        ]
        out += [self._transform(t_ns, j.child, j.origin, parent=j.parent) for j in tree.fixed]
        return out

    def _built(self, t_ns: int, rec: dict[str, Any]) -> None:
        """A robot built in the cell joined (``robot_added``): its URDF and fixed frames from
        now on, as the cell file's robots have them from the start."""
        name, mount = str(rec.get("robot") or ""), str(rec.get("mount") or "")
        if self._cell is None or name in self.trees:
            return
        try:
            spec = self._cell.built_robot(name, mount)
        except KeyError:
            log.warning("bag: robot_added for %r on %r: not a mount of this cell", name, mount)
            return
        from cells.models import robot_description

        self.descriptions[name] = robot_description(name, spec.model)
        self.trees[name] = parse_urdf(name, self.descriptions[name])
        self._movers[name] = Mover(self.trees[name])
        topic = f"/{name}/robot_description"
        self._conn(topic, STRING, latched=True)
        self._put(topic, STRING, t_ns, self._String(data=self.descriptions[name]))
        static = self._TFMessage(transforms=self._static(t_ns, spec))
        self._put(TOPIC_TF_STATIC, TF, t_ns, static)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write the index and ``metadata.yaml``; later calls do nothing."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            meta = self.path / "metadata.yaml"
            text = meta.read_text(encoding="utf-8")
            meta.write_text(
                text.replace("ros_distro: rosbags", f"ros_distro: {ROS_DISTRO}"), encoding="utf-8"
            )

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # an interrupted recording is still worth keeping: close, never abort
        self.close()

    @property
    def topics(self) -> dict[str, str]:
        """Every topic of the bag and its message type."""
        return {t: c.msgtype for t, c in self._conns.items()}

    # ------------------------------------------------------------ frames

    def write(self, frame: Message) -> None:
        """Record one telemetry frame."""
        if self._writer is None:
            raise LightsoutError(f"bag {self.path} is closed")
        self.frames += 1
        if isinstance(frame, JointsFrame):
            self._joints(frame)
        elif isinstance(frame, PartsFrame):
            self._parts(frame)
        elif isinstance(frame, EventFrame):
            self._event(frame)
        elif isinstance(frame, KpiFrame):
            self._put(TOPIC_KPIS, STRING, frame.t_ns, self._String(data=frame.data))
            if self.faults.kpis(frame.data):
                self._diagnostics(frame.t_ns, force=True)
        else:
            raise TypeError(f"not a telemetry frame: {type(frame).__name__}")

    def _joints(self, frame: JointsFrame) -> None:
        t = frame.t_ns
        sec, nsec = t // 1_000_000_000, t % 1_000_000_000
        self._put(TOPIC_CLOCK, CLOCK, t, cdr_clock(sec, nsec))
        transforms: list[Transform] = []
        for arm in frame.arms:
            # packed directly, like /tf (clients.bag_cdr): these are every tick's messages
            msg = joint_state(sec, nsec, arm.names, arm.q)
            self._put(f"/{arm.robot}/joint_states", JOINT_STATE, t, msg)
            mover = self._movers.get(arm.robot)
            if mover is None:
                # no URDF to lay the links out by (no cell given): each straight from the world
                transforms.append((WORLD, f"{arm.robot}/base", _seven(arm.base)))
                lp = arm.link_poses
                for i, name in enumerate(arm.links[: len(lp) // 7]):
                    transforms.append((WORLD, f"{arm.robot}/{name}", lp[7 * i : 7 * i + 7]))
            else:
                transforms += mover.moving(arm.links, arm.link_poses)
            transforms.append((WORLD, f"{arm.robot}/tcp", _seven(arm.tcp)))
        if transforms:
            self._put_tf(t, transforms)
        self._arms = frame.arms
        if self.faults.tick(t):
            self._diag_key = None
        self._diagnostics(t)

    def _parts(self, frame: PartsFrame) -> None:
        t = frame.t_ns
        transforms: list[Transform] = [
            (WORLD, f"part/{p.part}", (p.x, p.y, p.z, p.qx, p.qy, p.qz, p.qw)) for p in frame.parts
        ]
        if transforms:
            self._put_tf(t, transforms)
        where = {
            p.part: (p.kind, loc) for p, loc in zip(frame.parts, frame.locations, strict=False)
        }
        if where != self._where:
            self._where = where
            data = json.dumps({k: list(v) for k, v in sorted(where.items())})
            self._put(TOPIC_PARTS, STRING, t, self._String(data=data))
            marks = self.scene.update(self._header(t, WORLD), {p.part: p.kind for p in frame.parts})
            if marks is not None:
                self._put(TOPIC_SCENE, MARKERS, t, marks)

    def _event(self, frame: EventFrame) -> None:
        self._put(TOPIC_EVENTS, STRING, frame.t_ns, self._String(data=frame.data))
        try:
            rec = json.loads(frame.data)
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        if frame.kind == "robot_added":
            self._built(frame.t_ns, rec)
        if frame.kind == "fault_injected":
            target = str(rec.get("target") or "")
            robots = {a.robot for a in self._arms} | set(self.trees)
            if target and target not in robots:
                kind = str(rec.get("fault") or "")
                self._places.setdefault(target, FAULT_PLACES.get(kind, "process"))
        if self.faults.event(frame.t_ns, frame.kind, rec):
            self._diagnostics(frame.t_ns, force=True)

    def _diagnostics(self, t_ns: int, *, force: bool = False) -> None:
        """Each robot's health and each faulted place's, on any change and every ``DIAG_PERIOD_NS``."""
        if not self._arms and not self._places:
            return
        key = tuple(
            (a.robot, a.state, a.step, a.op_id, a.holding, ", ".join(self.faults.on(a.robot)))
            for a in self._arms
        ) + tuple((p, ", ".join(self.faults.on(p))) for p in self._places)
        if (
            not force
            and key == self._diag_key
            and self._diag_ns >= 0
            and t_ns - self._diag_ns < DIAG_PERIOD_NS
        ):
            return
        if key == self._diag_key and t_ns == self._diag_ns:
            return
        self._diag_key, self._diag_ns = key, t_ns
        kv = self._KeyValue
        status = []
        for a in self._arms:
            fault = ", ".join(self.faults.on(a.robot))
            status.append(
                self._DiagnosticStatus(
                    level=level_of(a.state, fault),
                    name=f"{a.robot}: PackML",
                    message=a.state.value + (f" ({fault})" if fault else ""),
                    hardware_id="",
                    values=[
                        kv(key="robot", value=a.robot),
                        kv(key="state", value=a.state.value),
                        kv(key="step", value=a.step.value),
                        kv(key="op", value=a.op_id),
                        kv(key="holding", value=a.holding),
                        kv(key="fault", value=fault),
                    ],
                )
            )
        for place, what in self._places.items():
            fault = ", ".join(self.faults.on(place))
            status.append(
                self._DiagnosticStatus(
                    level=ERROR if fault else OK,
                    name=f"{place}: {what}",
                    message=fault or "OK",
                    hardware_id="",
                    values=[kv(key=what, value=place), kv(key="fault", value=fault)],
                )
            )
        msg = self._DiagnosticArray(header=self._header(t_ns, ""), status=status)
        self._put(TOPIC_DIAGNOSTICS, DIAGNOSTICS, t_ns, msg)

    # ------------------------------------------------------------ helpers

    def _header(self, t_ns: int, frame_id: str) -> Any:
        # one stamp per sim time: a tick writes dozens of headers (messages are immutable
        # once serialized, so sharing it is safe)
        if self._stamp[0] != t_ns:
            self._stamp = (
                t_ns,
                self._Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000),
            )
        return self._Header(stamp=self._stamp[1], frame_id=frame_id)

    def _transform(self, t_ns: int, child: str, p: Pose3, *, parent: str = WORLD) -> Any:
        return self._TransformStamped(
            header=self._header(t_ns, parent),
            child_frame_id=child,
            transform=self._Transform(
                translation=self._Vector3(x=p.x, y=p.y, z=p.z),
                rotation=self._Quaternion(x=p.qx, y=p.qy, z=p.qz, w=p.qw),
            ),
        )

    def _conn(self, topic: str, msgtype: str, *, latched: bool = False) -> Connection:
        conn = self._conns.get(topic)
        if conn is None:
            assert self._writer is not None
            qos = LATCHED_QOS if latched else DEFAULT_QOS
            conn = self._writer.add_connection(
                topic, msgtype, typestore=self.store, offered_qos_profiles=[qos]
            )
            self._conns[topic] = conn
        return conn

    def _put_tf(self, t_ns: int, transforms: list[Transform]) -> None:
        """``/tf`` at ``t_ns``, packed directly (``clients.bag_cdr``): the bulk of every tick."""
        data = tf_message(t_ns // 1_000_000_000, t_ns % 1_000_000_000, transforms)
        self._put(TOPIC_TF, TF, t_ns, data)

    def _put(self, topic: str, msgtype: str, t_ns: int, msg: object) -> None:
        """Write ``msg`` (a message, or its CDR bytes already) on ``topic`` at ``t_ns``."""
        writer = self._writer
        assert writer is not None
        conn = self._conn(topic, msgtype)
        last = self._last_ns.get(topic, 0)
        if t_ns < last:
            # a topic's stamps never go back: a late frame is stamped at the latest time
            log.debug("bag: %s frame at %d after %d; stamped %d", topic, t_ns, last, last)
            t_ns = last
        self._last_ns[topic] = t_ns
        self.last_t_ns = max(self.last_t_ns, t_ns)
        data = msg if isinstance(msg, bytes) else self.store.serialize_cdr(msg, msgtype)
        writer.write(conn, t_ns, data)
        self.counts[topic] += 1


def _seven(p: Pose3) -> tuple[float, float, float, float, float, float, float]:
    return (p.x, p.y, p.z, p.qx, p.qy, p.qz, p.qw)


def open_bag(path: Path) -> Reader:
    """An opened rosbags ``Reader`` of the bag at ``path`` (replay and the report read with it),
    or one ``ConfigError`` naming the bag and why it cannot be read."""
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError) as exc:
        raise ConfigError(str(path), "", f"not a readable rosbag2: {exc}") from None
    return reader
