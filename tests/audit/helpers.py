"""Shared helpers for the audit tests: actors, filling a trail, and an attacker's raw access."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg

from audit import Actor, AuditTrail, RecordStore, Subject
from audit.schema import APPEND_ONLY_TABLES

WORKSTATION = "ws-test"
SYSTEM = Actor.system(WORKSTATION)
ADMIN = Actor("admin1", "admin", WORKSTATION)
THERAPIST = Actor("th1", "therapist", WORKSTATION)
THERAPIST2 = Actor("th2", "therapist", WORKSTATION)
SERVICE = Actor("svc1", "service", WORKSTATION)
SESSION = Subject("session", "se-0001")


def fill(trail: AuditTrail, n: int, actor: Actor = THERAPIST, start: int = 0) -> list[Any]:
    """Append ``n`` varied events (non-ASCII text, nested data, booleans, nulls)."""
    events = []
    for i in range(start, start + n):
        events.append(
            trail.append(
                actor,
                "device.params_set",
                SESSION,
                {
                    "i": i,
                    "parameters": {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000},
                    "note": "Knie rechts, Schmerz ↓ — ok" if i % 2 else None,
                    "ok": i % 3 == 0,
                    "points": [{"x": 120, "y": 340}],
                },
            )
        )
    return events


def attacker_sql(store: RecordStore, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run SQL on the database as someone with file or superuser access would: with the
    append-only triggers out of the way (the database itself refuses it otherwise)."""
    if store.dialect == "sqlite":
        conn = sqlite3.connect(store.url.database, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in APPEND_ONLY_TABLES:
                for verb in ("update", "delete"):
                    conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
            for sql, params in statements:
                conn.execute(sql.replace("%s", "?"), tuple(params))
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    url = store.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        # a superuser switches every trigger off, foreign keys included
        conn.execute("SET session_replication_role = replica")
        for sql, params in statements:
            conn.execute(sql, tuple(params))
        conn.commit()


def rows(store: RecordStore) -> list[tuple[Any, ...]]:
    with store.connection() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT seq, v, ts, actor, role, workstation, action, subject_type, subject_id, "
                "data, prev, hash FROM audit_events ORDER BY seq"
            )
        ]


def clinic_record(trail: AuditTrail) -> dict[str, str]:
    """A realistic record made through the real APIs: users (one failed login), a patient
    corrected, a programme moved to phase 2, a session treated, documented, signed
    ("performed" and "reviewed") and amended, and a second session left unsigned. Returns
    the ids: user, patient, programme, phase, session, signature, open_session."""
    from datetime import date

    from audit.patients import PatientRegistry
    from audit.programmes import ProgrammeBook
    from audit.sessions import SessionBook
    from audit.users import UserDirectory

    users = UserDirectory(trail)
    users.add(SYSTEM, "admin1", "Ada Admin", "admin", "$argon2id$v=19$m=65536$fake-admin")
    users.add(ADMIN, "th1", "Thérèse Ødegård", "therapist", "$argon2id$v=19$m=65536$fake-th1")
    users.add(ADMIN, "th2", "Theo Zwei", "therapist", "$argon2id$v=19$m=65536$fake-th2")
    users.record_login_failure(WORKSTATION, "th1", "wrong_password", 5)
    users.record_login(THERAPIST)
    patients = PatientRegistry(trail)
    patient = patients.create(THERAPIST, "KN-0042", date(1971, 3, 9))
    patients.change(THERAPIST, patient.patient_id, "typo in the clinic code", pseudonym="KN-0043")
    programmes = ProgrammeBook(trail)
    programme = programmes.assign(THERAPIST, patient.patient_id, "knee-pfp", "1", date(2026, 1, 5))
    programmes.change_phase(THERAPIST, programme.programme_id, 2, date(2026, 1, 19), "progressing")
    book = SessionBook(trail)

    def treated(day: int) -> str:
        record = book.create(
            THERAPIST,
            patient_id=patient.patient_id,
            protocol_id="knee-pfp-epat",
            protocol_version="1",
            modality="epat",
            session_date=date(2026, 1, day),
            programme_id=programme.programme_id,
            programme_phase=2,
        )
        sid = record.session_id
        book.record_event(THERAPIST, sid, "screening.decided", {"decision": "allow"})
        book.update(
            THERAPIST,
            sid,
            {
                "screening_decision": "allow",
                "parameters": {"pressure_cbar": 250, "frequency_hz": 8, "pulses": 2000},
                "device_model": "EPAT-sim",
                "device_serial": "EP-0001",
                "applicator_shots_before": 1200,
            },
        )
        book.transition(THERAPIST, sid, "screening", "delivering", "start", {})
        book.update(
            THERAPIST,
            sid,
            {
                "delivered": 2000,
                "segments": [2000],
                "applicator_shots_after": 3200,
                "count_status": "confirmed",
                "count_evidence": {"unit_count": 2000, "reset_seen": False},
            },
        )
        book.transition(THERAPIST, sid, "delivering", "completed", "complete", {})
        book.update(
            THERAPIST,
            sid,
            {
                "pain_before": 6,
                "pain_after": 3,
                "adverse_events": ["reddening"],
                "treatment_points": [{"x": 120, "y": 340}],
                "notes": "Knie rechts, gut vertragen",
            },
        )
        book.transition(THERAPIST, sid, "completed", "documented", "document", {})
        return sid

    signed = treated(12)
    signature = book.sign(THERAPIST, "Thérèse Ødegård", signed, "performed")
    book.transition(THERAPIST, signed, "documented", "signed", "sign", {})  # as the workflow does
    book.sign(THERAPIST2, "Theo Zwei", signed, "reviewed")
    corrects = book.events(signed)[-1].audit_seq
    book.amend(
        THERAPIST,
        signed,
        {"adverse_events": ["reddening", "petechiae"]},
        "petechiae seen at the next visit",
        corrects,
    )
    open_session = treated(19)
    trail.checkpoint()
    with trail.store.read() as session:
        from sqlalchemy import select

        from audit.schema import ProgrammePhase, SessionSignature

        phase = session.scalars(select(ProgrammePhase.id).order_by(ProgrammePhase.id)).first()
        signature_id = session.scalars(
            select(SessionSignature.id).where(SessionSignature.audit_seq == signature.audit_seq)
        ).one()
    return {
        "user": "th1",
        "patient": patient.patient_id,
        "programme": programme.programme_id,
        "programme_phase": str(phase),
        "session": signed,
        "signature": str(signature_id),
        "open_session": open_session,
    }
