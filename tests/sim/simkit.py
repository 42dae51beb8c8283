"""Test kit for sim/: the reference assembly cell built in code, and an arm driver.

The driver computes IK in its own PyBullet client on the same URDF (as a
robot agent would) and feeds the world joint targets tick by tick, so the
tests exercise the world exactly through ``RobotAct``.
"""

from __future__ import annotations

import dataclasses
import math

import pybullet as p
import pybullet_data

from bus.cellspec import (
    MODEL_ARM_JOINTS,
    MODEL_TOOL,
    MODEL_URDF,
    CellSpec,
    OperationSpec,
    RecipeSpec,
)
from bus.enums import Grip, Skill
from bus.messages import RobotAct
from sim.world import World
from tests.kit.cells import assembly_cell

ALL = (Skill.PICK_PLACE, Skill.FASTEN, Skill.INSPECT)


def make_cell(**changes: object) -> CellSpec:
    """The first layout of the assembly cell: four arms around two fixtures, trays between.

    The world tests pin their geometry to it; ``cells/assembly.toml`` has since
    been laid out so that any one arm can fail (``tests/cells/test_failover.py``).
    It is the kit's hand-built cell (``tests.kit.cells``) with every arm able to do
    every step and a three-step recipe.
    """
    base = assembly_cell()
    robots = tuple(dataclasses.replace(r, capabilities=ALL) for r in base.robots)
    op = OperationSpec
    recipe = RecipeSpec(
        "phone",
        "frame",
        (
            op("load_frame", Skill.PICK_PLACE, "frame", "infeed", "fixture", "", ()),
            op("place_battery", Skill.PICK_PLACE, "battery", "battery_tray", "unit", "", ()),
            op("fasten", Skill.FASTEN, "", "", "", "unit", ("place_battery",)),
        ),
    )
    cell = dataclasses.replace(base, source="<tests>", robots=robots, recipe=recipe)
    return dataclasses.replace(cell, **changes)  # type: ignore[arg-type]


class Driver:
    """Moves one robot of a world: IK in a private client, joint targets per tick."""

    def __init__(self, world: World, robot: str) -> None:
        self.world = world
        self.robot = robot
        spec = world.cell.robot(robot)
        self.model = spec.model
        self.client = p.connect(p.DIRECT)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
        b = spec.base
        self.body = p.loadURDF(
            MODEL_URDF[spec.model],
            [b.x, b.y, b.z],
            p.getQuaternionFromEuler([0, 0, b.yaw]),
            useFixedBase=True,
            physicsClientId=self.client,
        )
        self.joints = MODEL_ARM_JOINTS[spec.model]
        self.link, self.offset = MODEL_TOOL[spec.model]
        n = p.getNumJoints(self.body, physicsClientId=self.client)
        self.movable = [
            j
            for j in range(n)
            if p.getJointInfo(self.body, j, physicsClientId=self.client)[2] != p.JOINT_FIXED
        ]

    def close(self) -> None:
        p.disconnect(physicsClientId=self.client)

    @property
    def q(self) -> tuple[float, ...]:
        return self.world.robot_sense(self.robot).q

    def ik(self, x: float, y: float, z: float, yaw: float = 0.0) -> tuple[float, ...]:
        """Joints putting the tool centre point at (x, y, z), pointing down, seeded here."""
        cid = self.client
        orn = p.getQuaternionFromEuler([math.pi, 0.0, yaw])
        # the tool link sits ``offset`` above the TCP when the tool points down
        target = [x, y, z + self.offset]
        seed = self.q
        for j, v in zip(self.joints, seed, strict=True):
            p.resetJointState(self.body, j, v, physicsClientId=cid)
        sol: tuple[float, ...] = seed
        for _ in range(20):
            full = p.calculateInverseKinematics(
                self.body,
                self.link,
                target,
                orn,
                maxNumIterations=200,
                residualThreshold=1e-6,
                physicsClientId=cid,
            )
            sol = tuple(full[: len(self.joints)])
            for j, v in zip(self.joints, sol, strict=True):
                p.resetJointState(self.body, j, v, physicsClientId=cid)
            pos = p.getLinkState(
                self.body, self.link, computeForwardKinematics=True, physicsClientId=cid
            )[4]
            if math.dist(pos, target) < 5e-4:
                break
        assert math.dist(pos, target) < 2e-3, f"IK missed {target}: got {pos}"
        return sol

    def act(self, q: tuple[float, ...], grip: Grip = Grip.NONE, **kw: object) -> RobotAct:
        fields: dict[str, object] = {"observe": (), "fasten": "", "inspect": ""}
        fields.update(kw)
        return RobotAct(robot=self.robot, q=q, grip=grip, **fields)  # type: ignore[arg-type]

    def move(self, x: float, y: float, z: float, *, ticks: int = 24) -> None:
        """Move the TCP to (x, y, z) in a straight joint-space line over ``ticks`` ticks."""
        start, goal = self.q, self.ik(x, y, z)
        for k in range(1, ticks + 1):
            f = k / ticks
            q = tuple(s + (g - s) * f for s, g in zip(start, goal, strict=True))
            assert self.world.apply(self.act(q))
            self.world.advance()

    def grip(self, grip: Grip) -> None:
        """Grasp or release where the tool is, holding still for one tick."""
        assert self.world.apply(self.act(self.q, grip))
        self.world.advance()

    def hold(self, ticks: int) -> None:
        """Let the world run ``ticks`` ticks with this arm still."""
        for _ in range(ticks):
            self.world.advance()
