"""The PackML state machine of one robot, as a data table on ``transitions``.

The 17 states are ``bus.enums.PackMLState``; Execute is a hierarchical state
whose children are the skills (``bus.enums.ExecStep``), so "what the arm is
doing" is part of the machine rather than a flag beside it. The transitions
are the module-level table ``TRANSITIONS`` below: the machine is built from it,
docs draw it with ``markdown_table()`` and tests walk it.

Beside the state the machine holds the robot's **unit mode** (OPC 30050 /
ISA-TR88.00.02: Production, Maintenance, Manual). The mode is not a state: it
says what the states are for. It changes by its own command, and only in a
wait state where nothing moves (``MODE_STATES``); the data table
``MODE_CHANGES`` lists, per mode, the modes it may go to and from which
states. In a mode other than Production a robot takes no production work
(the agent declines calls for bids and refuses awards).

The machine itself is pure (no time, no messages): the agent decides when an
acting state is complete and what to send when the state changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from transitions import MachineError
from transitions.extensions import HierarchicalMachine

from bus.enums import ExecStep, PackMLCommand, PackMLState, UnitMode
from robots.errors import CommandRefused

log = logging.getLogger(__name__)

# transitions logs every state entry and exit at INFO: thousands of lines a
# minute at 24 Hz. Quiet it unless an application has chosen a level for it.
if logging.getLogger("transitions").level == logging.NOTSET:
    logging.getLogger("transitions").setLevel(logging.WARNING)

S = PackMLState
E = ExecStep

Place = PackMLState | ExecStep
"""Where the machine is: a PackML state, or an ``ExecStep`` meaning that sub-state of Execute."""


class Transition(NamedTuple):
    """One row of the table: ``trigger`` takes the machine from any of ``sources`` to ``dest``.

    A source ``Execute`` covers all of its sub-states. ``resume`` is a guard:
    the row is only taken when the step kept on leaving Execute (for Hold or
    Suspend) is that step, so Unhold brings the arm back to the skill it left.
    """

    trigger: str
    sources: tuple[Place, ...]
    dest: Place
    resume: ExecStep | None = None


SC = "sc"
"""The state-complete trigger: an acting state has done its work."""
COMPLETE = "complete"
"""The internal trigger from Execute to Completing (production is over)."""

COMMAND_TRIGGER: dict[PackMLCommand, str] = {cmd: cmd.value.lower() for cmd in PackMLCommand}
"""The trigger name of each PackML command."""


def step_trigger(step: ExecStep) -> str:
    """The internal trigger that moves Execute into sub-state ``step``."""
    return f"step_{step.value}"


ACTING: frozenset[PackMLState] = frozenset(
    {
        S.RESETTING,
        S.STARTING,
        S.COMPLETING,
        S.HOLDING,
        S.UNHOLDING,
        S.SUSPENDING,
        S.UNSUSPENDING,
        S.STOPPING,
        S.ABORTING,
        S.CLEARING,
    }
)
"""States that do something and then complete by themselves (the ``sc`` trigger)."""

_BUSY_STEPS = (E.PICK, E.PLACE, E.FASTEN, E.INSPECT)

TRANSITIONS: tuple[Transition, ...] = (
    # ------------------------------------------------------------ commands
    Transition("reset", (S.STOPPED, S.COMPLETE), S.RESETTING),
    Transition("start", (S.IDLE,), S.STARTING),
    Transition(
        "stop",
        (
            S.IDLE,
            S.STARTING,
            S.EXECUTE,
            S.COMPLETING,
            S.COMPLETE,
            S.RESETTING,
            S.HOLDING,
            S.HELD,
            S.UNHOLDING,
            S.SUSPENDING,
            S.SUSPENDED,
            S.UNSUSPENDING,
        ),
        S.STOPPING,
    ),
    Transition("hold", (S.EXECUTE, S.SUSPENDED), S.HOLDING),
    Transition("unhold", (S.HELD,), S.UNHOLDING),
    Transition("suspend", (S.EXECUTE,), S.SUSPENDING),
    Transition("unsuspend", (S.SUSPENDED,), S.UNSUSPENDING),
    Transition("abort", tuple(s for s in S if s not in (S.ABORTING, S.ABORTED)), S.ABORTING),
    Transition("clear", (S.ABORTED,), S.CLEARING),
    # ------------------------------------------------------------ state complete
    Transition(SC, (S.RESETTING,), S.IDLE),
    Transition(SC, (S.STARTING,), S.EXECUTE),
    Transition(SC, (S.COMPLETING,), S.COMPLETE),
    Transition(SC, (S.HOLDING,), S.HELD),
    Transition(SC, (S.SUSPENDING,), S.SUSPENDED),
    *(Transition(SC, (S.UNHOLDING, S.UNSUSPENDING), step, resume=step) for step in ExecStep),
    Transition(SC, (S.STOPPING,), S.STOPPED),
    Transition(SC, (S.ABORTING,), S.ABORTED),
    Transition(SC, (S.CLEARING,), S.STOPPED),
    # ------------------------------------------------------------ inside Execute
    Transition(COMPLETE, (S.EXECUTE,), S.COMPLETING),
    Transition(step_trigger(E.PICK), (E.WAITING,), E.PICK),
    Transition(step_trigger(E.PLACE), (E.PICK,), E.PLACE),
    Transition(step_trigger(E.FASTEN), (E.WAITING,), E.FASTEN),
    Transition(step_trigger(E.INSPECT), (E.WAITING,), E.INSPECT),
    Transition(step_trigger(E.WAITING), _BUSY_STEPS, E.WAITING),
)
"""The whole PackML machine of a robot agent, one row per trigger and destination."""


MODE_STATES: frozenset[PackMLState] = frozenset({S.STOPPED, S.IDLE, S.HELD, S.COMPLETE, S.ABORTED})
"""The wait states in which the unit mode may change (TR88 leaves the choice to the unit, and
names the wait states): never in an acting state or Execute, where the arm may be moving, and
not in Suspended, a pause for an external cause that ends by itself."""

M = UnitMode


class ModeChange(NamedTuple):
    """One row of the mode table: from mode ``src`` to ``dst``, allowed in ``states``."""

    src: UnitMode
    dst: UnitMode
    states: frozenset[PackMLState]


MODE_CHANGES: tuple[ModeChange, ...] = (
    ModeChange(M.PRODUCTION, M.MAINTENANCE, MODE_STATES),
    ModeChange(M.PRODUCTION, M.MANUAL, MODE_STATES),
    ModeChange(M.MAINTENANCE, M.PRODUCTION, MODE_STATES),
    ModeChange(M.MAINTENANCE, M.MANUAL, MODE_STATES),
    ModeChange(M.MANUAL, M.PRODUCTION, MODE_STATES),
    ModeChange(M.MANUAL, M.MAINTENANCE, MODE_STATES),
)
"""Every mode change a robot accepts and the states it accepts it in."""

ModeListener = Callable[[UnitMode, UnitMode, str], None]
"""Called as ``listener(src, dst, reason)`` after every change of mode."""


def mode_markdown_table() -> str:
    """The mode table as Markdown, for the docs."""
    lines = ["| mode | to | allowed in |", "|---|---|---|"]
    for row in MODE_CHANGES:
        states = ", ".join(s.value for s in PackMLState if s in row.states)
        lines.append(f"| {row.src.value} | {row.dst.value} | {states} |")
    return "\n".join(lines)


def describe(place: Place) -> str:
    """A place as people read it: ``Idle``, ``Execute (pick)``."""
    if isinstance(place, ExecStep):
        return f"{S.EXECUTE.value} ({place.value})"
    return place.value


def _name(place: Place) -> PackMLState | str:
    """The machine's name for a place (nested states are ``EXECUTE_<STEP>``)."""
    if isinstance(place, ExecStep):
        return f"{S.EXECUTE.name}_{place.name}"
    return place


def markdown_table() -> str:
    """The table as Markdown, for the docs (one line per row)."""
    lines = ["| trigger | from | to | guard |", "|---|---|---|---|"]
    for row in TRANSITIONS:
        srcs = ", ".join(describe(s) for s in row.sources)
        guard = f"left Execute in {row.resume.value}" if row.resume is not None else ""
        lines.append(f"| {row.trigger} | {srcs} | {describe(row.dest)} | {guard} |")
    return "\n".join(lines)


class _Model:
    """The object ``transitions`` decorates with ``state`` and the trigger methods."""

    state: Place


ChangeListener = Callable[[Place, Place, str], None]
"""Called as ``listener(src, dst, reason)`` after every change of place."""


class PackML:
    """One robot's PackML machine: commands in, state and step out.

    Pure: no clock, no world. ``command`` applies a PackML command or raises
    ``CommandRefused`` naming the command and the state; the agent calls
    ``state_complete`` when an acting state has done its work and
    ``enter_step`` as its skill moves on.
    """

    def __init__(
        self,
        *,
        on_change: ChangeListener | None = None,
        on_mode: ModeListener | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_mode = on_mode
        self._mode = UnitMode.PRODUCTION
        self._kept: ExecStep = E.WAITING
        self._model = _Model()
        states: list[Any] = [s for s in S if s is not S.EXECUTE]
        states.append({"name": S.EXECUTE, "children": ExecStep, "initial": E.WAITING})
        self._machine = HierarchicalMachine(
            model=self._model,
            states=states,
            initial=S.STOPPED,
            auto_transitions=False,
            queued=True,
            send_event=True,
        )
        for row in TRANSITIONS:
            conditions: list[str | Callable[..., bool | None]] = []
            if row.resume is not None:
                conditions.append(self._guard(row.resume))
            self._machine.add_transition(
                row.trigger,
                [_name(s) for s in row.sources],
                _name(row.dest),
                conditions=conditions,
            )

    def _guard(self, step: ExecStep) -> Callable[[Any], bool]:
        """A side-effect-free guard: was ``step`` the skill running when Execute was left?"""

        def resumes(_event: Any) -> bool:
            return self._kept is step

        return resumes

    # ------------------------------------------------------------ reading

    @property
    def place(self) -> Place:
        """The exact place: a PackML state, or the ExecStep when in Execute."""
        return self._model.state

    @property
    def state(self) -> PackMLState:
        """The PackML state (Execute for any of its sub-states)."""
        place = self._model.state
        return S.EXECUTE if isinstance(place, ExecStep) else place

    @property
    def step(self) -> ExecStep:
        """The sub-state of Execute; ``waiting`` outside Execute."""
        place = self._model.state
        return place if isinstance(place, ExecStep) else E.WAITING

    @property
    def kept_step(self) -> ExecStep:
        """The skill step that was running when Execute was last left (resumed by Unhold)."""
        return self._kept

    @property
    def acting(self) -> bool:
        """Whether the state is an acting one that completes by itself."""
        return self.state in ACTING

    @property
    def mode(self) -> UnitMode:
        """The unit mode (Production until changed)."""
        return self._mode

    def mode_allowed(self, mode: UnitMode) -> bool:
        """Whether the mode may change to ``mode`` now (the same mode is always allowed)."""
        if mode is self._mode:
            return True
        return any(
            r.src is self._mode and r.dst is mode and self.state in r.states for r in MODE_CHANGES
        )

    def mode_refusal(self, mode: UnitMode) -> str:
        """Why a change to ``mode`` is refused now ("" if it is allowed)."""
        if self.mode_allowed(mode):
            return ""
        return (
            f"mode {mode.value} refused in state {describe(self.place)} (mode {self._mode.value})"
        )

    def set_mode(self, mode: UnitMode, *, reason: str = "") -> None:
        """Change the unit mode; ``CommandRefused`` unless ``MODE_CHANGES`` allows it now."""
        why = self.mode_refusal(mode)
        if why:
            raise CommandRefused(f"mode {mode.value}", describe(self.place), why)
        old, self._mode = self._mode, mode
        if old is not mode:
            log.debug("mode %s -> %s (%s)", old.value, mode.value, reason)
            if self._on_mode is not None:
                self._on_mode(old, mode, reason or f"mode {mode.value}")

    def allowed(self, cmd: PackMLCommand) -> bool:
        """Whether ``cmd`` is legal in the current state."""
        return self._may(COMMAND_TRIGGER[cmd])

    def refusal(self, cmd: PackMLCommand) -> str:
        """Why ``cmd`` is refused now ("" if it is allowed)."""
        if self.allowed(cmd):
            return ""
        return f"{cmd.value} refused in state {describe(self.place)}"

    @staticmethod
    def table() -> tuple[Transition, ...]:
        """The transition table the machine is built from."""
        return TRANSITIONS

    # ------------------------------------------------------------ changing

    def command(self, cmd: PackMLCommand, *, reason: str = "") -> None:
        """Apply a PackML command; raise ``CommandRefused`` if the state does not allow it."""
        why = reason or f"command {cmd.value}"
        self._fire(COMMAND_TRIGGER[cmd], why, label=cmd.value)

    def state_complete(self, *, reason: str = "state complete") -> None:
        """End the current acting state (PackML's SC)."""
        self._fire(SC, reason, label="state complete")

    def complete(self, *, reason: str = "production complete") -> None:
        """Leave Execute for Completing."""
        self._fire(COMPLETE, reason, label="complete")

    def enter_step(self, step: ExecStep, *, reason: str = "") -> None:
        """Move Execute to sub-state ``step`` (no-op if already there)."""
        if self.place is step:
            return
        self._fire(step_trigger(step), reason or f"step {step.value}", label=f"step {step.value}")

    # ------------------------------------------------------------ internals

    def _may(self, trigger: str) -> bool:
        return bool(getattr(self._model, f"may_{trigger}")())

    def _fire(self, trigger: str, reason: str, *, label: str) -> None:
        src = self.place
        refused = CommandRefused(label, describe(src), f"{label} refused in state {describe(src)}")
        if not self._may(trigger):
            raise refused
        try:
            getattr(self._model, trigger)()
        except MachineError as exc:
            # the table and the guard disagree: still a refusal, never a crash
            raise refused from exc
        dst = self.place
        if isinstance(src, ExecStep) and not isinstance(dst, ExecStep):
            self._kept = src
        if dst != src:
            log.debug("%s -> %s (%s)", describe(src), describe(dst), reason)
            if self._on_change is not None:
                self._on_change(src, dst, reason)
