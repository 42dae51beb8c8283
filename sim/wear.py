"""Degrading faults in physics: a drifting joint, a worn gripper, a worn belt.

A wear is not a blow but a process: it starts at its fault's time and grows
every control tick, and the world feels it the way a worn machine is felt.

* ``joint_drift``: the drive of one joint holds it further and further off its
  command (``Arm.drift``), by Brownian motion with drift: every tick
  ``e += mu dt + s sqrt(dt) N(0, 1)`` with ``mu = TRIP_RAD / duration`` and
  ``s^2 = NOISE_SHARE mu TRIP_RAD``, so the mean time to reach the trip is
  ``duration`` (the first passage of a drifted Brownian motion is inverse
  Gaussian, its spread ``sqrt(NOISE_SHARE)`` of the mean, about 32%). The
  links, the tool and a carried part really are off: grasps land off centre
  and parts are set down off their pose. Where ``|e|`` reaches ``TRIP_RAD`` the
  drive trips (a following-error alarm) and the robot faults for good.
* ``gripper_wear``: the share ``p`` of carries in which the part slips (soon
  after the grasp) or drops (later, lifted and moving) grows linearly from 0
  to the fault's share over its duration, and stays. At each grasp one draw
  decides, and when: the grasp constraint is released, and the part falls.
* ``belt_wear``: the belt's speed falls linearly to ``1 - share`` of the cell
  file's over the duration, and stays.

Maintenance (``WorldAct.maintain``, ``Wear.maintain``) takes a wear off: the
joint's error, the gripper's slip share and the belt's lost speed go back to
none, and a later fault on the same target starts again from new. A drive
that already tripped is not undone: the robot failed for good before it was
maintained, and stays failed.

The wear draws from its own random stream, seeded by the world's seed, so a
run with wear replays the same and a run without draws nothing from it.
``Tracking`` is what the drives report: every arm's tracking errors once per
sim second, with the encoders' noise, for the supervisor's health model.
"""

from __future__ import annotations

import dataclasses
import math
import random

from bus.faults import wear_share
from bus.messages import JointTracking
from bus.simtime import NS
from sim.arms import Arm
from sim.conveyors import Conveyor

TRIP_RAD = 0.02
"""A drive trips on a following error this large (radians): about 1 cm at the tool of an arm
reaching 0.5 m."""
NOISE_SHARE = 0.1
"""The Brownian part of a drift, as a share of ``mu TRIP_RAD`` (the failure time's squared
coefficient of variation)."""
TRACKING_NOISE_RAD = 1e-4
"""The encoders' noise on a reported tracking error (one sigma, radians)."""
REPORT_NS = NS
"""Tracking errors are reported this often (sim time)."""
SLIP_TICKS = (2, 30)
"""A worn gripper lets go this many control ticks after the grasp (drawn uniformly): early is
a slip at the pick, late a drop on the way."""


@dataclasses.dataclass(slots=True)
class JointDrift:
    """One joint's growing tracking error."""

    robot: str
    joint: int
    """Index into the arm's joints (0-based)."""
    mu: float
    """Drift, radians per second."""
    sigma: float
    """Brownian scale, radians per sqrt(second)."""
    error: float = 0.0


@dataclasses.dataclass(slots=True)
class Ramp:
    """A share that grows linearly from 0 at ``start_ns`` to ``full`` at ``end_ns``, then stays."""

    start_ns: int
    end_ns: int
    full: float

    def at(self, t_ns: int) -> float:
        """The share at sim time ``t_ns``."""
        return self.full * wear_share(t_ns, self.start_ns, self.end_ns)


class Wear:
    """Every wear under way in one world, stepped after each control tick."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"wear/{seed}")
        self.drifts: dict[str, JointDrift] = {}
        self.grippers: dict[str, Ramp] = {}
        self.belts: dict[str, tuple[Ramp, float]] = {}
        """Worn belts: the loss of speed, and the cell file's speed."""
        self.letting_go: dict[str, tuple[str, int]] = {}
        """Worn grippers that will lose the part they hold: (part, ticks left)."""
        self._holding: dict[str, str] = {}
        self._last_ns = -1
        self.tripped: set[str] = set()
        """Robots whose drive tripped: maintenance does not undo a hard failure."""

    def joint_drift(self, arm: Arm, joint: int, duration_s: float) -> int:
        """Start a drift of ``arm``'s joint (1-based; 0: drawn); the joint that drifts."""
        if joint == 0:
            joint = self.rng.randint(1, len(arm.arm_joints))
        mu = TRIP_RAD / duration_s
        sigma = math.sqrt(NOISE_SHARE * mu * TRIP_RAD)
        self.drifts[arm.name] = JointDrift(arm.name, joint - 1, mu, sigma)
        return joint

    def gripper_wear(self, robot: str, now_ns: int, duration_ns: int, share: float) -> None:
        """Start wearing ``robot``'s gripper."""
        self.grippers[robot] = Ramp(now_ns, now_ns + duration_ns, share)

    def belt_wear(self, belt: Conveyor, now_ns: int, duration_ns: int, share: float) -> None:
        """Start wearing ``belt``."""
        old = self.belts.get(belt.name)
        nominal = old[1] if old else belt.speed
        self.belts[belt.name] = (Ramp(now_ns, now_ns + duration_ns, share), nominal)

    def step(
        self, now_ns: int, arms: dict[str, Arm], belts: dict[str, Conveyor]
    ) -> tuple[list[str], list[str]]:
        """After a control tick: every wear grows. Returns (robots whose drive tripped,
        robots whose worn gripper lets go of its part now)."""
        dt = (now_ns - self._last_ns) / NS if self._last_ns >= 0 else 0.0
        self._last_ns = now_ns
        tripped = []
        for name in sorted(self.drifts):
            d = self.drifts[name]
            if dt > 0:
                d.error += d.mu * dt + d.sigma * math.sqrt(dt) * self.rng.gauss(0.0, 1.0)
            arm = arms.get(name)
            if arm is not None:
                arm.drift[d.joint] = max(-TRIP_RAD, min(TRIP_RAD, d.error))
            if abs(d.error) >= TRIP_RAD:
                tripped.append(name)
                self.tripped.add(name)
                del self.drifts[name]  # the drive is off: the error is frozen where it tripped
        for name, (ramp, nominal) in sorted(self.belts.items()):
            if name in belts:
                belts[name].set_speed(nominal * (1.0 - ramp.at(now_ns)))
        return tripped, self._grippers(now_ns, arms)

    def maintain(self, name: str, arms: dict[str, Arm], belts: dict[str, Conveyor]) -> list[str]:
        """``name`` (a robot or a belt) was maintained: what wear was taken off it.

        A drifting joint is held on its command again, a worn gripper grips as new, a worn
        belt runs at the cell file's speed. A robot whose drive tripped keeps its fault
        (``tripped`` is returned: nothing was undone).
        """
        if name in self.tripped:
            return ["tripped"]
        done = []
        drift = self.drifts.pop(name, None)
        arm = arms.get(name)
        if drift is not None:
            done.append(f"joint {drift.joint + 1}")
        if arm is not None and any(arm.drift):
            arm.drift[:] = [0.0] * len(arm.drift)
        if self.grippers.pop(name, None) is not None:
            done.append("gripper")
        self.letting_go.pop(name, None)
        worn = self.belts.pop(name, None)
        if worn is not None:
            done.append("belt")
            if name in belts:
                belts[name].set_speed(worn[1])
        return done

    def _grippers(self, now_ns: int, arms: dict[str, Arm]) -> list[str]:
        """Draw at each new grasp of a worn gripper; count down to the lets-go."""
        out = []
        for name in sorted(self.grippers):
            arm = arms.get(name)
            if arm is None:
                continue
            held, before = arm.holding, self._holding.get(name, "")
            self._holding[name] = held
            if held and held != before and self.rng.random() < self.grippers[name].at(now_ns):
                self.letting_go[name] = (held, self.rng.randint(*SLIP_TICKS))
            going = self.letting_go.get(name)
            if going is None:
                continue
            part, left = going
            if arm.holding != part:
                del self.letting_go[name]  # it was set down (or lost) first
            elif left <= 1:
                del self.letting_go[name]
                out.append(name)
            else:
                self.letting_go[name] = (part, left - 1)
        return out


class Tracking:
    """The drives' reports: every arm's tracking errors, with encoder noise, once a second."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"tracking/{seed}")
        self._next_ns = REPORT_NS

    def readings(self, now_ns: int, arms: dict[str, Arm]) -> tuple[JointTracking, ...]:
        """The reports due at ``now_ns`` (none between two whole sim seconds)."""
        if now_ns < self._next_ns:
            return ()
        self._next_ns = (now_ns // REPORT_NS + 1) * REPORT_NS
        return tuple(
            JointTracking(
                name,
                tuple(
                    round(d + self.rng.gauss(0.0, TRACKING_NOISE_RAD), 7) for d in arms[name].drift
                ),
            )
            for name in sorted(arms)
        )
