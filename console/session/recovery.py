"""Recovery of a session the console left unfinished, or whose count is unconfirmed.

SES-RECOVER-1: before anything else is done for that patient, the console reopens the unit the
session used (taking it over), makes sure it cannot fire (never clears a latched fault), and
establishes THAT session's count by the one rule (``count.judge_segment``) against the arm
snapshot the session recorded: the unit's count only when nothing shows the unit was reset or
used since; otherwise unconfirmed with bounds — never another session's count. The session is
recorded ``interrupted``. If the unit cannot be reached, or another unit answers, recovery
fails with what to do, and the session stays open for recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.events import Actor
from audit.sessions import SessionBook
from audit.values import SessionRecord, thaw
from console.session.count import ArmSnapshot, CountVerdict, judge_segment, read_unit
from console.session.states import UNFINISHED_STATES, SessionState
from device_drivers.errors import DeviceError
from device_drivers.interface import TherapyDevice

_UNFINISHED = frozenset(s.value for s in UNFINISHED_STATES)


class RecoveryFailed(Exception):
    """The unfinished session could not be closed; the message says what to do."""


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    session_id: str
    delivered: int | None  # None: unconfirmed, see the bounds
    unit_state_found: str
    unit_state_left: str
    action_taken: str
    count_status: str = "confirmed"
    delivered_min: int | None = None
    delivered_max: int | None = None


def needs_recovery(record: SessionRecord) -> bool:
    """Left unfinished by a console that stopped, or ended with its count awaiting recovery."""
    if record.state in _UNFINISHED:
        return True
    evidence = record.count_evidence or {}
    return (
        record.state == SessionState.FAULTED.value
        and record.count_status == "unconfirmed"
        and bool(evidence.get("recovery_pending"))
    )


def _elapsed_s(taken_at: str | None) -> float | None:
    if not taken_at:
        return None
    try:
        then = datetime.strptime(taken_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


def _last_confirmed(book: SessionBook, record: SessionRecord, closed: int) -> int:
    """The last count of the current segment the record holds from the unit (lower bound)."""
    evidence: Mapping[str, Any] = record.count_evidence or {}
    segment = evidence.get("segment") or {}
    if isinstance(segment.get("last_confirmed"), int):
        return int(segment["last_confirmed"])
    best = 0
    for event in book.events(record.session_id):
        details = event.data.get("details") if event.action == "session.transition" else None
        if not isinstance(details, Mapping):
            continue
        if event.data.get("action") in ("arm", "titrate"):
            best = 0  # a new segment starts
        elif isinstance(details.get("delivered"), int):
            best = max(best, int(details["delivered"]) - closed)
    return best


def recover_session(
    record: SessionRecord,
    open_driver: Callable[[], TherapyDevice],
    book: SessionBook,
    actor: Actor,
    *,
    speed: float = 1.0,
    cause: str | None = None,
) -> RecoveryOutcome:
    """Make the unit safe, establish the session's count, record ``interrupted``.

    ``open_driver`` opens the session's unit with takeover (it may be mid-treatment);
    ``speed`` is the simulator's speed factor (1 for a real unit), for the uptime check;
    ``cause`` what interrupted the session, when known (default: the console stopped).
    Raises RecoveryFailed.
    """
    if not needs_recovery(record):
        raise RecoveryFailed(
            f"session {record.session_id} is {record.state} with its count "
            f"{record.count_status or 'recorded'}: there is nothing to recover"
        )
    snapshot = ArmSnapshot.from_record(record.arm_snapshot) if record.arm_snapshot else None
    try:
        with open_driver() as driver:
            identity = driver.identify()
            if record.device_serial and identity.serial != record.device_serial:
                raise RecoveryFailed(
                    f"the session used unit {record.device_serial} but unit {identity.serial} "
                    "answered: connect the session's unit to recover it"
                )
            reading = read_unit(driver, snapshot)
    except DeviceError as exc:
        raise RecoveryFailed(
            f"cannot reach the unit of session {record.session_id} to make sure it is stopped "
            f"({exc}); check the link and try again — the session stays open until then"
        ) from exc
    closed_list = [int(s) for s in record.segments if isinstance(s, int)]
    closed = sum(closed_list)
    if record.state == SessionState.CONNECTED.value:
        # nothing was loaded or started: the unit's count is an earlier session's
        verdict = CountVerdict(0, 0, 0, {"source": "the session never armed the unit"})
    elif snapshot is None:
        target = int((record.parameters or {}).get("pulses") or 0)
        verdict = CountVerdict(
            None,
            0,
            target,
            {"why_unconfirmed": "the session recorded no arm snapshot to tell its count apart"},
        )
    else:
        elapsed = _elapsed_s(snapshot.taken_at)
        verdict = judge_segment(
            snapshot,
            reading,
            last_confirmed=_last_confirmed(book, record, closed),
            elapsed_unit_s=elapsed * speed if elapsed is not None else None,
        )
    confirmed = verdict.count is not None
    if cause is None:
        cause = (
            "the console stopped during the session"
            if record.state in _UNFINISHED
            else "recovery of a count left unconfirmed"
        )
    interruption: dict[str, Any] = {
        "cause": cause,
        "state_recorded": record.state,
        "unit_state_found": reading.found.value,
        "unit_action": reading.action,
        "unit_state_left": reading.status.state.value,
        "unit_faults": list(reading.status.faults),
        "segment_delivered": verdict.count,
    }
    count_status = "confirmed" if confirmed else "unconfirmed"
    evidence: dict[str, Any] = {
        "status": count_status,
        "closed_segments": closed_list,
        "segment": verdict.evidence,
        "recovery_pending": False,
        "recovered": {
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "earlier": thaw(record.count_evidence) if record.count_evidence else None,
        },
    }
    applicator = reading.applicator
    shots_after = (
        applicator.shots_used
        if applicator.present and applicator.serial == record.applicator_serial
        else None
    )
    if shots_after is None:
        evidence["applicator_after_unknown"] = (
            "no applicator fitted when recovering"
            if not applicator.present
            else f"another applicator ({applicator.serial}) is fitted than the session's"
        )
    low, high = closed + verdict.low, closed + verdict.high
    delivered = closed + verdict.count if verdict.count is not None else None
    book.update(
        actor,
        record.session_id,
        {
            "delivered": delivered,
            "count_status": count_status,
            "delivered_min": low,
            "delivered_max": high,
            "count_evidence": evidence,
            "segments": [*closed_list, verdict.count],
            "interruptions": [*thaw(record.interruptions), interruption],
            "end_reason": f"interrupted: {cause}"
            if record.state in _UNFINISHED
            else record.end_reason or "interrupted",
            "applicator_shots_after": shots_after,
        },
    )
    book.transition(
        actor,
        record.session_id,
        record.state,
        SessionState.INTERRUPTED.value,
        "recover",
        {
            "delivered": delivered,
            "count_status": count_status,
            "delivered_min": low,
            "delivered_max": high,
            **interruption,
        },
    )
    book.trail.checkpoint()
    return RecoveryOutcome(
        record.session_id,
        delivered,
        reading.found.value,
        reading.status.state.value,
        reading.action,
        count_status,
        low,
        high,
    )
