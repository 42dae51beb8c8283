"""A large cell made of many assembly islands: ``python -m cells.islands N OUT.toml``.

Each island is ``cells/assembly.toml``'s, whole: four arms at the corners of two
fixtures and three trays, its own infeed and outfeed belts, its own recipe (its base a
frame kind of its own, ``frame_07``, so each island builds only on its fixtures). The
islands stand on a square grid 5 m apart, too far for any arm to reach another's
stations, so one supervisor runs ``N`` independent lines: the way to load it with
``4 N`` agents (``tests/cells/test_scale.py``: 100 agents at events fidelity). Names
follow the assembly cell's with the island's number: robots ``R1``..``R{4N}``,
fixtures ``F1``..``F{2N}``, belts ``infeed_01``, trays ``battery_tray_01``.

At events fidelity such a cell borrows the assembly cell's calibration
(``lightsout run OUT.toml --fidelity events --calibration cells/assembly.calib.json``):
its steps have the assembly cell's names, and a robot the calibration does not name
takes the times of the same step done by the assembly cell's robots.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import tomli_w

SPACING_M = 5.0
"""Distance between neighbouring islands' centres."""
MAX_ISLANDS = 64
"""The most islands a generated cell has (256 robots)."""
ROBOTS = (
    ("iiwa", (-0.38, 0.4), ["pick_place", "inspect"]),
    ("panda", (0.38, 0.4), ["pick_place", "fasten"]),
    ("panda", (-0.38, -0.4), ["pick_place", "fasten", "inspect"]),
    ("iiwa", (0.38, -0.4), ["pick_place", "fasten", "inspect"]),
)
"""The assembly island's arms: model, base (x, y) from the island's centre, capabilities."""
PARTS = {
    "battery": ([0.07, 0.06, 0.005], 0.045, [0.1, 0.45, 0.15, 1.0]),
    "board": ([0.07, 0.06, 0.003], 0.02, [0.1, 0.3, 0.7, 1.0]),
    "screen": ([0.15, 0.075, 0.003], 0.03, [0.05, 0.05, 0.05, 1.0]),
}


def islands(n: int) -> dict[str, Any]:
    """The cell file of ``n`` assembly islands, as TOML data."""
    if not 1 <= n <= MAX_ISLANDS:
        raise ValueError(f"islands: {n} is not within 1..{MAX_ISLANDS}")
    side = math.ceil(math.sqrt(n))
    cell: dict[str, Any] = {
        "cell": {"name": f"assembly_{n}x", "physics_hz": 240, "control_hz": 24, "heartbeat_s": 1.0},
        "parts": {},
        "robots": [],
        "conveyors": {},
        "feeders": {},
        "fixtures": {},
        "recipes": [],
    }
    for kind, (size, mass, color) in PARTS.items():
        cell["parts"][kind] = {"size": size, "mass": mass, "color": color}
    for i in range(n):
        cx, cy = (i % side) * SPACING_M, (i // side) * SPACING_M
        tag = f"{i + 1:02d}"
        frame = f"frame_{tag}"
        cell["parts"][frame] = {
            "size": [0.15, 0.075, 0.008],
            "mass": 0.05,
            "color": [0.25, 0.25, 0.3, 1.0],
        }
        for j, (model, (bx, by), caps) in enumerate(ROBOTS):
            cell["robots"].append(
                {
                    "name": f"R{4 * i + j + 1}",
                    "model": model,
                    "base": [round(cx + bx, 3), round(cy + by, 3), 0.0],
                    "capabilities": caps,
                    "speed": 1.5,
                }
            )
        infeed, outfeed = f"infeed_{tag}", f"outfeed_{tag}"
        belt = {"height": 0.15, "width": 0.12}
        cell["conveyors"][infeed] = {
            "role": "infeed",
            "start": [round(cx - 1.83, 3), cy],
            "end": [round(cx - 0.65, 3), cy],
            "speed": 0.1,
            **belt,
        }
        cell["conveyors"][outfeed] = {
            "role": "outfeed",
            "start": [round(cx + 0.65, 3), cy],
            "end": [round(cx + 1.83, 3), cy],
            "speed": 0.15,
            **belt,
        }
        cell["feeders"][f"frames_{tag}"] = {
            "part": frame,
            "conveyor": infeed,
            "interval": 10.0,
            "jitter": 3.0,
            "limit": 2,
        }
        for kind, dx in (("battery", -0.19), ("board", 0.19), ("screen", 0.0)):
            cell["feeders"][f"{kind}_tray_{tag}"] = {
                "part": kind,
                "pose": [round(cx + dx, 3), cy, 0.15],
                "interval": 1.0,
            }
        f1, f2 = f"F{2 * i + 1}", f"F{2 * i + 2}"
        cell["fixtures"][f1] = {"pose": [cx, round(cy + 0.14, 3), 0.15]}
        cell["fixtures"][f2] = {"pose": [cx, round(cy - 0.14, 3), 0.15]}
        cell["recipes"].append(_recipe(tag, frame, infeed, outfeed, [f1, f2]))
    return cell


def _recipe(tag: str, frame: str, infeed: str, outfeed: str, fixtures: list[str]) -> dict[str, Any]:
    def place(kind: str, offset: list[float], after: list[str]) -> dict[str, Any]:
        return {
            "name": f"place_{kind}",
            "skill": "pick_place",
            "part": kind,
            "from": f"{kind}_tray_{tag}",
            "to": "unit",
            "offset": offset,
            "after": after,
        }

    ops = [
        {
            "name": "load_frame",
            "skill": "pick_place",
            "part": frame,
            "from": infeed,
            "to": "fixture",
        },
        place("battery", [-0.035, 0.0, 0.0], ["load_frame"]),
        place("board", [0.035, 0.0, 0.0], ["load_frame"]),
        place("screen", [0.0, 0.0, 0.005], ["place_battery", "place_board"]),
        {"name": "fasten", "skill": "fasten", "at": "unit", "after": ["place_screen"]},
        {"name": "inspect", "skill": "inspect", "at": "unit", "after": ["fasten"]},
        {
            "name": "unload",
            "skill": "pick_place",
            "part": frame,
            "from": "unit",
            "to": outfeed,
            "after": ["inspect"],
        },
    ]
    return {"product": "phone", "base": frame, "fixtures": fixtures, "ops": ops}


def main(argv: list[str] | None = None) -> int:
    """Write the cell file of N islands."""
    ap = argparse.ArgumentParser(prog="python -m cells.islands", description=__doc__)
    ap.add_argument("islands", type=int, help=f"how many islands (1..{MAX_ISLANDS}; 4 robots each)")
    ap.add_argument("out", type=Path, help="the cell file to write (never overwritten)")
    args = ap.parse_args(argv)
    try:
        data = islands(args.islands)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out} exists: a cell file is never overwritten", file=sys.stderr)
        return 2
    head = f"# {args.islands} assembly islands, {4 * args.islands} robots: made by python -m cells.islands\n"
    args.out.write_text(head + "\n" + tomli_w.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
