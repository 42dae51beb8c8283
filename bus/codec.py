"""The one codec: messages to msgpack maps and back, strictly checked.

Encoding walks the dataclass fields; decoding looks the tag up in the registry
and checks every field against its declared type, so a malformed payload from
any sender raises ``CodecError`` (and only that) instead of reaching logic.
No pickle, no code on the wire.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import msgpack

from bus.errors import ProtocolError
from bus.messages import REGISTRY, Message

MAX_PAYLOAD = 1 << 20
"""Largest payload accepted (bytes); larger ones are refused before parsing."""

MAX_DEPTH = 8
"""Deepest nesting of messages accepted."""


class CodecError(ProtocolError):
    """Bytes or a value that are not a valid message."""


def to_wire(msg: Message) -> dict[str, Any]:
    """Turn a message into the plain map that msgpack (or JSON) writes."""
    out: dict[str, Any] = {"type": msg.TAG, "v": msg.VERSION}
    for f in dataclasses.fields(msg):  # type: ignore[arg-type]
        out[f.name] = _plain(getattr(msg, f.name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return to_wire(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def encode(msg: Message) -> bytes:
    """Encode a message to msgpack bytes."""
    return msgpack.packb(to_wire(msg), use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Message:
    """Decode msgpack bytes to a message; anything else raises ``CodecError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"payload must be bytes, not {type(data).__name__}")
    if len(data) > MAX_PAYLOAD:
        raise CodecError(f"payload of {len(data)} bytes exceeds the {MAX_PAYLOAD} byte limit")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for bad bytes
        raise CodecError(f"not msgpack: {exc}") from None
    return from_wire(obj)


def from_wire(obj: Any, *, depth: int = 0) -> Message:
    """Build a message from a decoded map, checking every field's type."""
    if depth > MAX_DEPTH:
        raise CodecError(f"messages nested deeper than {MAX_DEPTH}")
    if not isinstance(obj, dict):
        raise CodecError(f"a message must be a map, got {type(obj).__name__}")
    tag = obj.get("type")
    if not isinstance(tag, str):
        raise CodecError("message has no string 'type'")
    cls = REGISTRY.get(tag)
    if cls is None:
        raise CodecError(f"unknown message type {tag!r}")
    version = obj.get("v")
    if version != cls.VERSION:
        raise CodecError(f"{tag}: schema version {version!r}, expected {cls.VERSION}")
    hints = _hints(cls)
    extra = set(obj) - set(hints) - {"type", "v"}
    if extra:
        raise CodecError(f"{tag}: unknown field(s) {sorted(map(str, extra))}")
    kwargs: dict[str, Any] = {}
    for name, hint in hints.items():
        if name not in obj:
            raise CodecError(f"{tag}: missing field {name!r}")
        kwargs[name] = _convert(obj[name], hint, f"{tag}.{name}", depth)
    return cls(**kwargs)


_HINTS: dict[type[Message], dict[str, Any]] = {}


def _hints(cls: type[Message]) -> dict[str, Any]:
    cached = _HINTS.get(cls)
    if cached is not None:
        return cached
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    _HINTS[cls] = out = {n: hints[n] for n in names}
    return out


def _convert(value: Any, hint: Any, where: str, depth: int) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], where, depth)
        raise CodecError(f"{where}: unsupported union")  # pragma: no cover - schema bug
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise CodecError(f"{where}: expected a list, got {type(value).__name__}")
        (item, _ellipsis) = typing.get_args(hint)
        return tuple(_convert(v, item, f"{where}[]", depth) for v in value)
    if isinstance(hint, type) and issubclass(hint, Message):
        msg = from_wire(value, depth=depth + 1)
        if not isinstance(msg, hint):
            raise CodecError(f"{where}: expected {hint.__name__}, got {type(msg).__name__}")
        return msg
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise CodecError(f"{where}: {value!r} is not a {hint.__name__}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise CodecError(f"{where}: expected bool, got {type(value).__name__}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"{where}: expected int, got {type(value).__name__}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"{where}: expected float, got {type(value).__name__}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise CodecError(f"{where}: expected str, got {type(value).__name__}")
        return value
    raise CodecError(f"{where}: unsupported field type {hint!r}")  # pragma: no cover
