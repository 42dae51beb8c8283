"""The supervisor's shape, checked from its source: no import circle, no module past ~500
lines, no module reaching back to ``Supervisor``, no raw change of an operation's state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from supervisor.errors import IllegalTransition
from supervisor.plan import TRANSITIONS, Op, OpState, make_unit
from tests.kit.cells import assembly_cell

PKG = Path(__file__).resolve().parents[2] / "supervisor"
MAX_LINES = 500


def imports(path: Path) -> set[str]:
    """The supervisor modules ``path`` imports (``TYPE_CHECKING`` ones included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "supervisor":
                out |= {f"supervisor.{a.name}" for a in node.names}
            elif node.module.startswith("supervisor."):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("supervisor.")}
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (the package's face left out)."""
    mods = {f"supervisor.{p.stem}": p for p in PKG.glob("*.py") if p.stem != "__init__"}
    return {m: imports(p) & set(mods) for m, p in mods.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as the path that closes it (depth-first, deterministic)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                found.append([*path[path.index(n) :], n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_inside_the_supervisor() -> None:
    assert circles(graph()) == []


def test_no_module_imports_the_supervisor_back() -> None:
    back = sorted(m for m, deps in graph().items() if "supervisor.supervisor" in deps)
    assert back == []


@pytest.mark.parametrize("path", sorted(PKG.glob("*.py")), ids=lambda p: p.name)
def test_no_module_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def raw_state_changes(source: str) -> list[int]:
    """Lines that assign an ``OpState`` to some ``.state`` instead of calling ``Op.move``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign):
            continue
        targets = [el for t in node.targets for el in (t.elts if isinstance(t, ast.Tuple) else [t])]
        sets_state = any(isinstance(el, ast.Attribute) and el.attr == "state" for el in targets)
        uses = any(isinstance(n, ast.Name) and n.id == "OpState" for n in ast.walk(node.value))
        if sets_state and uses:
            lines.append(node.lineno)
    return lines


def test_the_raw_change_finder_finds_one() -> None:
    assert raw_state_changes("op.state, op.robot = OpState.RUNNING, name\nop.move(x)\n") == [1]


def test_only_op_move_changes_an_operations_state() -> None:
    raw = {
        p.name: lines
        for p in sorted(PKG.glob("*.py"))
        if (lines := raw_state_changes(p.read_text(encoding="utf-8")))
    }
    assert raw == {}


def an_op() -> Op:
    cell = assembly_cell()
    return make_unit(cell.recipe, "frame-0001", "F1", 0).op("load_frame")


def test_every_edge_of_the_table_is_a_legal_move_and_nothing_else_is() -> None:
    for src in OpState:
        for dst in OpState:
            op = an_op()
            op.state = src  # set up the state under test directly
            if dst in TRANSITIONS[src]:
                op.move(dst)
                assert op.state is dst
            else:
                with pytest.raises(IllegalTransition, match=f"{src.value} -> {dst.value}"):
                    op.move(dst)
                assert op.state is src


def test_settled_operations_never_move_again() -> None:
    assert TRANSITIONS[OpState.DONE] == TRANSITIONS[OpState.CANCELLED] == frozenset()
