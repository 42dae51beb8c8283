"""Each robot's URDF as a viewer needs it: links named per robot, meshes found anywhere.

The world loads the arms from pybullet_data (``bus.cellspec.MODEL_URDF``);
a bag carries the same text as ``/<robot>/robot_description`` so Foxglove
and RViz draw the arm. Two changes make it usable outside PyBullet:

* every link is named ``<robot>/<link>`` (and every joint's parent and child
  with it), so the frames of four arms share one tf tree without a clash and
  the names in ``/tf`` are the URDF's own: no tf prefix to set in a viewer;
* every mesh is an absolute ``file://`` URI, as the relative paths and
  ``package://`` URIs of pybullet_data resolve only inside PyBullet.

Joint names stay as they are: they are what ``/<robot>/joint_states`` lists.
This reads files only; it does not import pybullet (``pybullet_data`` is the
package's data directory, nothing more).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

import pybullet_data

from bus.cellspec import MODEL_URDF, RobotModel


def urdf_path(model: RobotModel) -> Path:
    """The URDF file the world loads for ``model``."""
    return Path(pybullet_data.getDataPath()) / MODEL_URDF[model]


def _mesh_uri(filename: str, base: Path) -> str:
    if filename.startswith("package://"):
        filename = filename.removeprefix("package://")
    path = Path(filename)
    if not path.is_absolute():
        path = base / path
    return path.resolve().as_uri()


@functools.cache
def robot_description(robot: str, model: RobotModel) -> str:
    """The URDF text of ``model`` for the robot called ``robot`` (links as ``robot/link``)."""
    src = urdf_path(model)
    root = ET.parse(src).getroot()
    root.set("name", robot)
    prefix = f"{robot}/"
    for link in root.iter("link"):
        link.set("name", prefix + link.get("name", ""))
    for joint in root.iter("joint"):
        for end in ("parent", "child"):
            el = joint.find(end)
            if el is not None:
                el.set("link", prefix + el.get("link", ""))
    for mesh in root.iter("mesh"):
        name = mesh.get("filename")
        if name:
            mesh.set("filename", _mesh_uri(name, src.parent))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
