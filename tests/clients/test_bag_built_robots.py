"""A recorded robot-building run: the robots built in it appear in the bag as the cell's own
do (their URDF, their links in the tf tree where the world has them), the bay and the test
stand are in the scene, and round parts are drawn round. Read with the ``mcap`` readers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from cells.schema import load_cell
from tests.clients.bagkit import Pose, recorded_run
from tests.clients.test_bag_whole_cell import _tf, chain, close

ROOT = Path(__file__).resolve().parents[2]
CELL = load_cell(ROOT / "cells" / "robot_building.toml")
DURATION_S = 70.0
"""B1 joins at 58 s (seed 1)."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], dict[int, Any]]:
    tmp = tmp_path_factory.mktemp("built-bag")
    _res, links = recorded_run(CELL, tmp / "run", seed=1, duration_s=DURATION_S)
    (path,) = (tmp / "run" / "bag").glob("*.mcap")
    with path.open("rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        bag = [(ch.topic, m.log_time, d) for _s, ch, m, d in reader.iter_decoded_messages()]
    return bag, links


@pytest.mark.timeout(600)
def test_a_built_robot_is_in_the_tf_tree_where_the_world_has_it(
    recorded: tuple[list[Any], dict[int, Any]],
) -> None:
    bag, world = recorded
    described = [(t, m) for topic, t, m in bag if topic == "/B1/robot_description"]
    assert len(described) == 1
    t_added = described[0][0]
    names = [link.get("name") for link in ET.fromstring(described[0][1].data).iter("link")]
    assert names and all(n.startswith("B1/") for n in names)
    frames: dict[str, tuple[str, Pose]] = {}
    checked = 0
    for topic, t, msg in bag:
        if topic in ("/tf", "/tf_static"):
            for tf in msg.transforms:
                parent, child, pose = _tf(tf)
                frames[child] = (parent, pose)
            if topic == "/tf" and t > t_added + 24 * (10**9 // 24) and t in world:
                got = [chain(frames, n) for n in names]
                if any(g is None for g in got):
                    continue
                assert all(close(g, w) for g, w in zip(got, world[t]["B1"], strict=True))
                checked += 1
    assert checked > 100, "B1's links follow the world for its last seconds"


def test_the_bay_and_the_stand_are_drawn_and_round_parts_are_round(
    recorded: tuple[list[Any], dict[int, Any]],
) -> None:
    bag, _ = recorded
    markers = [m for topic, _t, msg in bag if topic == "/cell/scene" for m in msg.markers]
    kinds = {m.ns for m in markers}
    assert {"mount", "stand", "fixture", "tray", "belt"} <= kinds
    bases = [
        m for m in markers if m.ns == "parts" and m.header.frame_id.startswith("part/arm_base")
    ]
    assert bases and all(m.type == 3 for m in bases if m.action == 0)  # CYLINDER
