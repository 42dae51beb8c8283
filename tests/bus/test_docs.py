"""docs/protocol.md lists every message exactly as the code defines it."""

from __future__ import annotations

from pathlib import Path

from bus.describe import message_reference
from bus.messages import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_protocol_doc_is_generated_from_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert message_reference() in text, (
        "run: .venv/bin/python -m bus.describe --write docs/protocol.md"
    )
    for tag in REGISTRY:
        assert f"### `{tag}`" in text
