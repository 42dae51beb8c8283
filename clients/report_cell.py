"""A picture of the cell at a few sim times, drawn from its bag alone.

``lightsout report`` adds it when the run was recorded (``RUN_DIR/bag``):
belts, stations and parts from ``/cell/scene``, the arms from their URDF's
joints (``/<robot>/robot_description``) placed by ``/tf_static`` and
``/tf``, top-down and in perspective. Nothing else of the run is read, so
the picture shows what a viewer of the bag sees, and a bag that lost its
links or its parts shows that too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon
from mpl_toolkits.mplot3d.art3d import Poly3DCollection  # type: ignore[import-untyped]
from rosbags.typesys import get_typestore

from bus.messages import Pose3
from bus.simtime import NS
from clients.bag import STORE, TOPIC_SCENE, TOPIC_TF, TOPIC_TF_STATIC, WORLD, open_bag
from clients.bag_scene import NS_PARTS
from clients.bag_tf import IDENTITY, mul, parse_urdf

SNAPSHOTS = 3
"""Sim times drawn, spread over the run."""
WINDOW_NS = NS // 4
"""Every tick writes every moving frame: this much before a snapshot time is enough."""
MARGIN = 0.35
"""Room around the arms in the picture (m); belts run on out of it."""
ARM_COLOURS = ("#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#e67700", "#0c8599")


@dataclasses.dataclass(frozen=True, slots=True)
class Block:
    """A box to draw: centre pose, full size, colour."""

    pose: Pose3
    size: tuple[float, float, float]
    rgba: tuple[float, float, float, float]
    part: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """The cell at one sim time: each arm's bones (segments between link origins) and boxes."""

    t_ns: int
    arms: dict[str, list[tuple[tuple[float, float, float], tuple[float, float, float]]]]
    blocks: list[Block]


def _pose(tf: Any) -> Pose3:
    tr, q = tf.transform.translation, tf.transform.rotation
    return Pose3(tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w)


def _world(frames: dict[str, tuple[str, Pose3]], frame: str) -> Pose3 | None:
    pose = IDENTITY
    for _ in range(64):
        if frame == WORLD:
            return pose
        link = frames.get(frame)
        if link is None:
            return None
        frame, tf = link
        pose = mul(tf, pose)
    return None


def read_snapshots(bag: Path, *, count: int = SNAPSHOTS) -> list[Snapshot]:
    """``count`` snapshots of the bag at ``bag``, from a tenth of the way in to its end."""
    store = get_typestore(STORE)
    reader = open_bag(bag)
    try:
        by_topic = {c.topic: c for c in reader.connections}

        def each(topics: list[str], start: int | None = None, stop: int | None = None) -> Any:
            conns = [by_topic[t] for t in topics if t in by_topic]
            for conn, t, raw in reader.messages(connections=conns, start=start, stop=stop):
                yield conn.topic, t, store.deserialize_cdr(raw, conn.msgtype)

        trees = {}
        for topic, _t, msg in each([t for t in by_topic if t.endswith("/robot_description")]):
            robot = topic.strip("/").split("/")[0]
            trees[robot] = parse_urdf(robot, str(msg.data))
        static: dict[str, tuple[str, Pose3]] = {}
        for _topic, _t, msg in each([TOPIC_TF_STATIC]):
            for tf in msg.transforms:
                static[str(tf.child_frame_id)] = (str(tf.header.frame_id), _pose(tf))
        scenes = [(t, msg) for _topic, t, msg in each([TOPIC_SCENE])]
        t0, t1 = reader.start_time, reader.end_time - 1
        span = max(t1 - t0, 0)
        times = (
            [t1]
            if count == 1
            else [t0 + span // 10 + i * (span - span // 10) // (count - 1) for i in range(count)]
        )
        out = []
        for when in times:
            frames = dict(static)
            for _topic, _t, msg in each([TOPIC_TF], start=max(t0, when - WINDOW_NS), stop=when + 1):
                for tf in msg.transforms:
                    frames[str(tf.child_frame_id)] = (str(tf.header.frame_id), _pose(tf))
            arms = {}
            for robot, tree in sorted(trees.items()):
                bones = []
                for j in tree.joints:
                    a, b = _world(frames, j.parent), _world(frames, j.child)
                    if a is not None and b is not None:
                        bones.append(((a.x, a.y, a.z), (b.x, b.y, b.z)))
                arms[robot] = bones
            scene = next((m for t, m in reversed(scenes) if t <= when), None)
            blocks = []
            for m in scene.markers if scene is not None else ():
                if m.action != 0:
                    continue
                p = m.pose
                local = Pose3(
                    p.position.x,
                    p.position.y,
                    p.position.z,
                    p.orientation.x,
                    p.orientation.y,
                    p.orientation.z,
                    p.orientation.w,
                )
                base = _world(frames, str(m.header.frame_id))
                if base is None:
                    continue
                c = m.color
                blocks.append(
                    Block(
                        mul(base, local),
                        (m.scale.x, m.scale.y, m.scale.z),
                        (c.r, c.g, c.b, c.a),
                        m.ns == NS_PARTS,
                    )
                )
            out.append(Snapshot(when, arms, blocks))
        return out
    finally:
        reader.close()


def _corners(b: Block) -> list[tuple[float, float, float]]:
    """The eight corners of a box, bottom four first."""
    hx, hy, hz = (s / 2 for s in b.size)
    out = []
    for dz in (-hz, hz):
        for dx, dy in ((-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)):
            c = mul(b.pose, Pose3(dx, dy, dz, 0.0, 0.0, 0.0, 1.0))
            out.append((c.x, c.y, c.z))
    return out


def _top(ax: Axes, snap: Snapshot, extent: tuple[float, float, float, float]) -> None:
    for b in sorted(snap.blocks, key=lambda b: (b.part, b.pose.z)):
        xy = [(x, y) for x, y, _z in _corners(b)[4:]]
        edge = "#222" if b.part else "#555"
        ax.add_patch(Polygon(xy, closed=True, fc=b.rgba, ec=edge, lw=0.4 if b.part else 0.6))
    for i, (robot, bones) in enumerate(snap.arms.items()):
        colour = ARM_COLOURS[i % len(ARM_COLOURS)]
        for (ax0, ay0, _), (bx, by, _) in bones:
            ax.plot([ax0, bx], [ay0, by], color=colour, lw=3, solid_capstyle="round")
        if bones:
            (x, y, _), _end = bones[0]
            ax.plot([x], [y], "o", ms=9, mfc="white", mec=colour, mew=2)
            (x, y, _), _end = bones[0]
            ax.annotate(
                robot,
                (x, y),
                xytext=(0, -11),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color=colour,
                weight="bold",
            )
    x0, x1, y0, y1 = extent
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("y (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"t = {snap.t_ns / NS:.1f} s, from above", fontsize=9)


def _perspective(ax: Any, snap: Snapshot, extent: tuple[float, float, float, float]) -> None:
    faces_of = ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))
    x0, x1, y0, y1 = extent
    for b in snap.blocks:
        # a 3D axes does not clip: a belt is cut off at the picture's edge by hand
        c = [(min(max(x, x0), x1), min(max(y, y0), y1), z) for x, y, z in _corners(b)]
        faces = [[c[i] for i in f] for f in faces_of]
        ax.add_collection3d(Poly3DCollection(faces, fc=b.rgba, ec="#333", lw=0.2))
    for i, (robot, bones) in enumerate(snap.arms.items()):
        colour = ARM_COLOURS[i % len(ARM_COLOURS)]
        for p0, p1 in bones:
            xs, ys, zs = zip(p0, p1, strict=True)
            ax.plot(xs, ys, zs, color=colour, lw=2.5)
        if bones:
            x, y, _ = bones[0][0]
            ax.text(x, y, 0.0, robot, color=colour, fontsize=7, weight="bold")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_zlim(0.0, 1.2)
    ax.set_box_aspect((x1 - x0, y1 - y0, 1.2))
    ax.view_init(elev=24, azim=-62)
    ax.tick_params(labelsize=6)
    ax.set_title(f"t = {snap.t_ns / NS:.1f} s, in perspective", fontsize=9)


def cell_figure(snaps: list[Snapshot]) -> Figure:
    """The snapshots side by side: from above on top, in perspective below."""
    n = max(len(snaps), 1)
    extent = _extent(snaps)
    fig = Figure(figsize=(4.4 * n, 9.0), layout="constrained")
    for i, snap in enumerate(snaps):
        _top(fig.add_subplot(2, n, i + 1), snap, extent)
        _perspective(fig.add_subplot(2, n, n + i + 1, projection="3d"), snap, extent)
    return fig


def _extent(snaps: list[Snapshot]) -> tuple[float, float, float, float]:
    """The square around the arms (and what they reach), which is where the work is."""
    pts = [p[:2] for s in snaps for bones in s.arms.values() for bone in bones for p in bone]
    if not pts:
        pts = [(b.pose.x, b.pose.y) for s in snaps for b in s.blocks]
    if not pts:
        return -1.0, 1.0, -1.0, 1.0
    x0, x1 = min(p[0] for p in pts) - MARGIN, max(p[0] for p in pts) + MARGIN
    y0, y1 = min(p[1] for p in pts) - MARGIN, max(p[1] for p in pts) + MARGIN
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - half, cx + half, cy - half, cy + half
