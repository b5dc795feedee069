"""Recovery of a session the console left unfinished (killed, power cut) — SES-RECOVER-1.

Before anything else is done for that patient, the console reconnects to the unit the session
used, makes sure it is stopped (never clears a latched fault), reads the delivered count and
records the session as ``interrupted`` with that count. If the unit cannot be reached, or it is
another unit, recovery fails with what to do, and the session stays unfinished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from audit.events import Actor
from audit.sessions import SessionBook
from audit.values import SessionRecord
from console.session.states import SessionState
from device_drivers.errors import DeviceError
from device_drivers.interface import TherapyDevice, UnitState


class RecoveryFailed(Exception):
    """The unfinished session could not be closed; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    session_id: str
    delivered: int
    unit_state_found: str
    unit_state_left: str
    action_taken: str


def _stop_unit(driver: TherapyDevice) -> tuple[str, str, int]:
    """Leave the unit unable to fire; returns (state found, action, segment count)."""
    found = driver.status()
    if found.state in (UnitState.DELIVERING, UnitState.PAUSED):
        return found.state.value, "stop", driver.stop()
    if found.state in (UnitState.ARMED, UnitState.COMPLETE, UnitState.READY):
        return found.state.value, "disarm", driver.disarm()
    return found.state.value, "none", found.delivered  # IDLE keeps the last count; FAULT latched


def recover_session(
    record: SessionRecord,
    open_driver: Callable[[], TherapyDevice],
    book: SessionBook,
    actor: Actor,
) -> RecoveryOutcome:
    """Stop the unit, read its count, record ``interrupted``; raises RecoveryFailed."""
    try:
        with open_driver() as driver:
            identity = driver.identify()
            if record.device_serial and identity.serial != record.device_serial:
                raise RecoveryFailed(
                    f"the session used unit {record.device_serial} but unit {identity.serial} "
                    "answered: connect the session's unit to recover it"
                )
            found, action, segment = _stop_unit(driver)
            left = driver.status()
            shots_after = driver.applicator().shots_used
    except DeviceError as exc:
        raise RecoveryFailed(
            f"cannot reach the unit of session {record.session_id} to make sure it is stopped "
            f"({exc}); check the link and try again — the session stays open until then"
        ) from exc
    if record.state == SessionState.CONNECTED.value:
        segment = 0  # nothing was loaded or started: the unit's count is an earlier session's
    closed = [int(s) for s in record.segments]
    delivered = sum(closed) + segment
    interruption: dict[str, Any] = {
        "cause": "the console stopped during the session",
        "state_recorded": record.state,
        "unit_state_found": found,
        "unit_action": action,
        "unit_state_left": left.state.value,
        "unit_faults": list(left.faults),
        "segment_delivered": segment,
    }
    book.update(
        actor,
        record.session_id,
        {
            "delivered": delivered,
            "segments": [*closed, segment],
            "interruptions": [*record.interruptions, interruption],
            "end_reason": "interrupted: the console stopped during the session",
            "applicator_shots_after": shots_after,
        },
    )
    book.transition(
        actor,
        record.session_id,
        record.state,
        SessionState.INTERRUPTED.value,
        "recover",
        {"delivered": delivered, **interruption},
    )
    book.trail.checkpoint()
    return RecoveryOutcome(record.session_id, delivered, found, left.state.value, action)
