"""A gated world (material from a factory's store): feeders make only what the gate allows,
from t=0 on, and tell the gate of every part in the order they made them."""

from __future__ import annotations

import dataclasses

from sim.world import World
from tests.sim.simkit import make_cell

TICKS_PER_S = 24


@dataclasses.dataclass
class Gate:
    """Allows a number of parts per feeder; remembers what was made."""

    left: dict[str, int]
    made: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def may_feed(self, feeder: str) -> bool:
        return self.left.get(feeder, 0) > 0

    def fed(self, feeder: str, part: str) -> None:
        self.left[feeder] -= 1
        self.made.append((feeder, part))


def test_feeders_make_only_what_the_gate_allows() -> None:
    cell = make_cell()
    fast = dataclasses.replace(cell.feeders[0], interval=0.5, jitter=0.1)
    cell = dataclasses.replace(cell, feeders=(fast, *cell.feeders[1:]))
    belt = fast.name
    gate = Gate({belt: 2})
    w = World(cell, seed=0)
    w.gate_feeders(gate)
    w.setup()
    try:
        for _ in range(6 * TICKS_PER_S):
            w.advance()
        assert sorted(p for p, (k, _) in w.parts().items() if k == "frame") == [
            "frame-0001",
            "frame-0002",
        ], "two allowed, two made, though the belt had room for four"
        assert not any(k != "frame" for k, _ in w.parts().values()), "trays got nothing"
        gate.left = {f.name: 1 for f in cell.feeders}
        for _ in range(3 * TICKS_PER_S):
            w.advance()
        kinds = sorted(k for k, _ in w.parts().values())
        assert kinds.count("frame") == 3 and len(kinds) == 2 + len(cell.feeders)
        assert [p for _f, p in gate.made][:2] == ["frame-0001", "frame-0002"]
        assert len(gate.made) == len(w.parts()), "the gate heard of every part"
    finally:
        w.shutdown()
