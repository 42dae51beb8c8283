"""The cell host's outward face: the control endpoint and the telemetry publisher.

The sim server's process is the one that is always there (it owns the clock
and outlives a crashed supervisor or agent), so it hosts the two public
sockets:

* **control** (ROUTER): ``control_request`` in, ``control_reply`` out. The
  host answers ``status``, ``snapshot`` and ``pace`` itself and applies
  physical faults to the world; commands for robots, the cell and orders go
  to the supervisor in the next ``world_sense`` and its answers come back in
  ``world_act.replies``. A request id seen before gets the first answer again,
  so a retry is never done twice. Anything malformed is answered with code
  ``malformed`` and counted; a REQ client's envelope (an empty delimiter) is
  answered in kind (``sim.requests``).
* **telemetry** (XPUB): two frames ``[topic, payload]`` per message, topics
  ``joints``, ``parts``, ``events`` and ``kpis``, each with its own ``seq`` so
  a subscriber can see a gap and ask for a ``snapshot``. A topic nobody
  subscribes to is not even encoded, but its ``seq`` still counts. Each
  subscriber's queue holds ``TELEMETRY_HWM`` messages: one that stops reading
  misses messages (a gap in ``seq``, counted in ``dropped``) instead of
  making the cell's memory grow.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.codec import encode
from bus.endpoints import Endpoints
from bus.enums import ControlCode, ControlCommand, ExecStep, Pace, PackMLCommand, PackMLState
from bus.messages import (
    PACES,
    TOPICS,
    ArmState,
    CellStatus,
    ControlReply,
    ControlRequest,
    EventFrame,
    JointsFrame,
    KpiFrame,
    Message,
    PartsFrame,
    Pose3,
    RobotAct,
    RobotStatus,
    WorldAct,
)
from bus.security import apply_server, permits, role_of, start_auth
from bus.sockets import make_socket
from sim.faulting import NOTED_FAULTS, ROBOT_FAULT, FaultInjector
from sim.requests import Refusal, read_request
from sim.world import World

log = logging.getLogger(__name__)

FORWARDED = (ControlCommand.ROBOT, ControlCommand.CELL, ControlCommand.ORDER)
"""Requests the supervisor decides; the host only routes them."""
REPLY_MEMORY = 1024
"""Answered request ids remembered for retries."""
TELEMETRY_HWM = 250
"""Messages queued per telemetry subscriber: about 5 s of sim time at 24 ticks a second
(a joints and a parts frame a tick, plus events); past it that subscriber misses messages."""
PACE_FACTORS = (1e-3, 1e3)
"""The real-time factors ``pace realtime`` accepts (sim seconds per wall second)."""
UNREMEMBERED = (ControlCode.MALFORMED, ControlCode.UNKNOWN_COMMAND)
"""Codes whose answers are not kept for retries: the request was never understood."""
TELEMETRY_LINGER_MS = 5000
"""How long frames still queued for a subscriber are kept at close (wall ms). A recorder
runs at idle priority and may be a second of sim time behind when the run ends; without
this its last frames (and ``run_end``) were dropped with the socket. A subscriber that is
gone holds nothing up; one that is stuck delays the end by at most this."""


class CellHost:
    """Control and telemetry sockets of a running cell, stepped by the sim server."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoints: Endpoints,
        world: World,
        *,
        keys_dir: Path | None = None,
    ) -> None:
        """``keys_dir`` (keys made by ``lightsout keys create``) turns on CURVE and roles."""
        self.ctx = ctx
        self.endpoints = endpoints
        self.world = world
        self.keys_dir = keys_dir
        self.roles: dict[str, str] = {}
        self._auth: Any = None
        self.seq = dict.fromkeys(TOPICS, 0)
        self.subscribed: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        self.pace = "fast"
        self.factor = 1.0
        self.paused = False
        self._pause_replies: list[tuple[list[bytes], ControlReply]] = []
        self.shutdown_requested = False
        self.kpis: dict[str, Any] = {}
        self.acts: dict[str, RobotAct] = {}
        self.alive: set[str] = set()
        self._pending: dict[str, list[bytes]] = {}
        """Forwarded request id -> client envelope, until the supervisor answers."""
        self._answered: collections.OrderedDict[str, ControlReply] = collections.OrderedDict()
        self._outbox: list[ControlRequest] = []
        self.faults = FaultInjector(world)
        self._pace_anchor: tuple[float, int] | None = None
        self._control: zmq.Socket[Any] | None = None
        self._telemetry: zmq.Socket[Any] | None = None

    # ------------------------------------------------------------ sockets

    def setup(self) -> None:
        """Bind the control ROUTER and the telemetry XPUB (as CURVE servers, with keys)."""
        self._control = make_socket(self.ctx, zmq.ROUTER)
        self._telemetry = make_socket(self.ctx, zmq.XPUB)
        if self.keys_dir is not None:
            # only keys listed in roles.toml pass the handshake; the role rules the commands
            self._auth, self.roles = start_auth(self.ctx, self.keys_dir)
            apply_server(self._control, self.keys_dir)
            apply_server(self._telemetry, self.keys_dir)
        self._control.bind(self.endpoints.control)
        self._telemetry.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
        # a full queue refuses the send instead of dropping quietly, so drops are counted
        self._telemetry.setsockopt(zmq.XPUB_NODROP, 1)
        # every subscribe and unsubscribe reaches us, so the counts stay true
        self._telemetry.setsockopt(zmq.XPUB_VERBOSER, 1)
        self._telemetry.bind(self.endpoints.telemetry)

    def close(self) -> None:
        """Close both sockets; telemetry still queued goes out first (``TELEMETRY_LINGER_MS``)."""
        if self._control is not None:
            self._control.close(0)
        if self._telemetry is not None:
            self._telemetry.close(TELEMETRY_LINGER_MS)
        self._control = self._telemetry = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def wait_subscribers(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` subscriptions to every topic have arrived (e.g. a recorder)."""
        deadline = time.monotonic() + timeout_s
        while min(self.subscribed[t] for t in TOPICS) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, 0.1))
        return True

    def side(self) -> tuple[zmq.Socket[Any], Callable[[], None]] | None:
        """The control socket and its handler, for the clock to serve while it waits."""
        if self._control is None:
            return None
        return self._control, lambda: self.poll(0)

    def poll(self, timeout_s: float) -> None:
        """Handle what waits on both sockets, waiting up to ``timeout_s`` for the first."""
        ctl, tel = self._control, self._telemetry
        if ctl is None or tel is None:
            return
        poller = zmq.Poller()
        poller.register(ctl, zmq.POLLIN)
        poller.register(tel, zmq.POLLIN)
        ready = dict(poller.poll(int(timeout_s * 1000)))
        while tel in ready:
            try:
                frame = tel.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frame[:1] in (b"\x00", b"\x01"):
                topic = frame[1:].decode(errors="replace")
                for t in TOPICS if not topic else [t for t in TOPICS if t.startswith(topic)]:
                    self.subscribed[t] += 1 if frame[:1] == b"\x01" else -1
        while ctl in ready:
            try:
                raw = ctl.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            # with CURVE, every frame carries its sender's ZAP User-Id: its public key
            role = role_of(raw[-1], self.roles) if self.keys_dir is not None else "admin"
            self._request([f.bytes for f in raw], role)

    # ------------------------------------------------------------ control

    def _send(self, ident: list[bytes], reply: ControlReply, *, first: bool = True) -> None:
        """Answer the client at envelope ``ident``; a first answer is kept and counted."""
        if first and not reply.ok:
            bucket = "malformed" if reply.code == ControlCode.MALFORMED else "refused"
            self.counters[bucket] += 1
            self.counters[f"code:{reply.code}"] += 1
        if first and reply.cmd_id and reply.code not in UNREMEMBERED:
            self._answered[reply.cmd_id] = reply
            while len(self._answered) > REPLY_MEMORY:
                self._answered.popitem(last=False)
        if self._control is not None:
            try:
                self._control.send_multipart([*ident, encode(reply)], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("host: reply to %r lost: %s", ident[0], exc)

    def _error(self, ident: list[bytes], cmd_id: str, code: str, reason: str) -> None:
        self._send(ident, ControlReply(cmd_id=cmd_id, ok=False, code=code, reason=reason))

    def _request(self, frames: list[bytes], role: str | None) -> None:
        ident, req = read_request(frames)
        if isinstance(req, Refusal):
            self._error(ident, req.cmd_id, req.code, req.reason)
            return
        if not permits(role, req.command):
            why = f"the {role or 'unknown'} role may not send {req.command.value}"
            self._error(ident, req.cmd_id, "forbidden", why)
            return
        done = self._answered.get(req.cmd_id)
        if done is not None:
            self.counters["retried"] += 1
            self._send(ident, done, first=False)
            return
        if req.cmd_id in self._pending:
            self._pending[req.cmd_id] = ident  # a retry: answer wherever it came from last
            return
        self.counters[req.command.value] += 1
        self._handle(ident, req)

    def _handle(self, ident: list[bytes], req: ControlRequest) -> None:
        cmd = req.command
        if cmd is ControlCommand.STATUS:
            self._send(ident, ControlReply(req.cmd_id, True, "ok", "", status=self.status()))
        elif cmd is ControlCommand.SNAPSHOT:
            data = json.dumps(self.snapshot(), sort_keys=True)
            self._send(ident, ControlReply(req.cmd_id, True, "ok", "", data=data))
        elif cmd is ControlCommand.PACE:
            self._pace(ident, req)
        elif cmd is ControlCommand.SHUTDOWN:
            self.shutdown_requested = True
            self._send(ident, ControlReply(req.cmd_id, True, "ok", "the run ends at the next tick"))
        elif self.paused:
            self._error(ident, req.cmd_id, "paused", "the clock is paused: send pace run first")
        elif cmd is ControlCommand.FAULT:
            self._fault(ident, req)
        elif cmd in FORWARDED:
            if cmd is ControlCommand.ROBOT and req.target not in self.world.arms:
                self._error(ident, req.cmd_id, "unknown_robot", f"no robot {req.target!r}")
                return
            if cmd is not ControlCommand.ORDER and req.action not in {
                c.value for c in PackMLCommand
            }:
                known = ", ".join(c.value for c in PackMLCommand)
                self._error(
                    ident, req.cmd_id, "bad_argument", f"{req.action!r} is not one of {known}"
                )
                return
            self._pending[req.cmd_id] = ident
            self._outbox.append(req)

    def _pace(self, ident: list[bytes], req: ControlRequest) -> None:
        mode = req.action
        if mode not in PACES:
            self._error(
                ident, req.cmd_id, "bad_argument", f"pace {mode!r} is not one of {', '.join(PACES)}"
            )
            return
        low, high = PACE_FACTORS
        if mode == Pace.REALTIME and not low <= req.value <= high:  # NaN fails this too
            why = f"realtime needs a factor from {low:g} to {high:g} in value, not {req.value!r}"
            self._error(ident, req.cmd_id, "bad_argument", why)
            return
        if mode == "pause":
            # answered once the clock has stopped (``held``): a request served while a tick
            # is under way must not see sim time move once more after the answer
            self.paused = True
            self._pace_anchor = None
            self._pause_replies.append(
                (ident, ControlReply(req.cmd_id, True, "ok", f"pace {self.pace_name}"))
            )
            return
        if mode == "run":
            self.paused = False
        else:
            self.pace, self.factor, self.paused = (
                mode,
                req.value if mode == "realtime" else 1.0,
                False,
            )
        self._pace_anchor = None
        self._send(ident, ControlReply(req.cmd_id, True, "ok", f"pace {self.pace_name}"))

    def _fault(self, ident: list[bytes], req: ControlRequest) -> None:
        if req.action in NOTED_FAULTS:
            why = f"{req.action} is injected by the launcher (a scenario file), not live"
            self._error(ident, req.cmd_id, "bad_argument", why)
            return
        if req.action == ROBOT_FAULT and req.target in self.world.arms:
            self._pending[req.cmd_id] = ident  # the supervisor answers when the robot has aborted
        problem = self.inject(
            req.action,
            req.target,
            req.value,
            factor=req.factor,
            cmd_id=req.cmd_id,
            permanent=req.permanent,
        )
        if problem:
            self._pending.pop(req.cmd_id, None)
            code = "unknown_robot" if problem.startswith("no robot") else "bad_argument"
            self._error(ident, req.cmd_id, code, problem)
        elif req.action != ROBOT_FAULT:
            # done already; the supervisor's answer to its note is not awaited
            self._send(ident, ControlReply(req.cmd_id, True, "ok", f"{req.action} on {req.target}"))
            self._pending.pop(req.cmd_id, None)

    def inject(
        self,
        kind: str,
        target: str,
        duration_s: float,
        *,
        factor: float = 0.0,
        cmd_id: str = "",
        permanent: bool = False,
    ) -> str:
        """Inject a fault now; return "" or why it cannot be done (``sim.faulting``).

        The supervisor is told of every fault in its next ``world_sense`` (it
        logs it, and aborts the robot for a robot fault).
        """
        note = self.faults.inject(
            kind, target, duration_s, factor=factor, cmd_id=cmd_id, permanent=permanent
        )
        if isinstance(note, str):
            return note
        self._outbox.append(note)
        self.counters[f"fault:{kind}"] += 1
        return ""

    def held(self) -> None:
        """The clock has stopped between two ticks: answer the requests to pause it."""
        for ident, reply in self._pause_replies:
            self._send(ident, reply)
        self._pause_replies = []

    @property
    def pace_name(self) -> str:
        """``paused``, ``fast`` or ``realtime xF``."""
        if self.paused:
            return "paused"
        return "fast" if self.pace == "fast" else f"realtime x{self.factor:g}"

    def take_requests(self) -> tuple[ControlRequest, ...]:
        """Requests for the supervisor, to go in its next ``world_sense``."""
        out, self._outbox = tuple(self._outbox), []
        return out

    # ------------------------------------------------------------ per tick

    def after_dones(self, acts: dict[str, Message | None]) -> None:
        """Take what the participants said this tick: robot activity, supervisor output."""
        for name, act in acts.items():
            if isinstance(act, RobotAct):
                self.acts[name] = act
            elif isinstance(act, WorldAct):
                for line in act.events:
                    self._publish_event(line)
                if act.kpis:
                    self.kpis = json.loads(act.kpis)
                    self._publish("kpis", KpiFrame(self.seq["kpis"], self.world.t_ns, act.kpis))
                for reply in act.replies:
                    ident = self._pending.pop(reply.cmd_id, None)
                    if ident is not None:
                        self._send(ident, reply)

    def after_advance(self) -> None:
        """Publish this tick's frames, end jams that are over, and keep the pace."""
        now = self.world.t_ns
        self.faults.after_advance()
        # a frame nobody takes is not built, but it is counted: seq means the same on every topic
        if self.subscribed["joints"] > 0:
            arms = self.arm_states(links=True)
            self._publish("joints", JointsFrame(self.seq["joints"], now, arms))
        else:
            self.seq["joints"] += 1
        if self.subscribed["parts"] > 0:
            poses, locations = [], []
            for pid, (_kind, location) in self.world.parts().items():
                pose = self.world.part_pose(pid)
                if pose is not None:
                    poses.append(pose)
                    locations.append(location)
            self._publish(
                "parts", PartsFrame(self.seq["parts"], now, tuple(poses), tuple(locations))
            )
        else:
            self.seq["parts"] += 1
        self._keep_pace(now)

    def _keep_pace(self, now: int) -> None:
        if self.pace != "realtime":
            return
        wall = time.monotonic()
        if self._pace_anchor is None:
            self._pace_anchor = (wall, now)
            return
        w0, t0 = self._pace_anchor
        due = w0 + (now - t0) / 1e9 / self.factor
        while wall < due and not self.paused:
            self.poll(due - wall)
            wall = time.monotonic()

    def run_end(self, reason: str) -> None:
        """Tell subscribers the run is over (recorders stop on it)."""
        line = json.dumps(
            {"kind": "run_end", "reason": reason, "t_ns": self.world.t_ns}, sort_keys=True
        )
        self._publish_event(line)

    def _publish_event(self, line: str) -> None:
        self.counters["events"] += 1
        if self.subscribed["events"] <= 0:
            self.seq["events"] += 1
            return
        rec = json.loads(line)
        frame = EventFrame(self.seq["events"], int(rec["t_ns"]), str(rec["kind"]), line)
        self._publish("events", frame)

    def _publish(self, topic: str, frame: Message) -> None:
        self.seq[topic] += 1
        if self._telemetry is None or self.subscribed[topic] <= 0:
            return
        frames = [topic.encode(), encode(frame)]
        try:
            self._telemetry.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # some subscriber's queue is full: it misses this one and, quietly, every one
            # until it has read its queue down (a gap in its seq); the others still get them
            self.counters["dropped"] += 1
            self._telemetry.setsockopt(zmq.XPUB_NODROP, 0)
            try:
                self._telemetry.send_multipart(frames, zmq.NOBLOCK)
            finally:
                self._telemetry.setsockopt(zmq.XPUB_NODROP, 1)

    # ------------------------------------------------------------ views

    def arm_states(self, *, links: bool = False) -> tuple[ArmState, ...]:
        """Every arm now: joints, base and tool frames, what it is doing.

        ``links`` adds every link's frame (for the telemetry a bag draws the
        arms from); a status or snapshot does without that forward kinematics.
        """
        out = []
        for name in sorted(self.world.arms):
            arm = self.world.arms[name]
            b = arm.spec.base
            base = Pose3(b.x, b.y, b.z, *_yaw_quat(b.yaw))
            (x, y, z), (qx, qy, qz, qw) = arm.tcp()
            act = self.acts.get(name)
            poses = tuple(v for xyz, q in arm.link_poses() for v in (*xyz, *q)) if links else ()
            out.append(
                ArmState(
                    robot=name,
                    names=arm.joint_names,
                    q=tuple(arm.q),
                    base=base,
                    tcp=Pose3(x, y, z, qx, qy, qz, qw),
                    state=act.state if act else PackMLState.STOPPED,
                    step=act.step if act else ExecStep.WAITING,
                    op_id=act.op_id if act else "",
                    holding=arm.holding,
                    links=arm.link_names if links else (),
                    link_poses=poses,
                )
            )
        return tuple(out)

    def status(self) -> CellStatus:
        """The answer to ``status``."""
        robots = tuple(
            RobotStatus(
                robot=a.robot,
                state=a.state,
                step=a.step,
                op_id=a.op_id,
                holding=a.holding,
                alive=a.robot in self.alive,
                fault=str(self.kpis.get("robots", {}).get(a.robot, {}).get("fault", "")),
            )
            for a in self.arm_states()
        )
        return CellStatus(
            t_ns=self.world.t_ns,
            pace=self.pace_name,
            rtf=self.factor if self.pace == "realtime" else 0.0,
            robots=robots,
            units_completed=int(self.kpis.get("units_completed", 0)),
            units_in_progress=int(self.kpis.get("units_in_progress", 0)),
            ledger_balanced=bool(self.kpis.get("ledger_balanced", True)),
            **self.counts(),
        )

    def counts(self) -> dict[str, int]:
        """Requests refused and malformed, telemetry messages dropped, since the start."""
        return {k: self.counters[k] for k in ("refused", "malformed", "dropped")}

    def snapshot(self) -> dict[str, Any]:
        """The answer to ``snapshot``: enough to rebuild a view after a telemetry gap."""
        parts = {}
        for pid, (kind, location) in self.world.parts().items():
            pose = self.world.part_pose(pid)
            xyz = [pose.x, pose.y, pose.z] if pose else None
            parts[pid] = {"kind": kind, "location": location, "position": xyz}
        robots = {
            a.robot: {
                "state": a.state.value,
                "step": a.step.value,
                "op": a.op_id,
                "holding": a.holding,
                "q": list(a.q),
            }
            for a in self.arm_states()
        }
        return {
            "t_ns": self.world.t_ns,
            "pace": self.pace_name,
            "robots": robots,
            "parts": parts,
            "kpis": self.kpis,
            # the last seq made on each topic (-1 before the first): what this state includes
            "seq": {topic: n - 1 for topic, n in self.seq.items()},
            # what a fault may target besides the robots
            "conveyors": sorted(self.world.conveyors),
            "sensors": list(self.world.sensor_names()),
            **self.counts(),
        }


def _yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
