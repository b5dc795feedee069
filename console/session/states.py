"""Session states and the transition table: the one place that says what may follow what.

Every transition the workflow makes is looked up here first; a pair not in the table is refused
whatever the preconditions say. The table mirrors the brief:

    screening → planned → connected → armed → delivering ⇄ paused
        → completed | stopped | aborted | faulted → documented → signed

plus ``interrupted`` for a session the console found unfinished after it died, or that ended
with its count unconfirmed (recovery).
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    SCREENING = "screening"
    PLANNED = "planned"
    CONNECTED = "connected"
    ARMED = "armed"
    DELIVERING = "delivering"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAULTED = "faulted"
    INTERRUPTED = "interrupted"
    DOCUMENTED = "documented"
    SIGNED = "signed"


class Action(StrEnum):
    PLAN = "plan"
    CONNECT = "connect"
    ARM = "arm"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    TITRATE = "titrate"
    COMPLETE = "complete"  # the unit reached its target
    STOP = "stop"  # planned end before the target
    ABORT = "abort"  # therapist ends it, reason required
    EMERGENCY_STOP = "emergency_stop"  # immediate, latched
    FAULT = "fault"  # device fault, lost link, watchdog
    RECOVER = "recover"  # found unfinished after a console crash
    DOCUMENT = "document"
    SIGN = "sign"


S, A = SessionState, Action

#: (state, action) → next state. Anything absent is refused.
TRANSITIONS: dict[tuple[SessionState, Action], SessionState] = {
    (S.SCREENING, A.PLAN): S.PLANNED,
    (S.PLANNED, A.PLAN): S.PLANNED,  # re-plan before connecting
    (S.PLANNED, A.CONNECT): S.CONNECTED,
    (S.PLANNED, A.ABORT): S.ABORTED,
    (S.CONNECTED, A.ARM): S.ARMED,
    (S.CONNECTED, A.ABORT): S.ABORTED,
    (S.CONNECTED, A.FAULT): S.FAULTED,
    (S.CONNECTED, A.EMERGENCY_STOP): S.FAULTED,
    (S.ARMED, A.START): S.DELIVERING,
    (S.ARMED, A.ABORT): S.ABORTED,
    (S.ARMED, A.FAULT): S.FAULTED,
    (S.ARMED, A.EMERGENCY_STOP): S.FAULTED,
    (S.DELIVERING, A.PAUSE): S.PAUSED,
    (S.DELIVERING, A.COMPLETE): S.COMPLETED,
    (S.DELIVERING, A.STOP): S.STOPPED,
    (S.DELIVERING, A.ABORT): S.ABORTED,
    (S.DELIVERING, A.FAULT): S.FAULTED,
    (S.DELIVERING, A.EMERGENCY_STOP): S.FAULTED,
    (S.PAUSED, A.RESUME): S.DELIVERING,
    (S.PAUSED, A.TITRATE): S.PAUSED,
    (S.PAUSED, A.STOP): S.STOPPED,
    (S.PAUSED, A.ABORT): S.ABORTED,
    (S.PAUSED, A.FAULT): S.FAULTED,
    (S.PAUSED, A.EMERGENCY_STOP): S.FAULTED,
    (S.SCREENING, A.ABORT): S.ABORTED,
    # A faulted session whose count is unconfirmed is recovered too (SES-RECOVER-1).
    **{
        (s, A.RECOVER): S.INTERRUPTED
        for s in (S.CONNECTED, S.ARMED, S.DELIVERING, S.PAUSED, S.FAULTED)
    },
    **{
        (s, A.DOCUMENT): S.DOCUMENTED
        for s in (S.COMPLETED, S.STOPPED, S.ABORTED, S.FAULTED, S.INTERRUPTED)
    },
    (S.DOCUMENTED, A.DOCUMENT): S.DOCUMENTED,  # amend before signing
    (S.DOCUMENTED, A.SIGN): S.SIGNED,
}

#: States in which the unit may hold energy or fire: a device worker must be running.
LIVE_STATES = frozenset({S.ARMED, S.DELIVERING, S.PAUSED})
#: States in which delivery has ended and the record awaits documentation.
ENDED_STATES = frozenset({S.COMPLETED, S.STOPPED, S.ABORTED, S.FAULTED, S.INTERRUPTED})
#: States a crashed console must recover from before anything else is done for the patient.
UNFINISHED_STATES = frozenset({S.CONNECTED, S.ARMED, S.DELIVERING, S.PAUSED})


def allowed_actions(state: SessionState) -> frozenset[Action]:
    return frozenset(action for (s, action) in TRANSITIONS if s is state)


def next_state(state: SessionState, action: Action) -> SessionState | None:
    """The state ``action`` leads to from ``state``, or None if the table forbids it."""
    return TRANSITIONS.get((state, action))
