"""A built robot's commissioning check, as the supervisor takes it: logged, and the robot
taken into the fleet if it passed (``cells.commission`` runs the check in the world)."""

from __future__ import annotations

from bus.cellspec import CellSpec, RobotSpec
from bus.messages import CommissionCheck
from supervisor.builds import Builds
from supervisor.eventlog import EventLog


def checked(
    check: CommissionCheck,
    now: int,
    cell: CellSpec,
    builds: Builds,
    events: EventLog,
    counters: dict[str, int],
) -> RobotSpec | None:
    """Log the evidence of ``check``; the spec of the robot that joins the fleet if it passed
    (its agent is being started), else None. A check of no arm being built is counted as an
    unexpected message."""
    evidence = {
        "sweep_rad": check.sweep_rad,
        "tcp_mm": check.tcp_mm,
        "lift_mm": check.lift_mm,
        "detail": check.detail,
    }
    built = builds.checked(check.robot, evidence, check.passed and check.joining, now)
    if built is None:
        counters["unexpected_messages"] += 1
        return None
    events.write(
        now,
        "robot_commission_check",
        robot=check.robot,
        serial=built.serial,
        passed=check.passed,
        **evidence,
    )
    if not (check.passed and check.joining):
        return None
    events.write(now, "robot_added", robot=check.robot, serial=built.serial, mount=built.mount)
    return cell.built_robot(check.robot, built.mount)
