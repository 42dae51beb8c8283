"""The events world reads an arm's joints from its URDF's XML (``sim.events.urdf_joints``):
the same joints, names, limits and root link as PyBullet gives when it loads the model."""

from __future__ import annotations

from pathlib import Path

import pybullet as p
import pybullet_data
import pytest

from bus.cellspec import MODEL_URDF, RobotModel
from sim.events import urdf_joints, urdf_root


@pytest.mark.parametrize("model", list(RobotModel))
def test_the_urdf_is_read_as_pybullet_loads_it(model: RobotModel) -> None:
    path = Path(pybullet_data.getDataPath()) / MODEL_URDF[model]
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(path), useFixedBase=True, physicsClientId=cid)
        infos = [
            p.getJointInfo(body, j, physicsClientId=cid)
            for j in range(p.getNumJoints(body, physicsClientId=cid))
        ]
        root = p.getBodyInfo(body, physicsClientId=cid)[0].decode()
    finally:
        p.disconnect(physicsClientId=cid)
    expected = [(i[1].decode(), (float(i[8]), float(i[9]))) for i in infos]
    assert urdf_joints(path) == expected
    assert urdf_root(path) == root


def test_a_urdf_with_two_roots_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.urdf"
    path.write_text('<robot name="x"><link name="a"/><link name="b"/></robot>')
    with pytest.raises(ValueError, match="2 root links"):
        urdf_root(path)
