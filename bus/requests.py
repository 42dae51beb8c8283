"""Reading a control request off the control ROUTER: its envelope, and what is wrong with it.

A DEALER sends one frame, the payload; a REQ puts an empty delimiter frame
before it. The ROUTER sees the sender's identity first either way. The answer
goes back in the envelope the request came in, so a REQ client gets it (a REQ
socket discards a reply without the delimiter). A request that cannot be
taken becomes a ``Refusal`` with a stable code; the ``cmd_id`` is echoed
whenever it can be read, so a client can tell which request was refused.
"""

from __future__ import annotations

import dataclasses

from bus.codec import CodecError, decode, from_wire, peek
from bus.enums import ControlCode, ControlCommand
from bus.messages import ControlRequest

MAX_CMD_ID = 256
"""Longest ``cmd_id`` accepted (characters): ids are kept to answer retries."""


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """A request answered at once with an error: its code, the id to echo and why."""

    code: ControlCode
    cmd_id: str
    reason: str


def read_request(frames: list[bytes]) -> tuple[list[bytes], ControlRequest | Refusal]:
    """Split ``frames`` (identity first) into the reply envelope and the request, or why not."""
    if len(frames) >= 3 and frames[1] == b"":
        # a REQ: identity, delimiter, payload (answered with the delimiter even when the
        # payload is of the wrong shape, so that the REQ can read why)
        envelope, body = frames[:2], frames[2:]
    else:
        envelope, body = frames[:1], frames[1:]
    if len(body) != 1:
        why = f"expected 1 payload frame (after an empty delimiter from a REQ), got {len(body)}"
        return envelope, Refusal(ControlCode.MALFORMED, "", why)
    try:
        req = decode(body[0])
    except CodecError as exc:
        return envelope, _unreadable(body[0], str(exc))
    if not isinstance(req, ControlRequest):
        why = f"expected a control_request, got {req.TAG}"
        return envelope, Refusal(ControlCode.MALFORMED, "", why)
    if not req.cmd_id:
        return envelope, Refusal(ControlCode.BAD_ARGUMENT, "", "cmd_id must not be empty")
    if len(req.cmd_id) > MAX_CMD_ID:
        why = f"cmd_id is {len(req.cmd_id)} characters; at most {MAX_CMD_ID}"
        return envelope, Refusal(ControlCode.BAD_ARGUMENT, "", why)
    return envelope, req


def _unreadable(payload: bytes, why: str) -> Refusal:
    """Not a valid request: ``unknown_command`` if that is all that is wrong, else malformed."""
    fields = peek(payload) or {}
    cmd_id = fields.get("cmd_id")
    echo = cmd_id if isinstance(cmd_id, str) and len(cmd_id) <= MAX_CMD_ID else ""
    command = fields.get("command")
    known = [c.value for c in ControlCommand]
    if (
        fields.get("type") == "control_request"
        and isinstance(command, str)
        and command not in known
    ):
        # the command alone is wrong only if the request decodes with a known one in its place
        try:
            from_wire({**fields, "command": ControlCommand.STATUS.value})
        except CodecError:
            return Refusal(ControlCode.MALFORMED, echo, why)
        shown = command[:40]
        reason = f"command {shown!r} is not one of {', '.join(known)}"
        return Refusal(ControlCode.UNKNOWN_COMMAND, echo, reason)
    return Refusal(ControlCode.MALFORMED, echo, why)
