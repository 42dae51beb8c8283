"""Errors the robot agent raises: children of ``bus.errors.LightsoutError``.

Planning failures use ``bus.errors.PlanError`` directly; the ones here are the
agent's own: a PackML command its machine refuses, and a skill that gives up.
"""

from __future__ import annotations

from bus.errors import LightsoutError


class RobotError(LightsoutError):
    """Root of the errors the robot agent raises."""


class CommandRefused(RobotError):
    """A PackML command (or an internal trigger) that the current state does not allow.

    ``command`` and ``state`` are kept apart from the message so the agent can
    answer a ``CommandReply`` without parsing text.
    """

    def __init__(self, command: str, state: str, reason: str) -> None:
        self.command = command
        self.state = state
        self.reason = reason
        super().__init__(reason)


class SkillFailed(RobotError):
    """A skill could not finish (part not seen, grasp missed, ...); the op is reported FAILED."""
