"""Movement-programme assignments: which template a patient follows, in which phase, since when.

A patient has at most one active programme (the database enforces it too); phases only move
forward; every change is audited with its date.
"""

from __future__ import annotations

import secrets
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.canonical import utc_now_ts
from audit.errors import AuditDataError, DuplicateRecord, NotFound
from audit.events import Actor, Subject
from audit.records import append_rows
from audit.schema import Patient, ProgrammeAssignment, ProgrammePhase
from audit.trail import MIN_REASON_CHARS, AuditTrail
from audit.values import PhaseRecord, ProgrammeRecord

END_STATUSES = ("completed", "stopped")


def _record(session: Session, a: ProgrammeAssignment) -> ProgrammeRecord:
    phases = session.scalars(
        select(ProgrammePhase)
        .where(ProgrammePhase.assignment_id == a.id)
        .order_by(ProgrammePhase.id)
    )
    return ProgrammeRecord(
        programme_id=a.id,
        patient_id=a.patient_id,
        template_id=a.template_id,
        template_version=a.template_version,
        current_phase=a.current_phase,
        status=a.status,
        start_date=a.start_date,
        end_date=a.end_date,
        end_reason=a.end_reason,
        phases=tuple(PhaseRecord(p.phase, p.started_on, p.ended_on, p.note) for p in phases),
    )


class ProgrammeBook:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def assign(
        self,
        actor: Actor,
        patient_id: str,
        template_id: str,
        template_version: str,
        start_date: date,
        *,
        phase: int = 1,
    ) -> ProgrammeRecord:
        if type(phase) is not int or phase < 1:
            raise AuditDataError("the phase must be a whole number from 1")
        if not template_id or not template_version:
            raise AuditDataError("give the programme template id and version")
        programme_id = f"pg-{secrets.token_hex(8)}"
        now = utc_now_ts()
        with self.trail.write() as session:
            if session.get(Patient, patient_id) is None:
                raise NotFound(f"there is no patient {patient_id!r}")
            if self._active(session, patient_id) is not None:
                raise DuplicateRecord(
                    "the patient already has an active programme; complete or stop it first"
                )
            assignment = ProgrammeAssignment(
                id=programme_id,
                patient_id=patient_id,
                template_id=template_id,
                template_version=template_version,
                current_phase=phase,
                status="active",
                start_date=start_date,
                created_at=now,
                updated_at=now,
            )
            session.add(assignment)
            first_phase = ProgrammePhase(
                assignment_id=programme_id, phase=phase, started_on=start_date, note=""
            )
            session.add(first_phase)
            append_rows(
                self.trail,
                session,
                actor,
                "programme.assigned",
                Subject("programme", programme_id),
                {
                    "patient_id": patient_id,
                    "template_id": template_id,
                    "template_version": template_version,
                    "phase": phase,
                    "start_date": start_date.isoformat(),
                },
                [("programme", assignment), ("programme_phase", first_phase)],
            )
            session.flush()
            return _record(session, assignment)

    def change_phase(
        self, actor: Actor, programme_id: str, phase: int, on: date, note: str = ""
    ) -> ProgrammeRecord:
        with self.trail.write() as session:
            assignment = self._load_active(session, programme_id)
            if type(phase) is not int or phase <= assignment.current_phase:
                raise AuditDataError(
                    f"the new phase must be a whole number above the current phase "
                    f"{assignment.current_phase}"
                )
            current = session.scalars(
                select(ProgrammePhase)
                .where(ProgrammePhase.assignment_id == programme_id)
                .order_by(ProgrammePhase.id.desc())
            ).first()
            if current is not None:
                if on < current.started_on:
                    raise AuditDataError("the new phase cannot start before the current one")
                current.ended_on = on
            old = assignment.current_phase
            assignment.current_phase = phase
            assignment.updated_at = utc_now_ts()
            new_phase = ProgrammePhase(
                assignment_id=programme_id, phase=phase, started_on=on, note=note
            )
            session.add(new_phase)
            rows = [("programme", assignment), ("programme_phase", new_phase)]
            if current is not None:
                rows.append(("programme_phase", current))
            append_rows(
                self.trail,
                session,
                actor,
                "programme.phase_changed",
                Subject("programme", programme_id),
                {"from": old, "to": phase, "on": on.isoformat(), "note": note},
                rows,
            )
            session.flush()
            return _record(session, assignment)

    def end(
        self, actor: Actor, programme_id: str, status: str, on: date, reason: str
    ) -> ProgrammeRecord:
        if status not in END_STATUSES:
            raise AuditDataError(f"a programme ends as one of {', '.join(END_STATUSES)}")
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_CHARS:
            raise AuditDataError(f"ending a programme needs a reason of {MIN_REASON_CHARS}+ chars")
        with self.trail.write() as session:
            assignment = self._load_active(session, programme_id)
            if on < assignment.start_date:
                raise AuditDataError("a programme cannot end before it started")
            assignment.status = status
            assignment.end_date = on
            assignment.end_reason = reason.strip()
            assignment.updated_at = utc_now_ts()
            current = session.scalars(
                select(ProgrammePhase)
                .where(ProgrammePhase.assignment_id == programme_id)
                .order_by(ProgrammePhase.id.desc())
            ).first()
            rows: list[tuple[str, object]] = [("programme", assignment)]
            if current is not None and current.ended_on is None:
                current.ended_on = on
                rows.append(("programme_phase", current))
            append_rows(
                self.trail,
                session,
                actor,
                "programme.ended",
                Subject("programme", programme_id),
                {"status": status, "on": on.isoformat(), "reason": reason.strip()},
                rows,
            )
            session.flush()
            return _record(session, assignment)

    def get(self, programme_id: str) -> ProgrammeRecord:
        with self.trail.store.read() as session:
            assignment = session.get(ProgrammeAssignment, programme_id)
            if assignment is None:
                raise NotFound(f"there is no programme {programme_id!r}")
            return _record(session, assignment)

    def active_for(self, patient_id: str) -> ProgrammeRecord | None:
        with self.trail.store.read() as session:
            assignment = self._active(session, patient_id)
            return None if assignment is None else _record(session, assignment)

    def for_patient(self, patient_id: str) -> list[ProgrammeRecord]:
        with self.trail.store.read() as session:
            rows = session.scalars(
                select(ProgrammeAssignment)
                .where(ProgrammeAssignment.patient_id == patient_id)
                .order_by(ProgrammeAssignment.start_date, ProgrammeAssignment.created_at)
            ).all()
            return [_record(session, a) for a in rows]

    def all(self) -> list[ProgrammeRecord]:
        with self.trail.store.read() as session:
            rows = session.scalars(select(ProgrammeAssignment).order_by(ProgrammeAssignment.id))
            return [_record(session, a) for a in rows.all()]

    @staticmethod
    def _active(session: Session, patient_id: str) -> ProgrammeAssignment | None:
        return session.scalars(
            select(ProgrammeAssignment).where(
                ProgrammeAssignment.patient_id == patient_id,
                ProgrammeAssignment.status == "active",
            )
        ).first()

    @staticmethod
    def _load_active(session: Session, programme_id: str) -> ProgrammeAssignment:
        assignment = session.get(ProgrammeAssignment, programme_id)
        if assignment is None:
            raise NotFound(f"there is no programme {programme_id!r}")
        if assignment.status != "active":
            raise AuditDataError(f"the programme is {assignment.status}, not active")
        return assignment
