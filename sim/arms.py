"""Kinematically driven arms: joint targets in, exact joint states out.

DESIGN "Physics choices": motors are off and every physics step resets the arm
joints along the straight line in joint space from the tick's start to its
target. That is as cheap as a bare step, exact and deterministic. The arm's
links do not collide with anything (the grasp is a constraint, an arm must
not shove parts), so the arm is only a moving frame for the tool.
"""

from __future__ import annotations

import logging
import math

import pybullet as p

from bus.cellspec import (
    MODEL_ARM_JOINTS,
    MODEL_FINGER_JOINTS,
    MODEL_HOME,
    MODEL_TOOL,
    RobotSpec,
)
from sim.parts import Quat, Vec3, yaw_quat

log = logging.getLogger(__name__)

FINGER_OPEN = 0.04
"""Panda finger joint position when open (metres)."""
FINGER_CLOSED = 0.01
"""Panda finger joint position when closed on a part (for looks only)."""


class Arm:
    """One robot's arm in the world: its body, joint plan for the tick and its grasp."""

    def __init__(self, client: int, spec: RobotSpec) -> None:
        self.client = client
        self.spec = spec
        self.name = spec.name
        b = spec.base
        self.body = int(
            p.loadURDF(
                spec.urdf_path,
                basePosition=[b.x, b.y, b.z],
                baseOrientation=yaw_quat(b.yaw),
                useFixedBase=True,
                physicsClientId=client,
            )
        )
        self.arm_joints = MODEL_ARM_JOINTS[spec.model]
        self.finger_joints = MODEL_FINGER_JOINTS[spec.model]
        self.joints = list(self.arm_joints + self.finger_joints)
        self.tool_link, self.tool_offset = MODEL_TOOL[spec.model]
        n = p.getNumJoints(self.body, physicsClientId=client)
        infos = [p.getJointInfo(self.body, j, physicsClientId=client) for j in range(n)]
        self.limits = [(float(infos[j][8]), float(infos[j][9])) for j in self.arm_joints]
        self.joint_names = tuple(infos[j][1].decode() for j in self.arm_joints)
        """The URDF names of the arm joints, in ``q`` order (for telemetry and bags)."""
        root = p.getBodyInfo(self.body, physicsClientId=client)[0].decode()
        self.link_names = (root, *(infos[j][12].decode() for j in range(n)))
        """The URDF names of every link, root first, then link ``i`` of joint ``i``."""
        self._links = list(range(n))
        # motors off: the arm only moves where we reset it
        p.setJointMotorControlArray(
            self.body,
            list(range(n)),
            p.VELOCITY_CONTROL,
            forces=[0.0] * n,
            physicsClientId=client,
        )
        for link in range(-1, n):
            p.setCollisionFilterGroupMask(self.body, link, 0, 0, physicsClientId=client)
        self.q: tuple[float, ...] = MODEL_HOME[spec.model]
        """Joint positions at the end of the last tick (what the robot senses)."""
        self.target: tuple[float, ...] = self.q
        """Joint positions to reach at the end of the coming tick."""
        self.closed = False
        self.grasp = -1
        """The grasp constraint (-1 for none)."""
        self.holding = ""
        """The part held ("" for none)."""
        self.drift = [0.0] * len(self.arm_joints)
        """Each joint's tracking error (radians): the drive holds it this far off its command,
        so the links, the tool and a carried part are where ``q + drift`` puts them
        (a ``joint_drift`` fault grows it, ``sim.wear``)."""
        self._plan: list[tuple[list[list[float]], list[list[float]]]] = []
        self._reset(self.q, (0.0,) * len(self.q))

    def validate(self, q: tuple[float, ...]) -> tuple[float, ...] | str:
        """``q`` clamped to the joint limits, or why it is refused."""
        if len(q) != len(self.arm_joints):
            return f"q has {len(q)} values, {self.name} has {len(self.arm_joints)} joints"
        if not all(math.isfinite(v) for v in q):
            return f"q has a non-finite value: {q}"
        return tuple(min(max(v, lo), hi) for v, (lo, hi) in zip(q, self.limits, strict=True))

    def plan_tick(self, steps: int, tick_s: float) -> None:
        """Lay out the joint states of the coming tick's ``steps`` physics steps.

        Step ``i`` starts at fraction ``i / steps`` of the way with the tick's
        joint velocity, so physics integrates the links (and a carried part)
        to where the next reset puts them.
        """
        start, target = self.q, self.target
        if any(self.drift):
            start = tuple(s + d for s, d in zip(start, self.drift, strict=True))
            target = tuple(t + d for t, d in zip(target, self.drift, strict=True))
        vel = [[(t - s) / tick_s] for s, t in zip(start, target, strict=True)]
        fingers = FINGER_CLOSED if self.closed else FINGER_OPEN
        vel += [[0.0]] * len(self.finger_joints)
        plan = []
        for i in range(steps + 1):
            f = i / steps
            pos = [[s + (t - s) * f] for s, t in zip(start, target, strict=True)]
            pos += [[fingers]] * len(self.finger_joints)
            plan.append((pos, vel))
        self._plan = plan

    def step(self, i: int) -> None:
        """Put the joints where step ``i`` of the planned tick begins (``steps`` ends it)."""
        pos, vel = self._plan[i]
        p.resetJointStatesMultiDof(
            self.body, self.joints, pos, targetVelocities=vel, physicsClientId=self.client
        )

    def end_tick(self) -> None:
        """The target is reached."""
        self.q = self.target

    def tcp(self) -> tuple[Vec3, Quat]:
        """The tool centre point: the tool link's pose, moved along its z axis by the offset."""
        st = p.getLinkState(
            self.body, self.tool_link, computeForwardKinematics=True, physicsClientId=self.client
        )
        pos, orn = st[4], st[5]
        m = p.getMatrixFromQuaternion(orn)
        d = self.tool_offset
        return (
            (pos[0] + m[2] * d, pos[1] + m[5] * d, pos[2] + m[8] * d),
            (orn[0], orn[1], orn[2], orn[3]),
        )

    def link_poses(self) -> list[tuple[Vec3, Quat]]:
        """Every link's URDF frame in the cell, in ``link_names`` order.

        The root is the base pose the arm was loaded at (its frame, not
        PyBullet's inertial frame); the rest are the world link frames of one
        batched forward-kinematics call, so a tick costs one call per arm.
        """
        b = self.spec.base
        qa, qb, qc, qd = yaw_quat(b.yaw)
        out: list[tuple[Vec3, Quat]] = [((b.x, b.y, b.z), (qa, qb, qc, qd))]
        states = p.getLinkStates(
            self.body, self._links, computeForwardKinematics=True, physicsClientId=self.client
        )
        for st in states:
            (x, y, z), (qa, qb, qc, qd) = st[4], st[5]
            out.append(((x, y, z), (qa, qb, qc, qd)))
        return out

    def tool_com(self) -> tuple[Vec3, Quat]:
        """The tool link's centre-of-mass frame (what constraint frames are relative to)."""
        st = p.getLinkState(
            self.body, self.tool_link, computeForwardKinematics=True, physicsClientId=self.client
        )
        (x, y, z), (a, b, c, d) = st[0], st[1]
        return (x, y, z), (a, b, c, d)

    def _reset(self, q: tuple[float, ...], v: tuple[float, ...]) -> None:
        fingers = FINGER_CLOSED if self.closed else FINGER_OPEN
        pos = [[x] for x in q] + [[fingers]] * len(self.finger_joints)
        vel = [[x] for x in v] + [[0.0]] * len(self.finger_joints)
        p.resetJointStatesMultiDof(
            self.body, self.joints, pos, targetVelocities=vel, physicsClientId=self.client
        )
