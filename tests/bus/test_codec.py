"""Every message survives the codec; nothing but CodecError comes out of bad bytes."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.codec import MAX_PAYLOAD, CodecError, decode, encode, to_wire
from bus.messages import REGISTRY, Count, Message, Tick

LEAVES = list(REGISTRY.values())


def strategy_for(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for a field type of a message."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.none() | strategy_for(inner[0], depth)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return st.lists(strategy_for(item, depth), max_size=3).map(tuple)
    if isinstance(hint, type) and issubclass(hint, Message):
        if hint is Message:
            if depth > 2:
                return message_strategy(Count, depth + 1)
            return st.sampled_from(LEAVES).flatmap(lambda c: message_strategy(c, depth + 1))
        return message_strategy(hint, depth + 1)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    return {
        int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
        float: st.floats(allow_nan=False),
        str: st.text(max_size=20),
        bool: st.booleans(),
    }[hint]


def message_strategy(cls: type[Message], depth: int = 0) -> st.SearchStrategy[Message]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name], depth) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", sorted(REGISTRY.values(), key=lambda c: c.TAG), ids=lambda c: c.TAG)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_roundtrip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(message_strategy(cls))
    assert decode(encode(msg)) == msg


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_codec_error(blob: bytes) -> None:
    try:
        msg = decode(blob)
    except CodecError:
        return
    assert isinstance(msg, Message)


wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    tag=st.sampled_from(sorted(REGISTRY)), fields=st.dictionaries(st.text(max_size=8), wire_values)
)
def test_wrong_fields_raise_only_codec_error(tag: str, fields: dict[str, Any]) -> None:
    """Well-formed msgpack with a real tag but arbitrary fields: rejected cleanly or decoded."""
    blob = msgpack.packb({"type": tag, "v": 1, **fields})
    try:
        msg = decode(blob)
    except CodecError:
        return
    assert tag == msg.TAG


def test_unknown_type_is_named() -> None:
    with pytest.raises(CodecError, match="unknown message type 'nope'"):
        decode(msgpack.packb({"type": "nope", "v": 1}))


def test_wrong_field_type_is_named() -> None:
    wire = to_wire(Tick(tick=1, t_ns=0, expect=(), sense=None))
    wire["tick"] = "one"
    with pytest.raises(CodecError, match=r"tick\.tick: expected int"):
        decode(msgpack.packb(wire))


def test_bool_is_not_an_int() -> None:
    wire = to_wire(Count(peer="a", n=1))
    wire["n"] = True
    with pytest.raises(CodecError, match="expected int"):
        decode(msgpack.packb(wire))


def test_oversize_payload_is_refused_before_parsing() -> None:
    with pytest.raises(CodecError, match="exceeds"):
        decode(b"\x00" * (MAX_PAYLOAD + 1))


def test_deep_nesting_is_refused() -> None:
    inner: dict[str, Any] = {"type": "count", "v": 1, "peer": "a", "n": 1}
    for i in range(12):
        inner = {"type": "tick", "v": 1, "tick": i, "t_ns": 0, "expect": [], "sense": inner}
    with pytest.raises(CodecError):
        decode(msgpack.packb(inner))


def test_a_field_with_a_default_may_be_left_out() -> None:
    old_client = {"type": "control_request", "v": 1, "cmd_id": "x", "command": "status"}
    msg = decode(msgpack.packb(old_client))
    assert (msg.target, msg.action, msg.value, msg.factor) == ("", "", 0.0, 0.0)  # type: ignore[attr-defined]


def test_a_required_field_may_not() -> None:
    with pytest.raises(CodecError, match="missing field 'cmd_id'"):
        decode(msgpack.packb({"type": "control_request", "v": 1, "command": "status"}))
