"""Record a cell's telemetry as a ROS 2 bag (rosbag2, MCAP storage) in sim time.

``BagRecorder(path)`` takes the telemetry frames (``JointsFrame``,
``PartsFrame``, ``EventFrame``, ``KpiFrame``) and writes standard ROS 2
messages, so RViz, Foxglove, PlotJuggler or ``ros2 bag`` can open a run
without knowing lightsout:

* ``/<robot>/joint_states`` (``sensor_msgs/msg/JointState``): joint names and
  positions, every control tick;
* ``/tf`` (``tf2_msgs/msg/TFMessage``): ``world`` -> ``<robot>/base`` and
  ``<robot>/tcp`` every tick, and ``world`` -> ``part/<id>`` for every live
  part;
* ``/diagnostics`` (``diagnostic_msgs/msg/DiagnosticArray``): one status per
  robot (its PackML state, step, operation, part held, fault) whenever one
  of them changes and at least once a sim second;
* ``/cell/events`` and ``/cell/kpis`` (``std_msgs/msg/String``): the event
  log lines and the KPI snapshots as JSON;
* ``/cell/parts`` (``std_msgs/msg/String``): every live part's kind and
  ledger location as JSON (``{"frame-0001": ["frame", "fixture:F1"]}``),
  whenever one of them changes, so a replay can show the stations again.

Every message is stamped with the frame's sim time: the bag's log time and
each header's stamp are ``t_ns``. The bag is rosbag2 version 9 with the ROS 2
Jazzy message definitions embedded in the MCAP file, which is all a tool
needs to decode it. An existing path is never overwritten.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

from bus.cellspec import CellSpec
from bus.enums import PackMLState
from bus.errors import ConfigError, LightsoutError
from bus.messages import ArmState, EventFrame, JointsFrame, KpiFrame, Message, PartsFrame, Pose3

log = logging.getLogger(__name__)

STORE = Stores.ROS2_JAZZY
"""The ROS 2 distribution whose message definitions the bag carries (rosbag2 v9 is Jazzy's)."""
BAG_VERSION: Literal[9] = 9
WORLD = "world"
"""The fixed frame every transform hangs from."""

JOINT_STATE = "sensor_msgs/msg/JointState"
TF = "tf2_msgs/msg/TFMessage"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
STRING = "std_msgs/msg/String"

TOPIC_TF = "/tf"
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
RECOVERED = frozenset({PackMLState.IDLE.value, PackMLState.EXECUTE.value})
"""A robot that reaches one of these after a fault is healthy again."""

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

OK, WARN, ERROR = 0, 1, 2
"""``diagnostic_msgs/msg/DiagnosticStatus`` levels."""


def level_of(state: PackMLState, fault: str) -> int:
    """OK, WARN or ERROR for a robot in ``state`` with ``fault`` ("" for none)."""
    if fault or state in ERROR_STATES:
        return ERROR
    if state in WARN_STATES:
        return WARN
    return OK


class BagRecorder:
    """Writes telemetry frames to a new rosbag2 directory at ``path``.

    ``cell`` (optional) names the robots up front, so their topics exist in
    the order of the cell file even before the first frame, and goes into the
    bag's ``custom_data``. Call ``write`` per frame and ``close`` at the end
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
        self.counts: collections.Counter[str] = collections.Counter()
        """Messages written per topic."""
        self.frames = 0
        """Frames taken by ``write``."""
        self.last_t_ns = -1
        """The latest sim time written."""
        self._conns: dict[str, Connection] = {}
        self._last_ns: dict[str, int] = {}
        self._faults: dict[str, str] = {}
        self._where: dict[str, tuple[str, str]] | None = None
        self._diag_key: tuple[tuple[Any, ...], ...] | None = None
        self._diag_ns = -1
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
                self._conn(f"/{r.name}/joint_states", JOINT_STATE)
            for topic, kind in (
                (TOPIC_TF, TF),
                (TOPIC_DIAGNOSTICS, DIAGNOSTICS),
                (TOPIC_EVENTS, STRING),
                (TOPIC_KPIS, STRING),
                (TOPIC_PARTS, STRING),
            ):
                self._conn(topic, kind)
        except WriterError as exc:
            self._writer = None
            raise ConfigError(str(path), "", str(exc)) from None

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write the index and ``metadata.yaml``; later calls do nothing."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

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
        else:
            raise TypeError(f"not a telemetry frame: {type(frame).__name__}")

    def _joints(self, frame: JointsFrame) -> None:
        t = frame.t_ns
        header = self._header(t, "")
        transforms = []
        for arm in frame.arms:
            msg = self._JointState(
                header=header,
                name=list(arm.names),
                position=np.asarray(arm.q, dtype=np.float64),
                velocity=np.zeros(0, dtype=np.float64),
                effort=np.zeros(0, dtype=np.float64),
            )
            self._put(f"/{arm.robot}/joint_states", JOINT_STATE, t, msg)
            transforms.append(self._transform(t, f"{arm.robot}/base", arm.base))
            transforms.append(self._transform(t, f"{arm.robot}/tcp", arm.tcp))
        if transforms:
            self._put(TOPIC_TF, TF, t, self._TFMessage(transforms=transforms))
        self._diagnostics(t, frame.arms)

    def _parts(self, frame: PartsFrame) -> None:
        t = frame.t_ns
        transforms = [
            self._transform(t, f"part/{p.part}", Pose3(p.x, p.y, p.z, p.qx, p.qy, p.qz, p.qw))
            for p in frame.parts
        ]
        if transforms:
            self._put(TOPIC_TF, TF, t, self._TFMessage(transforms=transforms))
        where = {
            p.part: (p.kind, loc) for p, loc in zip(frame.parts, frame.locations, strict=False)
        }
        if where != self._where:
            self._where = where
            data = json.dumps({k: list(v) for k, v in sorted(where.items())})
            self._put(TOPIC_PARTS, STRING, t, self._String(data=data))

    def _event(self, frame: EventFrame) -> None:
        self._put(TOPIC_EVENTS, STRING, frame.t_ns, self._String(data=frame.data))
        try:
            rec = json.loads(frame.data)
        except ValueError:
            return
        robot = rec.get("robot") if isinstance(rec, dict) else None
        if not isinstance(robot, str) or not robot:
            return
        kind = frame.kind
        if "fault" in kind:
            self._faults[robot] = str(rec.get("fault") or kind)
        elif kind == "robot_lost":
            self._faults[robot] = "lost"
        elif (kind == "robot_state" and rec.get("dst") in RECOVERED) or (
            kind == "robot_joined" and self._faults.get(robot) == "lost"
        ):
            self._faults.pop(robot, None)

    def _diagnostics(self, t_ns: int, arms: tuple[ArmState, ...]) -> None:
        """Each robot's health, on any change and at least every ``DIAG_PERIOD_NS``."""
        key = tuple(
            (a.robot, a.state, a.step, a.op_id, a.holding, self._faults.get(a.robot, ""))
            for a in arms
        )
        if key == self._diag_key and self._diag_ns >= 0 and t_ns - self._diag_ns < DIAG_PERIOD_NS:
            return
        self._diag_key, self._diag_ns = key, t_ns
        status = []
        for robot, state, step, op_id, holding, fault in key:
            kv = self._KeyValue
            status.append(
                self._DiagnosticStatus(
                    level=level_of(state, fault),
                    name=f"{robot}: PackML",
                    message=state.value + (f" ({fault})" if fault else ""),
                    hardware_id=robot,
                    values=[
                        kv(key="state", value=state.value),
                        kv(key="step", value=step.value),
                        kv(key="op", value=op_id),
                        kv(key="holding", value=holding),
                        kv(key="fault", value=fault),
                    ],
                )
            )
        msg = self._DiagnosticArray(header=self._header(t_ns, ""), status=status)
        self._put(TOPIC_DIAGNOSTICS, DIAGNOSTICS, t_ns, msg)

    # ------------------------------------------------------------ helpers

    def _header(self, t_ns: int, frame_id: str) -> Any:
        return self._Header(
            stamp=self._Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000),
            frame_id=frame_id,
        )

    def _transform(self, t_ns: int, child: str, p: Pose3) -> Any:
        return self._TransformStamped(
            header=self._header(t_ns, WORLD),
            child_frame_id=child,
            transform=self._Transform(
                translation=self._Vector3(x=p.x, y=p.y, z=p.z),
                rotation=self._Quaternion(x=p.qx, y=p.qy, z=p.qz, w=p.qw),
            ),
        )

    def _conn(self, topic: str, msgtype: str) -> Connection:
        conn = self._conns.get(topic)
        if conn is None:
            assert self._writer is not None
            conn = self._writer.add_connection(
                topic, msgtype, typestore=self.store, offered_qos_profiles=[DEFAULT_QOS]
            )
            self._conns[topic] = conn
        return conn

    def _put(self, topic: str, msgtype: str, t_ns: int, msg: object) -> None:
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
        writer.write(conn, t_ns, self.store.serialize_cdr(msg, msgtype))
        self.counts[topic] += 1


# ---------------------------------------------------------------- recording a live cell


def record(
    endpoint_base: str,
    path: Path,
    *,
    cell: CellSpec | None = None,
    stop: threading.Event | None = None,
    idle_s: float | None = None,
    probe_s: float | None = 5.0,
    until_ns: int | None = None,
    on_frame: Callable[[Message], None] | None = None,
    ready: threading.Event | None = None,
    ctx: Any = None,
) -> RecordResult:
    """Subscribe to a cell's telemetry and write every frame to a bag at ``path``.

    Stops at the cell's ``run_end`` event, when ``stop`` is set, after
    ``idle_s`` wall seconds without a frame once frames have come, at the
    first joints frame at or past ``until_ns`` of sim time, or when the cell
    is gone: after ``probe_s`` seconds of silence the control endpoint is
    asked for its status (a paused cell answers and is waited for; a cell
    that ended does not). Ctrl-C also ends it, with the bag closed and
    complete. ``ready`` is set once the subscription is on its way.
    """
    from bus.messages import TOPICS
    from clients.control import ControlClient, NoAnswer, Subscriber

    result = RecordResult(path=Path(path))
    with (
        BagRecorder(path, cell=cell) as bag,
        Subscriber(endpoint_base, TOPICS, ctx=ctx, hwm=1_000_000) as sub,
    ):
        if ready is not None:
            ready.set()
        last_frame = last_probe = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                frames = sub.poll(0.2)
                now = time.monotonic()
                if frames:
                    last_frame = now
                elif idle_s is not None and bag.frames and now - last_frame > idle_s:
                    result.reason = f"no telemetry for {idle_s:g} s"
                    break
                elif (
                    probe_s is not None
                    and bag.frames
                    and min(now - last_frame, now - last_probe) > probe_s
                ):
                    last_probe = now
                    try:
                        with ControlClient(endpoint_base, timeout_s=2.0, retries=0, ctx=ctx) as cc:
                            cc.status()
                    except NoAnswer:
                        result.reason = "the cell is gone"
                        break
                    except LightsoutError as exc:  # answered, though not as hoped: alive
                        log.debug("record: status probe: %s", exc)
                done = False
                for f in frames:
                    bag.write(f)
                    if on_frame is not None:
                        on_frame(f)
                    if isinstance(f, EventFrame) and f.kind == "run_end":
                        result.reason, done = "run_end", True
                    elif isinstance(f, JointsFrame) and until_ns is not None and f.t_ns >= until_ns:
                        result.reason, done = "reached the end time", True
                if done:
                    break
            else:
                result.reason = result.reason or "stopped"
        except KeyboardInterrupt:
            result.reason = "interrupted"
        finally:
            result.frames = bag.frames
            result.counts = dict(bag.counts)
            result.last_t_ns = bag.last_t_ns
            result.lost = sub.lost
            result.gaps = sub.gap_count
            result.malformed = sub.malformed
    return result


class RecordResult:
    """What ``record`` wrote and why it stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reason = ""
        self.frames = 0
        self.counts: dict[str, int] = {}
        self.last_t_ns = -1
        self.lost = 0
        self.gaps = 0
        self.malformed = 0
