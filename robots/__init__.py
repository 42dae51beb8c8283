"""The robot agent: a PackML machine on ``transitions``, skills, and its own kinematic model.

``RobotAgent`` is what a cell runs per robot; ``PackML`` is its state machine
(drawable and testable with no world around it); ``Kinematics`` is its private
IK/FK model; ``Trajectory`` the joint-space motion it follows; ``FakeWorld``
a scripted world for tests and demos.
"""

from robots.agent import RobotAgent
from robots.errors import CommandRefused, RobotError, SkillFailed
from robots.fakes import FakeOutbox, FakeWorld
from robots.kinematics import Kinematics
from robots.motion import Trajectory
from robots.packml import TRANSITIONS, PackML, Transition, markdown_table

__all__ = [
    "TRANSITIONS",
    "CommandRefused",
    "FakeOutbox",
    "FakeWorld",
    "Kinematics",
    "PackML",
    "RobotAgent",
    "RobotError",
    "SkillFailed",
    "Trajectory",
    "Transition",
    "markdown_table",
]
