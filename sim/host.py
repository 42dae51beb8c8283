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
  answered in kind (``bus.requests``).
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
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bus.codec import MAX_PAYLOAD, encode
from bus.endpoints import Endpoints
from bus.enums import (
    ControlCode,
    ControlCommand,
    ExecStep,
    Pace,
    PackMLCommand,
    PackMLState,
    UnitMode,
)
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
from bus.requests import Refusal, read_request
from bus.security import apply_server, permits
from bus.sockets import make_socket
from bus.trust import (
    CLIENTS,
    HUB,
    HandshakeWatch,
    LiveKeys,
    Quota,
    RateLog,
    start_zap,
    stop_zap,
    user_of,
)
from sim.faulting import NOTED_FAULTS, ROBOT_FAULT, FaultInjector
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
MAX_CONTROL_PER_POLL = 64
"""Control requests handled per poll: a flood never keeps the clock from its barrier."""
MAX_PER_CLIENT_TICK = 64
"""Requests one client (key, or connection without keys) may send per tick (and per
``CLIENT_WINDOW_S`` of wall time, so a paused or slow clock still serves; a burst still queued
when a poll stops reading stays in its window); past it: ``busy``."""
BUSY_ANSWERS = 4
"""Past the cap a client is answered ``busy`` up to this many times the cap in the same
window (a cheap answer, so a client that backs off is never left waiting); past that its
requests are dropped unanswered."""
CLIENT_WINDOW_S = 0.1
"""The longest wall-time window the per-client cap counts over."""
MAX_UNANSWERED = 16
"""Requests of one client waiting for the supervisor (or a pause) at once; past it: ``busy``."""
MAX_SUBS_PER_POLL = 256
"""Subscription messages read from the telemetry socket per poll."""
UNREMEMBERED = (ControlCode.MALFORMED, ControlCode.UNKNOWN_COMMAND, ControlCode.BUSY)
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
        live: LiveKeys | None = None,
    ) -> None:
        """``keys_dir`` (keys made by ``lightsout keys create``) turns on CURVE and roles.

        ``live``: the keys as the rest of the cell host reads them (made from
        ``keys_dir`` if not given); each request's role is looked up in them
        anew, so a key removed from ``roles.toml`` is refused from then on.
        """
        self.ctx = ctx
        self.endpoints = endpoints
        self.world = world
        self.keys_dir = keys_dir
        self.live = live
        self._zap = False
        self.seq = dict.fromkeys(TOPICS, 0)
        self.subscribed: collections.Counter[str] = collections.Counter()
        self.counters: collections.Counter[str] = collections.Counter()
        self.pace = "fast"
        self.factor = 1.0
        self.paused = False
        self._pause_replies: list[tuple[str, list[bytes], ControlReply]] = []
        self.shutdown_requested = False
        self.kpis: dict[str, Any] = {}
        self.listeners: list[Callable[[str], None]] = []
        """Called with every event-log line the supervisor sends (``WorldAct.events``), in
        its order, on the world's thread (a factory's coordinator hears its lines so)."""
        self.kpi_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every KPI snapshot the supervisor sends (a JSON map), likewise."""
        self.acts: dict[str, RobotAct] = {}
        self.alive: set[str] = set()
        self._pending: dict[str, tuple[str, list[bytes]]] = {}
        """Forwarded request id -> (client key, envelope), until the supervisor answers."""
        self._answered: collections.OrderedDict[tuple[str, str], ControlReply] = (
            collections.OrderedDict()
        )
        """(client key, request id) -> first answer: one key's ids never answer another's."""
        self._quota = Quota(CLIENT_WINDOW_S)
        self._current = ""
        """The key of the client whose request is being handled ("" without keys)."""
        self._status: tuple[int, CellStatus] | None = None
        self._warn = RateLog(log)
        self._watches: dict[str, HandshakeWatch] = {}
        self._clients: set[str] = set()
        self._dead_watch = (0, 0)
        self.clock_counts: dict[str, int] = {}
        """The clock's refusals (``ClockServer.counts``), set by the sim server each tick."""
        self._outbox: list[ControlRequest] = []
        self.faults = FaultInjector(world)
        self._pace_anchor: tuple[float, int] | None = None
        self._control: zmq.Socket[Any] | None = None
        self._telemetry: zmq.Socket[Any] | None = None

    # ------------------------------------------------------------ sockets

    def setup(self) -> None:
        """Bind the control ROUTER and the telemetry XPUB (as CURVE servers, with keys)."""
        self._control = make_socket(self.ctx, zmq.ROUTER)
        if self.keys_dir is not None:
            # only keys listed in roles.toml pass the handshake; the role rules the commands
            if self.live is None:
                self.live = LiveKeys(self.keys_dir, self.world.cell.name)
            start_zap(self.ctx, self.live)
            self._zap = True
            self._guard(self._control, "control")
            self._clients = set(self.live.roles)
        self._control.bind(self.endpoints.control)
        self._telemetry = self._bind_telemetry()

    def _guard(self, sock: zmq.Socket[Any], name: str) -> None:
        assert self.keys_dir is not None
        apply_server(sock, self.keys_dir)
        sock.zap_domain = CLIENTS.encode()
        self._watches[name] = HandshakeWatch(sock)

    def _bind_telemetry(self) -> zmq.Socket[Any]:
        sock = make_socket(self.ctx, zmq.XPUB)
        if self.keys_dir is not None:
            self._guard(sock, "telemetry")
        sock.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
        # a full queue refuses the send instead of dropping quietly, so drops are counted
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        # every subscribe and unsubscribe reaches us, so the counts stay true
        sock.setsockopt(zmq.XPUB_VERBOSER, 1)
        for _ in range(50):  # the old socket's listener may take a moment to go
            try:
                sock.bind(self.endpoints.telemetry)
                break
            except zmq.ZMQError:
                time.sleep(0.02)
        else:
            sock.bind(self.endpoints.telemetry)
        return sock

    def _revoked(self) -> None:
        """A client key was taken out of ``roles.toml``: its subscriptions end too.

        An XPUB cannot drop one subscriber, so the socket is bound anew: every
        subscriber reconnects (ZeroMQ does it, and subscribes again) and the
        handshake turns the revoked key away. The others see a gap in ``seq``
        and recover it as after any gap (``snapshot``).
        """
        if self.live is None or self._telemetry is None:
            return
        self.live.refresh()
        now = set(self.live.roles)
        gone, self._clients = self._clients - now, now
        if not gone:
            return
        watch = self._watches.pop("telemetry", None)
        old = self._telemetry
        if watch is not None:
            watch.close(old)
            watch.count()
            failed, gone_conns = self._dead_watch
            self._dead_watch = (failed + watch.failed, gone_conns + watch.disconnected)
        old.close(0)
        self.subscribed.clear()
        self._telemetry = self._bind_telemetry()
        self.counters["telemetry_rebound"] += 1
        log.warning("host: %d client key(s) revoked; telemetry bound anew", len(gone))

    def close(self) -> None:
        """Close both sockets; telemetry still queued goes out first (``TELEMETRY_LINGER_MS``)."""
        for name, watch in self._watches.items():
            watch.close(self._control if name == "control" else self._telemetry)
        self._watches.clear()
        if self._control is not None:
            self._control.close(0)
        if self._telemetry is not None:
            self._telemetry.close(TELEMETRY_LINGER_MS)
        self._control = self._telemetry = None
        if self._zap:
            stop_zap(self.ctx)
            self._zap = False

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
        for _ in range(MAX_SUBS_PER_POLL if tel in ready else 0):
            try:
                frame = tel.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frame[:1] in (b"\x00", b"\x01"):
                topic = frame[1:].decode(errors="replace")
                for t in TOPICS if not topic else [t for t in TOPICS if t.startswith(topic)]:
                    self.subscribed[t] += 1 if frame[:1] == b"\x01" else -1
        drained = True
        for _ in range(MAX_CONTROL_PER_POLL if ctl in ready else 0):
            try:
                raw = ctl.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            # with CURVE, every frame carries its sender's ZAP User-Id: its public key
            user = user_of(raw[-1]) if self.live is not None else None
            role = self.live.role(user) if self.live is not None else "admin"
            self._request([f.bytes for f in raw], role, user or "")
        else:
            drained = ctl not in ready
        # requests left queued belong to the same burst, however long a loaded host takes
        self._quota.backlog = not drained

    # ------------------------------------------------------------ control

    def _send(
        self,
        ident: list[bytes],
        reply: ControlReply,
        *,
        first: bool = True,
        user: str | None = None,
    ) -> None:
        """Answer the client at envelope ``ident``; a first answer is kept and counted.

        It is kept for ``user`` (the client key; default: the one whose request is
        being handled), so a retry with that id gets it again, but only from that key.
        """
        if user is None:
            user = self._current
        if first and not reply.ok:
            bucket = "malformed" if reply.code == ControlCode.MALFORMED else "refused"
            self.counters[bucket] += 1
            self.counters[f"code:{reply.code}"] += 1
        if first and reply.cmd_id and reply.code not in UNREMEMBERED:
            self._answered[(user, reply.cmd_id)] = reply
            while len(self._answered) > REPLY_MEMORY:
                self._answered.popitem(last=False)
        if self._control is not None:
            try:
                self._control.send_multipart([*ident, encode(reply)], zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                self._warn.warn("lost", "host: reply to %r lost: %s", ident[0][:64], exc)

    def _error(self, ident: list[bytes], cmd_id: str, code: str, reason: str) -> None:
        self._send(ident, ControlReply(cmd_id=cmd_id, ok=False, code=code, reason=reason))

    def _request(self, frames: list[bytes], role: str | None, user: str = "") -> None:
        ident, req = read_request(frames)
        self._current = user
        # who a client is for the caps: its key, or (without keys) its connection
        client = user or ident[0].hex()
        sent = self._quota.take(client)
        if sent > MAX_PER_CLIENT_TICK:
            self.counters["flooded"] += 1
            if sent <= BUSY_ANSWERS * MAX_PER_CLIENT_TICK:  # a polite client hears why
                why = f"more than {MAX_PER_CLIENT_TICK} requests in one tick; slow down"
                self._error(ident, "" if isinstance(req, Refusal) else req.cmd_id, "busy", why)
            return
        if isinstance(req, Refusal):
            self._error(ident, req.cmd_id, req.code, req.reason)
            return
        if not permits(role, req.command):
            why = f"the {role or 'unknown'} role may not send {req.command.value}"
            self._error(ident, req.cmd_id, "forbidden", why)
            return
        done = self._answered.get((user, req.cmd_id))
        if done is not None:
            self.counters["retried"] += 1
            self._send(ident, done, first=False)
            return
        owner = self._pending.get(req.cmd_id)
        if owner is not None:
            if owner[0] != user:
                why = "that cmd_id is in use by another client's request"
                self._error(ident, req.cmd_id, "bad_argument", why)
                return
            self._pending[req.cmd_id] = (user, ident)  # a retry: answer where it came from last
            return
        waiting = sum(1 for u, _ in self._pending.values() if u == user) + sum(
            1 for u, _, _ in self._pause_replies if u == user
        )
        if waiting >= MAX_UNANSWERED:
            why = (
                f"{waiting} requests of this client are still unanswered (at most {MAX_UNANSWERED})"
            )
            self._error(ident, req.cmd_id, "busy", why)
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
            problem = _forwardable(req)
            if problem:
                self._error(ident, req.cmd_id, "bad_argument", problem)
                return
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
            self._pending[req.cmd_id] = (self._current, ident)
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
                (
                    self._current,
                    ident,
                    ControlReply(req.cmd_id, True, "ok", f"pace {self.pace_name}"),
                )
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
            # the supervisor answers when the robot has aborted
            self._pending[req.cmd_id] = (self._current, ident)
        problem = self.inject(
            req.action,
            req.target,
            req.value,
            factor=req.factor,
            cmd_id=req.cmd_id,
            permanent=req.permanent,
            hidden=req.hidden,
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
        hidden: bool = False,
    ) -> str:
        """Inject a fault now; return "" or why it cannot be done (``sim.faulting``).

        The supervisor is told of every fault in its next ``world_sense`` (it
        logs it, and aborts the robot for a robot fault).
        """
        note = self.faults.inject(
            kind,
            target,
            duration_s,
            factor=factor,
            cmd_id=cmd_id,
            permanent=permanent,
            hidden=hidden,
        )
        if isinstance(note, str):
            return note
        self._outbox.append(note)
        self.counters[f"fault:{kind}"] += 1
        return ""

    def held(self) -> None:
        """The clock has stopped between two ticks: answer the requests to pause it."""
        for user, ident, reply in self._pause_replies:
            self._send(ident, reply, user=user)
        self._pause_replies = []

    @property
    def pace_name(self) -> str:
        """``paused``, ``fast`` or ``realtime xF``."""
        if self.paused:
            return "paused"
        return "fast" if self.pace == "fast" else f"realtime x{self.factor:g}"

    def has_requests(self) -> bool:
        """Whether requests wait for the supervisor (the event clock ticks it for them)."""
        return bool(self._outbox)

    def take_requests(self) -> tuple[ControlRequest, ...]:
        """Requests for the supervisor, to go in its next ``world_sense``."""
        out, self._outbox = tuple(self._outbox), []
        return out

    # ------------------------------------------------------------ per tick

    def after_dones(self, acts: dict[str, Message | None]) -> None:
        """Take what the participants said this tick: robot activity, supervisor output."""
        for name, act in acts.items():
            if isinstance(act, RobotAct) and act.robot == name:
                self.acts[name] = act
            elif isinstance(act, WorldAct) and name == HUB:
                for line in act.events:
                    self._publish_event(line)
                    for listen in self.listeners:
                        listen(line)
                if act.kpis:
                    kpis = _json_map(act.kpis)
                    if kpis is None:
                        self.counters["bad_kpis"] += 1
                        self._warn.warn("kpis", "host: the supervisor's KPIs are not a JSON map")
                    else:
                        self.kpis = kpis
                        for take in self.kpi_listeners:
                            take(kpis)
                        frame = KpiFrame(self.seq["kpis"], self.world.t_ns, act.kpis)
                        self._publish("kpis", frame)
                for reply in act.replies:
                    owner = self._pending.pop(reply.cmd_id, None)
                    if owner is not None:
                        self._send(owner[1], reply, user=owner[0])

    def quiet(self) -> bool:
        """Whether ticks may pass unseen (the events world's jump, ``SimServer``): nobody
        watches frame by frame, nothing paces the clock, no request waits, and no fault the
        host keeps going (a jam, an armed drop, a wear) needs its tick-by-tick look."""
        return (
            self.pace != "realtime"
            and not self.paused
            and not self.has_requests()
            and self.subscribed["joints"] <= 0
            and self.subscribed["parts"] <= 0
            and self.faults.quiet()
        )

    def pass_quietly(self, ticks: int) -> None:
        """``ticks`` ticks went by unseen: their frames were not built, but they are counted
        (a frame's ``seq`` means the same on every topic)."""
        self.seq["joints"] += ticks
        self.seq["parts"] += ticks

    def after_advance(self) -> None:
        """Publish this tick's frames, end jams that are over, and keep the pace."""
        now = self.world.t_ns
        self._quota.reset()  # the per-tick request cap starts again
        if self.live is not None:
            self._revoked()
        self._outbox.extend(self.faults.after_advance())  # a tripped drive is a robot fault
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
        rec = _json_map(line)
        t_ns, kind = (rec or {}).get("t_ns"), (rec or {}).get("kind")
        if not isinstance(t_ns, int) or isinstance(t_ns, bool) or not isinstance(kind, str):
            self.counters["bad_events"] += 1
            self._warn.warn("event", "host: an event line without t_ns and kind: %.80r", line)
            return
        self.counters["events"] += 1
        if self.subscribed["events"] <= 0:
            self.seq["events"] += 1
            return
        frame = EventFrame(self.seq["events"], t_ns, kind[:64], line)
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
        """The answer to ``status``: made once per sim instant, however many clients ask."""
        if self._status is not None and self._status[0] == self.world.t_ns:
            rtf = self.factor if self.pace == "realtime" else 0.0
            c = self.counts()
            return dataclasses.replace(
                self._status[1],
                pace=self.pace_name,
                rtf=rtf,
                refused=c["refused"],
                malformed=c["malformed"],
                dropped=c["dropped"],
            )
        made = self._make_status()
        self._status = (self.world.t_ns, made)
        return made

    def _make_status(self) -> CellStatus:
        faults = _get(self.kpis, "robots")
        robots = tuple(
            RobotStatus(
                robot=a.robot,
                state=a.state,
                step=a.step,
                op_id=a.op_id,
                holding=a.holding,
                alive=a.robot in self.alive,
                fault=str(_get(_get(faults, a.robot), "fault") or "")[:200],
                mode=self.acts[a.robot].mode if a.robot in self.acts else UnitMode.PRODUCTION,
            )
            for a in self.arm_states()
        )
        return CellStatus(
            t_ns=self.world.t_ns,
            pace=self.pace_name,
            rtf=self.factor if self.pace == "realtime" else 0.0,
            robots=robots,
            units_completed=_count(self.kpis.get("units_completed")),
            units_in_progress=_count(self.kpis.get("units_in_progress")),
            ledger_balanced=self.kpis.get("ledger_balanced", True) is True,
            **self.counts(),
        )

    def counts(self) -> dict[str, int]:
        """Requests refused and malformed, telemetry messages dropped, since the start."""
        return {k: self.counters[k] for k in ("refused", "malformed", "dropped")}

    def security(self) -> dict[str, int]:
        """Refusals by socket: the clock's, and the control and telemetry handshakes and caps."""
        out = {f"clock_{k}": v for k, v in sorted(self.clock_counts.items())}
        for name, watch in sorted(self._watches.items()):
            watch.count()
            before = self._dead_watch if name == "telemetry" else (0, 0)
            out[f"{name}_handshakes_failed"] = watch.failed + before[0]
            out[f"{name}_disconnected"] = watch.disconnected + before[1]
        out["telemetry_rebound"] = self.counters["telemetry_rebound"]
        out["control_flooded"] = self.counters["flooded"]
        out["control_busy"] = self.counters["code:busy"]
        out["bad_kpis"] = self.counters["bad_kpis"]
        out["bad_events"] = self.counters["bad_events"]
        return out

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
            # what every socket turned away or refused (docs/protocol.md, "Security")
            "security": self.security(),
            # what a fault may target besides the robots
            "conveyors": sorted(self.world.conveyors),
            "sensors": list(self.world.sensor_names()),
            **self.counts(),
        }


MAX_FORWARDED_TEXT = 256
"""Longest ``target`` or ``action`` routed to the supervisor (it writes them to its log)."""
MAX_FORWARDED_VALUE = 1e6
"""Largest ``value`` or ``factor`` routed to the supervisor."""


def _forwardable(req: ControlRequest) -> str:
    """Why ``req`` must not reach the supervisor (a peer's values are checked first), or ""."""
    for name in ("target", "action"):
        if len(getattr(req, name)) > MAX_FORWARDED_TEXT:
            return f"{name} is longer than {MAX_FORWARDED_TEXT} characters"
    for name in ("value", "factor"):
        v = getattr(req, name)
        if not abs(v) <= MAX_FORWARDED_VALUE:  # NaN fails this too
            return f"{name} must be a finite number of at most {MAX_FORWARDED_VALUE:g}, not {v!r}"
    return ""


def _json_map(text: str) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, or None (the supervisor is a peer: never trusted)."""
    if len(text) > MAX_PAYLOAD:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _get(obj: object, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _count(value: object) -> int:
    """A KPI count as a whole number from 0 up (anything else counts as 0)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return 0


def _yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
