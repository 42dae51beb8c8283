"""The CDR bytes of ``tf2_msgs/msg/TFMessage``, written directly: the recorder's hot path.

Every control tick the recorder writes a transform for every movable joint
of every arm and for every live part. Building rosbags' message objects and
serializing them generically cost most of its time; the layout is fixed and
simple (ROS 2's little-endian CDR: a 4-byte encapsulation header, then each
field aligned to its size, counted from after the header), so it is packed
here. ``tests/clients/test_bag.py`` holds it byte for byte to rosbags'
``serialize_cdr``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_HEADER = b"\x00\x01\x00\x00"
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
_POSE = struct.Struct("<7d")

Transform = tuple[str, str, Sequence[float]]
"""(parent frame, child frame, (x, y, z, qx, qy, qz, qw))."""


def _string(out: bytearray, text: str) -> None:
    """A CDR string at a 4-aligned offset: length with the NUL, bytes, NUL, padding to 4."""
    data = text.encode()
    out += _U32.pack(len(data) + 1)
    out += data
    out += b"\x00"
    out += b"\x00" * (-(len(out) - 4) % 4)


def tf_message(sec: int, nanosec: int, transforms: Sequence[Transform]) -> bytes:
    """``TFMessage(transforms=[...])``, every transform stamped ``sec``/``nanosec``."""
    out = bytearray(_HEADER)
    out += _U32.pack(len(transforms))
    stamp = _STAMP.pack(sec, nanosec)
    for parent, child, pose in transforms:
        out += stamp
        _string(out, parent)
        _string(out, child)
        out += b"\x00" * (-(len(out) - 4) % 8)
        out += _POSE.pack(*pose)
    return bytes(out)


def _align(out: bytearray, n: int) -> None:
    out += b"\x00" * (-(len(out) - 4) % n)


def joint_state(sec: int, nanosec: int, names: Sequence[str], position: Sequence[float]) -> bytes:
    """``JointState`` with ``names`` and ``position`` (no velocity, no effort), empty frame id."""
    out = bytearray(_HEADER)
    out += _STAMP.pack(sec, nanosec)
    _string(out, "")
    out += _U32.pack(len(names))
    for name in names:
        _string(out, name)
    out += _U32.pack(len(position))
    if position:
        _align(out, 8)
        out += struct.pack(f"<{len(position)}d", *position)
    out += _U32.pack(0)  # velocity
    out += _U32.pack(0)  # effort
    return bytes(out)


def clock(sec: int, nanosec: int) -> bytes:
    """``rosgraph_msgs/msg/Clock``."""
    return _HEADER + _STAMP.pack(sec, nanosec)
