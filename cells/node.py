"""Process entry points for one participant: ``python -m cells.node agent|supervisor CELL``.

The launcher starts these for ``--processes``; a user can start them by hand
on other terminals or hosts (README, "Running the processes separately").
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import zmq

from bus.endpoints import Endpoints
from bus.errors import LightsoutError
from bus.participant import run_participant
from bus.trust import LiveKeys, NodeKeys
from cells.lifecycle import watch_parent
from cells.resume import write_off
from cells.schema import load_cell
from robots import RobotAgent
from supervisor import POLICIES, Supervisor


def run_agent(
    cell_path: str,
    robot: str,
    endpoint: str,
    *,
    mount: str = "",
    keys: Path | None = None,
    calibration: str = "",
) -> int:
    """Run one robot agent until the clock shuts the cell down.

    ``mount``: the robot was built in the cell and stands on this mount point
    (its spec comes from the cell's robot-building recipe). ``keys``: sign
    with the robot's participant key pair from that keys directory (tcp). ``calibration``:
    the cell runs at events fidelity, timed from this calibration file.
    """
    cell = load_cell(cell_path)
    if calibration:
        from cells.calibrate import with_calibration_file

        cell = with_calibration_file(cell, calibration)
    spec = None
    if mount:
        try:
            spec = cell.built_robot(robot, mount)
        except KeyError:
            raise LightsoutError(f"{cell_path}: no mount {mount!r} or no robot recipe") from None
    elif robot not in {r.name for r in cell.robots}:
        raise LightsoutError(f"{cell_path}: no robot {robot!r} in this cell")
    node = NodeKeys.load(keys, cell.name, robot) if keys else None
    agent = RobotAgent(cell, robot, spec=spec)
    agent.setup()
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return run_participant(agent, ctx, Endpoints.from_base(endpoint), hub=False, node=node)
    finally:
        agent.shutdown()
        ctx.term()


def run_supervisor(
    cell_path: str,
    endpoint: str,
    *,
    seed: int,
    out: Path | None,
    restore: bool = False,
    policy: str = "",
    keys: Path | None = None,
    resume: bool = False,
) -> int:
    """Run the supervisor until the clock shuts the cell down (``restore``: from its journal;
    ``resume``: and write off what a rebuilt world does not hold, ``cells.resume``;
    ``policy``: the allocation policy, "" for the cell file's).

    ``keys``: serve the cell bus with the supervisor's participant key pair,
    admitting only the cell's participant keys (tcp).
    """
    cell = load_cell(cell_path)
    node = NodeKeys.load(keys, cell.name, "supervisor") if keys else None
    live = LiveKeys(keys, cell.name, server=False) if keys else None
    if (restore or resume) and out is None:
        raise LightsoutError("--restore needs --out (the run directory with the journal)")
    sup = Supervisor(cell, seed=seed, out_dir=out, restore=restore or resume, policy=policy)
    if resume:
        write_off(sup)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return run_participant(
            sup,
            ctx,
            Endpoints.from_base(endpoint),
            hub=True,
            peers=len(cell.robots),
            node=node,
            live=live,
        )
    finally:
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one participant."""
    ap = argparse.ArgumentParser(prog="python -m cells.node")
    ap.add_argument("role", choices=["agent", "supervisor"])
    ap.add_argument("cell")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--robot")
    ap.add_argument("--mount", default="", help="the robot was built here, on this mount point")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--restore", action="store_true", help="carry on from the journal in --out")
    ap.add_argument("--policy", default="", choices=["", *sorted(POLICIES)])
    ap.add_argument("--keys", type=Path, help="keys directory: sign with this participant's key")
    ap.add_argument("--resume", action="store_true", help="--restore for lightsout resume")
    ap.add_argument(
        "--calibration", default="", help="agent: events fidelity, timed from this calibration"
    )
    ap.add_argument(
        "--parent", type=int, help="exit as soon as this process (the launcher) is gone"
    )
    args = ap.parse_args(argv)
    os.umask(0o077)  # the journal and results are the owner's alone
    if args.keys:
        from bus.trust import reload_all

        signal.signal(signal.SIGHUP, lambda signum, frame: reload_all())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.parent is not None:
        if os.getppid() != args.parent:
            return 4  # the launcher died before this process came up
        watch_parent(args.parent)
    try:
        if args.role == "agent":
            if not args.robot:
                ap.error("agent needs --robot")
            return run_agent(
                args.cell,
                args.robot,
                args.endpoint,
                mount=args.mount,
                keys=args.keys,
                calibration=args.calibration,
            )
        return run_supervisor(
            args.cell,
            args.endpoint,
            seed=args.seed,
            out=args.out,
            restore=args.restore,
            policy=args.policy,
            keys=args.keys,
            resume=args.resume,
        )
    except LightsoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
