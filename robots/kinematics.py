"""The agent's own kinematic model of its arm: IK and FK in a private PyBullet client.

The agent never asks the world where its tool is; it keeps its own copy of the
arm (the same URDF, at the same base pose) in a ``p.DIRECT`` client of its
own, so planning works the same in one process or many. IK runs once per
planned waypoint, never per tick (DESIGN, physics choices).

The tool centre point (TCP) is ``MODEL_TOOL``: a link and an offset along that
link's z axis. "Pointing down with yaw ``y``" means the TCP's z axis points to
-z and its x axis heads at ``y`` in the cell frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from types import TracebackType

import numpy as np
import pybullet as p
import pybullet_data

from bus.cellspec import MODEL_ARM_JOINTS, MODEL_HOME, MODEL_TOOL, RobotSpec
from bus.errors import PlanError

log = logging.getLogger(__name__)

Q = tuple[float, ...]
"""Arm joint positions in ``MODEL_ARM_JOINTS`` order (radians)."""
Vec3 = tuple[float, float, float]

GOOD_M = 0.002
"""A solution this close to the target is good; a worse one tries the next seed."""
ACCEPT_M = 0.005
"""A solution further than this from the target means the pose is unreachable."""
ACCEPT_TILT_RAD = math.radians(5.0)
"""A tool tilted more than this from straight down is not a solution either."""
PASSES = 8
"""Refinement passes per seed: each re-aims the link by the last TCP error."""
FIRST_ITERATIONS = 60
"""PyBullet's own iterations in the first IK call from a seed (the long way)."""
SOLVER_ITERATIONS = 30
"""PyBullet's own iterations in each refinement call after the first."""
DONE_M = 0.001
"""Refinement stops once the TCP is this close to the target..."""
DONE_YAW_RAD = math.radians(1.0)
"""... and its heading this close to the asked yaw."""


def wrap(angle: float) -> float:
    """``angle`` in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


@dataclasses.dataclass(frozen=True, slots=True)
class ToolPose:
    """Where the TCP is: position, heading of its x axis, tilt of its z axis from straight down."""

    x: float
    y: float
    z: float
    yaw: float
    tilt: float

    @property
    def position(self) -> Vec3:
        """The position as a tuple."""
        return (self.x, self.y, self.z)


class Kinematics:
    """IK and FK for one robot, in a private PyBullet client.

    Pure constructor; ``setup()`` connects and loads the arm; ``close()`` (or
    the context manager) disconnects.
    """

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self.model = spec.model
        self.arm: tuple[int, ...] = MODEL_ARM_JOINTS[spec.model]
        self.home: Q = MODEL_HOME[spec.model]
        self._tool_link, self._tool_offset = MODEL_TOOL[spec.model]
        self._client = -1
        self._body = -1
        self._movable: list[int] = []
        self._arm_pos: list[int] = []
        self._lower: list[float] = []
        self._upper: list[float] = []
        self._home_yaw = 0.0

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        """Connect a private DIRECT client and load the arm at its base pose."""
        if self._client >= 0:
            return
        cid = int(p.connect(p.DIRECT))
        self._client = cid
        base = self.spec.base
        self._body = int(
            p.loadURDF(
                f"{pybullet_data.getDataPath()}/{self.spec.urdf_path}",
                basePosition=[base.x, base.y, base.z],
                baseOrientation=p.getQuaternionFromEuler([0.0, 0.0, base.yaw]),
                useFixedBase=True,
                physicsClientId=cid,
            )
        )
        for j in range(p.getNumJoints(self._body, physicsClientId=cid)):
            info = p.getJointInfo(self._body, j, physicsClientId=cid)
            if info[2] != p.JOINT_FIXED:
                self._movable.append(j)
                self._lower.append(float(info[8]))
                self._upper.append(float(info[9]))
        self._arm_pos = [self._movable.index(j) for j in self.arm]
        self._home_yaw = self.fk_pose(self.home).yaw

    def close(self) -> None:
        """Disconnect the private client."""
        if self._client >= 0:
            p.disconnect(physicsClientId=self._client)
            self._client = -1
            self._movable, self._lower, self._upper, self._arm_pos = [], [], [], []

    def __enter__(self) -> Kinematics:
        self.setup()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def lower(self) -> Q:
        """Lower joint limits of the arm."""
        self._require()
        return tuple(self._lower[i] for i in self._arm_pos)

    @property
    def upper(self) -> Q:
        """Upper joint limits of the arm."""
        self._require()
        return tuple(self._upper[i] for i in self._arm_pos)

    # ------------------------------------------------------------ forward

    def fk(self, q: Sequence[float]) -> Vec3:
        """The TCP position for arm joints ``q``."""
        return self.fk_pose(q).position

    def fk_pose(self, q: Sequence[float]) -> ToolPose:
        """The TCP position, heading and tilt for arm joints ``q``."""
        self._require()
        self._set_arm(q)
        return self._tool()

    # ------------------------------------------------------------ inverse

    def ik(self, position: Sequence[float], yaw: float, seed_q: Sequence[float]) -> Q:
        """Arm joints that put the TCP at ``position`` pointing down with heading ``yaw``.

        Tries the seed first (so consecutive waypoints stay on one branch and
        joint-space moves between them stay short), then a seed aimed at the
        target; raises ``PlanError`` if neither gets within ``ACCEPT_M``.
        """
        self._require()
        target = np.asarray(position, dtype=float)
        if target.shape != (3,):
            raise PlanError(f"{self.spec.name}: IK target must be (x, y, z), got {position!r}")
        best: tuple[float, Q] | None = None
        for seed in (tuple(seed_q), self._aimed_seed(target, yaw)):
            err, q = self._solve(target, yaw, seed)
            if best is None or err < best[0]:
                best = (err, q)
            if err < GOOD_M:
                break
        assert best is not None
        err, q = best
        pose = self.fk_pose(q)
        twist = abs(wrap(pose.yaw - yaw))
        if err > ACCEPT_M or pose.tilt > ACCEPT_TILT_RAD or twist > ACCEPT_TILT_RAD:
            where = ", ".join(f"{v:.3f}" for v in target)
            raise PlanError(
                f"{self.spec.name} cannot reach ({where}) yaw {yaw:.2f} pointing down: "
                f"best TCP error {err * 1000:.1f} mm, tilt {math.degrees(pose.tilt):.1f} deg, "
                f"yaw off by {math.degrees(twist):.1f} deg"
            )
        if err > GOOD_M:
            log.debug("%s: IK within %.1f mm only", self.spec.name, err * 1000)
        return q

    def _solve(self, target: np.ndarray, yaw: float, seed: Q) -> tuple[float, Q]:
        """Refine IK from ``seed``: re-aim the link by the TCP error until it is small."""
        cid = self._client
        aim_yaw = yaw
        full = self._full(seed)
        rest = list(full)
        ranges = [hi - lo for lo, hi in zip(self._lower, self._upper, strict=True)]
        # pointing down, the TCP is the offset straight below the link's origin
        aim = target + np.array([0.0, 0.0, self._tool_offset])
        best: tuple[float, Q] = (math.inf, seed)
        for n in range(PASSES):
            self._set_full(full)
            sol = p.calculateInverseKinematics(
                self._body,
                self._tool_link,
                aim.tolist(),
                p.getQuaternionFromEuler([math.pi, 0.0, aim_yaw]),
                lowerLimits=self._lower,
                upperLimits=self._upper,
                jointRanges=ranges,
                restPoses=rest,
                maxNumIterations=FIRST_ITERATIONS if n == 0 else SOLVER_ITERATIONS,
                residualThreshold=1e-6,
                physicsClientId=cid,
            )
            full = [
                min(max(float(v), lo), hi)
                for v, lo, hi in zip(sol, self._lower, self._upper, strict=True)
            ]
            self._set_full(full)
            tool = self._tool()
            miss = target - np.asarray(tool.position)
            err = float(np.linalg.norm(miss))
            q = tuple(full[i] for i in self._arm_pos)
            if err < best[0]:
                best = (err, q)
            if err < DONE_M and abs(wrap(yaw - tool.yaw)) < DONE_YAW_RAD:
                break
            aim = aim + miss
            aim_yaw = aim_yaw + wrap(yaw - tool.yaw)
        return best

    def _aimed_seed(self, target: np.ndarray, yaw: float) -> Q:
        """The home pose turned to face the target, wrist turned for ``yaw``.

        Turning joint 1 by ``d`` turns the tool's heading by ``d``; turning the
        last joint (its axis along the tool, pointing down) by ``d`` turns it
        by ``-d``.
        """
        base = self.spec.base
        q = list(self.home)
        lo, hi = self.lower, self.upper
        face = math.atan2(target[1] - base.y, target[0] - base.x) - base.yaw
        q[0] = min(max(wrap(face), lo[0]), hi[0])
        last = len(q) - 1
        turn = wrap((q[0] - self.home[0]) + (self._home_yaw - yaw))
        fits = [
            c
            for c in (turn, turn - 2 * math.pi, turn + 2 * math.pi)
            if lo[last] <= self.home[last] + c <= hi[last]
        ]
        best = min(fits, key=abs) if fits else turn
        q[last] = min(max(self.home[last] + best, lo[last]), hi[last])
        return tuple(q)

    # ------------------------------------------------------------ internals

    def _require(self) -> None:
        if self._client < 0:
            raise RuntimeError(f"Kinematics for {self.spec.name}: setup() was not called")

    def _full(self, q: Sequence[float]) -> list[float]:
        """All movable joints: the arm from ``q``, the rest (fingers) at their lower limit."""
        if len(q) != len(self.arm):
            raise PlanError(f"{self.spec.name}: expected {len(self.arm)} joints, got {len(q)}")
        full = list(self._lower)
        for i, v in zip(self._arm_pos, q, strict=True):
            full[i] = float(v)
        return full

    def _set_full(self, full: Sequence[float]) -> None:
        for j, v in zip(self._movable, full, strict=True):
            p.resetJointState(self._body, j, v, physicsClientId=self._client)

    def _set_arm(self, q: Sequence[float]) -> None:
        if len(q) != len(self.arm):
            raise PlanError(f"{self.spec.name}: expected {len(self.arm)} joints, got {len(q)}")
        for j, v in zip(self.arm, q, strict=True):
            p.resetJointState(self._body, j, float(v), physicsClientId=self._client)

    def _tool(self) -> ToolPose:
        st = p.getLinkState(
            self._body, self._tool_link, computeForwardKinematics=True, physicsClientId=self._client
        )
        pos = np.asarray(st[4], dtype=float)
        rot = np.asarray(p.getMatrixFromQuaternion(st[5]), dtype=float).reshape(3, 3)
        tcp = pos + rot[:, 2] * self._tool_offset
        tilt = math.acos(min(1.0, max(-1.0, -float(rot[2, 2]))))
        yaw = math.atan2(float(rot[1, 0]), float(rot[0, 0]))
        return ToolPose(float(tcp[0]), float(tcp[1]), float(tcp[2]), yaw, tilt)
