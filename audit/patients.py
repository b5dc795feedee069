"""Patients: pseudonymous (a clinic code and a birth date, no names); reads are audited."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date

import structlog
from sqlalchemy import select

from audit.canonical import utc_now_ts
from audit.errors import AuditDataError, DuplicateRecord, NotFound
from audit.events import Actor, Subject
from audit.records import append_rows
from audit.schema import Patient
from audit.trail import MIN_REASON_CHARS, AuditTrail
from audit.values import PatientRecord

#: through the standard library: silent until the application configures logging
log = structlog.wrap_logger(logging.getLogger("audit.patients"))
_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")


def _record(patient: Patient) -> PatientRecord:
    return PatientRecord(
        patient_id=patient.id,
        pseudonym=patient.pseudonym,
        birth_date=patient.birth_date,
        created_at=patient.created_at,
    )


def _check_pseudonym(pseudonym: str) -> str:
    if not isinstance(pseudonym, str) or not _PSEUDONYM.fullmatch(pseudonym):
        raise AuditDataError(
            f"pseudonym {pseudonym!r} must be 2–64 letters, digits or . _ - (a clinic code such "
            "as KN-0042, never a name)"
        )
    return pseudonym


def _check_birth_date(birth_date: date) -> date:
    if not isinstance(birth_date, date) or birth_date > date.today():
        raise AuditDataError("the birth date must be a date, not in the future")
    if birth_date.year < 1900:
        raise AuditDataError("the birth date is before 1900; check the year")
    return birth_date


class PatientRegistry:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def create(self, actor: Actor, pseudonym: str, birth_date: date) -> PatientRecord:
        _check_pseudonym(pseudonym)
        _check_birth_date(birth_date)
        patient_id = f"pt-{secrets.token_hex(8)}"
        with self.trail.write() as session:
            if session.scalar(select(Patient).where(Patient.pseudonym == pseudonym)):
                raise DuplicateRecord(f"there already is a patient {pseudonym!r}")
            patient = Patient(
                id=patient_id,
                pseudonym=pseudonym,
                birth_date=birth_date,
                created_at=utc_now_ts(),
                created_by=actor.user_id,
            )
            session.add(patient)
            append_rows(
                self.trail,
                session,
                actor,
                "patient.created",
                Subject("patient", patient_id),
                {"pseudonym": pseudonym, "birth_date": birth_date.isoformat()},
                [("patient", patient)],
            )
        log.info("patient_created", patient_id=patient_id, by=actor.user_id)
        return _record(patient)

    def change(
        self,
        actor: Actor,
        patient_id: str,
        reason: str,
        *,
        pseudonym: str | None = None,
        birth_date: date | None = None,
    ) -> PatientRecord:
        """Correct a patient's data; the event carries the old and new values and why."""
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_CHARS:
            raise AuditDataError(f"a change needs a reason of at least {MIN_REASON_CHARS} chars")
        with self.trail.write() as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise NotFound(f"there is no patient {patient_id!r}")
            changes: dict[str, dict[str, str]] = {}
            if pseudonym is not None and pseudonym != patient.pseudonym:
                _check_pseudonym(pseudonym)
                changes["pseudonym"] = {"from": patient.pseudonym, "to": pseudonym}
                patient.pseudonym = pseudonym
            if birth_date is not None and birth_date != patient.birth_date:
                _check_birth_date(birth_date)
                changes["birth_date"] = {
                    "from": patient.birth_date.isoformat(),
                    "to": birth_date.isoformat(),
                }
                patient.birth_date = birth_date
            if not changes:
                raise AuditDataError("nothing to change: the values given are the current ones")
            append_rows(
                self.trail,
                session,
                actor,
                "patient.changed",
                Subject("patient", patient_id),
                {"changes": changes, "reason": reason.strip()},
                [("patient", patient)],
            )
            return _record(patient)

    def view(self, actor: Actor, patient_id: str) -> PatientRecord:
        """A read of the patient's record: audited (``patient.viewed``)."""
        with self.trail.write() as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise NotFound(f"there is no patient {patient_id!r}")
            self.trail.append_in(session, actor, "patient.viewed", Subject("patient", patient_id))
        log.info("patient_viewed", patient_id=patient_id, by=actor.user_id)
        return _record(patient)

    def find(self, pseudonym_prefix: str, limit: int = 50) -> list[PatientRecord]:
        """Patients whose pseudonym starts with the text (a list of codes, not a record read)."""
        escaped = pseudonym_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.trail.store.read() as session:
            rows = session.scalars(
                select(Patient)
                .where(Patient.pseudonym.like(f"{escaped}%", escape="\\"))
                .order_by(Patient.pseudonym)
                .limit(limit)
            )
            return [_record(p) for p in rows]

    def exists(self, patient_id: str) -> bool:
        with self.trail.store.read() as session:
            return session.get(Patient, patient_id) is not None
