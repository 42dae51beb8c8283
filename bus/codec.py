"""The one codec: messages to msgpack maps and back, strictly checked.

Encoding walks the dataclass fields; decoding looks the tag up in the registry
and checks every field against its declared type, so a malformed payload from
any sender raises ``CodecError`` (and only that) instead of reaching logic.
No pickle, no code on the wire.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
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
    for name in _names(type(msg)):
        out[name] = _plain(getattr(msg, name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return to_wire(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        if value and type(value[0]) is float:
            return list(value)  # a tuple field holds one type: numbers need no conversion
        return [_plain(v) for v in value]
    return value


_NAMES: dict[type[Message], tuple[str, ...]] = {}


def _names(cls: type[Message]) -> tuple[str, ...]:
    """A message class's field names, looked up once (the hot path of every tick)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return names


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
    fields = _fields(cls)
    kwargs: dict[str, Any] = {}
    present = 2
    try:
        for name, conv in fields:
            if name in obj:
                kwargs[name] = conv(obj[name], depth)
                present += 1
            elif name not in _optional(cls):
                raise CodecError(f"{tag}: missing field {name!r}")
    except _Bad as bad:
        raise CodecError(f"{tag}.{name}{bad.where}: {bad.reason}") from None
    if len(obj) != present:
        extra = set(obj) - set(kwargs) - {"type", "v"}
        raise CodecError(f"{tag}: unknown field(s) {sorted(map(str, extra))}")
    return cls(**kwargs)


class _Bad(Exception):
    """A field value of the wrong shape; ``from_wire`` names the field."""

    def __init__(self, reason: str, where: str = "") -> None:
        self.reason = reason
        self.where = where


Conv: typing.TypeAlias = Callable[[Any, int], Any]
_FIELDS: dict[type[Message], tuple[tuple[str, Conv], ...]] = {}


def _fields(cls: type[Message]) -> tuple[tuple[str, Conv], ...]:
    """Each field's name and checking converter, compiled once per class from its type hints."""
    got = _FIELDS.get(cls)
    if got is None:
        hints = typing.get_type_hints(cls)
        got = _FIELDS[cls] = tuple((n, _compile(hints[n])) for n in _names(cls))
    return got


_OPTIONAL: dict[type[Message], frozenset[str]] = {}


def _optional(cls: type[Message]) -> frozenset[str]:
    """Fields with a default: added to a message later, they may be absent on the wire."""
    got = _OPTIONAL.get(cls)
    if got is None:
        got = _OPTIONAL[cls] = frozenset(
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is not dataclasses.MISSING
        )
    return got


def _compile(hint: Any) -> Conv:
    """A function that checks and converts one decoded value of type ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) != 1:  # pragma: no cover - schema bug
            raise TypeError(f"unsupported union {hint!r}")
        conv = _compile(inner[0])
        return lambda v, d: None if v is None else conv(v, d)
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        item = _compile(item_type)
        plain = item_type if item_type in (str, float) else None

        def seq(v: Any, d: int) -> tuple[Any, ...]:
            if not isinstance(v, list | tuple):
                raise _Bad(f"expected a list, got {type(v).__name__}")
            if plain is not None and set(map(type, v)) <= {plain}:
                return tuple(v)  # the common case, checked at C speed (no generator)
            try:
                return tuple(item(x, d) for x in v)
            except _Bad as bad:
                raise _Bad(bad.reason, "[]" + bad.where) from None

        return seq
    if isinstance(hint, type) and issubclass(hint, Message):
        want = hint

        def nested(v: Any, d: int) -> Message:
            try:
                msg = from_wire(v, depth=d + 1)
            except CodecError as exc:
                raise _Bad(str(exc)) from None
            if not isinstance(msg, want):
                raise _Bad(f"expected {want.__name__}, got {type(msg).__name__}")
            return msg

        return nested
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        cls = hint

        def member(v: Any, d: int) -> Any:
            try:
                return cls(v)
            except ValueError:
                raise _Bad(f"{v!r} is not a {cls.__name__}") from None

        return member
    if hint is bool:
        return _check(lambda v: isinstance(v, bool), "bool")
    if hint is int:
        return _check(lambda v: isinstance(v, int) and not isinstance(v, bool), "int")
    if hint is str:
        return _check(lambda v: isinstance(v, str), "str")
    if hint is float:

        def real(v: Any, d: int) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise _Bad(f"expected float, got {type(v).__name__}")
            return float(v)

        return real
    raise TypeError(f"unsupported field type {hint!r}")  # pragma: no cover - schema bug


def _check(ok: Callable[[Any], bool], name: str) -> Conv:
    def conv(v: Any, d: int) -> Any:
        if not ok(v):
            raise _Bad(f"expected {name}, got {type(v).__name__}")
        return v

    return conv


def peek(data: bytes) -> dict[str, Any] | None:
    """The top-level map of a payload that is not a valid message, or None if it is no map.

    Only for answering well: a receiver that refuses a payload can still echo
    the ``cmd_id`` it carries, or say that its ``command`` is unknown. The
    same size limit holds; nothing read here is trusted beyond its type.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) > MAX_PAYLOAD:
        return None
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except Exception:  # msgpack raises many types for bad bytes
        return None
    if not isinstance(obj, dict):
        return None
    return {k: v for k, v in obj.items() if isinstance(k, str)}


def non_finite(msg: Message, where: str = "") -> str:
    """The dotted path of the first NaN or infinity in ``msg`` (and what it nests), or "".

    The codec takes any float, since a control request's out-of-range value
    deserves its own answer (``bad_argument``); what participants send on the
    clock and the cell bus is checked with this before it is used.
    """
    for name in _names(type(msg)):
        value = getattr(msg, name)
        path = f"{where}.{name}" if where else f"{msg.TAG}.{name}"
        if type(value) is float:
            if not math.isfinite(value):
                return path
        elif isinstance(value, Message):
            got = non_finite(value, path)
            if got:
                return got
        elif isinstance(value, tuple) and value:
            if type(value[0]) is float:
                if not all(map(math.isfinite, value)):
                    return f"{path}[]"
            elif isinstance(value[0], Message):
                for item in value:
                    got = non_finite(item, f"{path}[]")
                    if got:
                        return got
    return ""
