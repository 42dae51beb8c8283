"""The error family every lightsout package raises.

One root, a few children, as rosbags does: callers catch ``LightsoutError`` at a
boundary (the CLI, a socket loop) and everything below it stays specific.
"""

from __future__ import annotations


class LightsoutError(Exception):
    """Root of every error lightsout raises on purpose."""


class ConfigError(LightsoutError):
    """A cell file, scenario file or argument is wrong.

    The message names the file, the key and the reason, so a user can fix it
    without reading code.
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {reason}")


class ProtocolError(LightsoutError):
    """Bytes on a socket that are not a valid lightsout message."""


class PlanError(LightsoutError):
    """A motion or an allocation that cannot be planned (unreachable pose, no robot)."""
