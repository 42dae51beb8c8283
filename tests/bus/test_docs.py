"""docs/protocol.md lists every message and every word of the vocabulary as the code defines it.

The generated blocks are compared with the generator; the code is held to
the vocabulary in turn (every event kind written, every code answered), so
neither the page nor the code can add a word the other does not know.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from bus.describe import member_docs, message_reference, vocabulary_reference
from bus.enums import FAULT_ARGS, ControlCode, FaultKind, FaultTarget, OpStatus, Pace, Topic
from bus.eventkinds import EventKind
from bus.messages import PACES, REGISTRY, TOPICS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
FIX = "run: .venv/bin/python -m bus.describe --write docs/protocol.md"


def _calls(*folders: str) -> Iterator[tuple[Path, ast.Call]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    yield path, node


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def test_protocol_doc_is_generated_from_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert message_reference() in text, FIX
    for tag in REGISTRY:
        assert f"### `{tag}`" in text


def test_protocol_doc_lists_the_vocabulary_generated_from_the_enums() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert vocabulary_reference() in text, FIX
    for enum in (ControlCode, Pace, Topic, EventKind, FaultKind, FaultTarget):
        docs = member_docs(enum)
        for member in enum:
            assert docs.get(member.name), f"{enum.__name__}.{member.name} has no docstring"
            assert f"| `{member.value}` |" in text
    assert set(FAULT_ARGS) == set(FaultKind)
    assert tuple(Pace) == PACES and tuple(Topic) == TOPICS


def test_every_event_kind_the_code_writes_is_listed() -> None:
    """Each ``events.write(t, KIND, ...)`` names a listed kind (two are built from enums)."""
    built = {
        "part_{ev.kind.value}": {"part_fastened", "part_retired"},
        "op_{rep.status.value}": {f"op_{s.value}" for s in OpStatus},
    }
    seen: set[str] = set()
    for path, call in _calls("supervisor", "sim", "cells"):
        f = call.func
        if not (
            isinstance(f, ast.Attribute)
            and f.attr == "write"
            and isinstance(f.value, ast.Attribute)
            and f.value.attr == "events"
        ):
            continue
        kind = call.args[1]
        if isinstance(kind, ast.Constant):
            seen.add(kind.value)
        else:
            text = ast.unparse(kind).removeprefix("f'").removesuffix("'")
            assert text in built, f"{path.name}:{call.lineno}: a kind the test cannot read: {text}"
            seen |= built[text]
    listed = {k.value for k in EventKind}
    assert seen - listed == set(), "event kinds written but not in bus/eventkinds.py"
    assert "run_end" in listed  # the cell host writes the last line itself


def test_every_code_the_cell_answers_is_listed() -> None:
    """Each literal code given to an answer in sim/ and supervisor/ is a ``ControlCode``."""
    codes: set[str] = set()
    for path, call in _calls("supervisor", "sim"):
        if _name(call) not in ("_error", "_answer", "ControlReply") or len(call.args) < 3:
            continue
        arg = call.args[2]  # (who, cmd_id or ok, code, reason) in all three
        if isinstance(arg, ast.Constant):
            assert arg.value in set(ControlCode), f"{path.name}:{call.lineno}: {arg.value!r}"
            codes.add(arg.value)
    assert codes >= {"ok", "bad_argument", "unknown_robot", "refused", "unavailable", "paused"}
