"""The clinic's record as SQLAlchemy 2 models: the one description of every table.

Alembic migrations (``audit/migrations``) create and change these tables; the models are used
inside ``audit/`` only, never handed out (repositories return frozen values). Timestamps are
RFC 3339 UTC text (as in the audit trail, sortable, identical on SQLite and PostgreSQL); JSON
fields are stored as canonical JSON text so that what is hashed is exactly what is stored.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from audit.canonical import canonical_json, to_json_value

TS = String(27)  # 2026-11-24T10:15:30.123456Z
#: INTEGER PRIMARY KEY on SQLite (a rowid alias: fast append and range scans), BIGINT elsewhere
BigId = BigInteger().with_variant(Integer(), "sqlite")


class CanonicalJSON(TypeDecorator[Any]):
    """A JSON value kept as canonical text; floats and other non-JSON values are refused."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return canonical_json(to_json_value(value, "record field"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('therapist', 'admin', 'service')", name="role"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the login name
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    #: a credential: in the trail's record projection only as "sha256:" + its hex digest
    password_hash: Mapped[str] = mapped_column(String(255), info={"credential": True})
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(TS)
    password_changed_at: Mapped[str] = mapped_column(TS)


class Patient(Base):
    """Pseudonymous: no names. ``pseudonym`` is the clinic's code shown on screen."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    birth_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[str] = mapped_column(TS)
    created_by: Mapped[str] = mapped_column(String(128))


class ProgrammeAssignment(Base):
    """A movement programme (template) assigned to a patient, progressed in phases."""

    __tablename__ = "programme_assignments"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'completed', 'stopped')", name="status"),
        CheckConstraint("current_phase >= 1", name="phase"),
        # at most one active programme per patient
        Index(
            "uq_programme_assignments_one_active",
            "patient_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    template_id: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[str] = mapped_column(String(32))
    current_phase: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(TS)
    updated_at: Mapped[str] = mapped_column(TS)


class ProgrammePhase(Base):
    """The history of a programme's phases: one row per phase entered."""

    __tablename__ = "programme_phases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("programme_assignments.id"), index=True)
    phase: Mapped[int] = mapped_column(Integer)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")


class TreatmentSession(Base):
    """Everything clinical-reference §5 says a session record holds."""

    __tablename__ = "treatment_sessions"
    __table_args__ = (
        CheckConstraint("modality IN ('epat', 'emtt')", name="modality"),
        CheckConstraint("pain_before IS NULL OR pain_before BETWEEN 0 AND 10", name="pain_before"),
        CheckConstraint("pain_after IS NULL OR pain_after BETWEEN 0 AND 10", name="pain_after"),
        Index("ix_treatment_sessions_patient_date", "patient_id", "session_date"),
        Index("ix_treatment_sessions_device_serial", "device_serial"),  # migration 0002
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    programme_id: Mapped[str | None] = mapped_column(ForeignKey("programme_assignments.id"))
    programme_phase: Mapped[int | None] = mapped_column(Integer)
    protocol_id: Mapped[str] = mapped_column(String(64))
    protocol_version: Mapped[str] = mapped_column(String(32))
    modality: Mapped[str] = mapped_column(String(8))
    therapist_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    session_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    device_model: Mapped[str | None] = mapped_column(String(64))
    device_serial: Mapped[str | None] = mapped_column(String(64))
    applicator_type: Mapped[str | None] = mapped_column(String(64))
    applicator_serial: Mapped[str | None] = mapped_column(String(64))
    applicator_shots_before: Mapped[int | None] = mapped_column(BigInteger)
    applicator_shots_after: Mapped[int | None] = mapped_column(BigInteger)
    parameters: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    validation: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    parameter_override_reason: Mapped[str | None] = mapped_column(Text)
    titrations: Mapped[Any] = mapped_column(CanonicalJSON)
    delivered: Mapped[int | None] = mapped_column(Integer)
    # migration 0003: how far the count is established (see audit/sessions.py)
    count_status: Mapped[str | None] = mapped_column(String(16))
    delivered_min: Mapped[int | None] = mapped_column(Integer)
    delivered_max: Mapped[int | None] = mapped_column(Integer)
    count_evidence: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    arm_snapshot: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    segments: Mapped[Any] = mapped_column(CanonicalJSON)
    interruptions: Mapped[Any] = mapped_column(CanonicalJSON)
    faults: Mapped[Any] = mapped_column(CanonicalJSON)
    end_reason: Mapped[str | None] = mapped_column(Text)
    screening_answers: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    screening: Mapped[Any] = mapped_column(CanonicalJSON, nullable=True)
    screening_decision: Mapped[str | None] = mapped_column(String(24))
    screening_override_reason: Mapped[str | None] = mapped_column(Text)
    pain_before: Mapped[int | None] = mapped_column(SmallInteger)
    pain_after: Mapped[int | None] = mapped_column(SmallInteger)
    treatment_points: Mapped[Any] = mapped_column(CanonicalJSON)
    adverse_events: Mapped[Any] = mapped_column(CanonicalJSON)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(TS)
    updated_at: Mapped[str] = mapped_column(TS)


class SessionEvent(Base):
    """What happened during a session, in order (each also an audit event, ``audit_seq``)."""

    __tablename__ = "session_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("treatment_sessions.id"), index=True)
    audit_seq: Mapped[int] = mapped_column(ForeignKey("audit_events.seq"))
    ts: Mapped[str] = mapped_column(TS)
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[Any] = mapped_column(CanonicalJSON)


class SessionSignature(Base):
    """An electronic signature: who, when, meaning, over which content hash (append-only).

    In the record projection (``audit/records.py``) a signature is of type ``signature`` with
    the keys audit-format.md names: ``record_type``/``record_id`` (the session), ``signer``,
    and ``content_hash`` = ``record_hash`` (SHA-256 of the session's projected fields at
    signing, migration 0004); the clinical content hash of 21 CFR 11.70 (``content_hash``
    here) appears there as ``session_content_hash``."""

    __tablename__ = "session_signatures"
    __table_args__ = (
        CheckConstraint("meaning IN ('performed', 'reviewed')", name="meaning"),
        {"info": {"record_constants": {"record_type": "session"}}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("treatment_sessions.id"), index=True, info={"record_key": "record_id"}
    )
    signer_id: Mapped[str] = mapped_column(ForeignKey("users.id"), info={"record_key": "signer"})
    signer_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[str] = mapped_column(TS)
    meaning: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(
        String(64), info={"record_key": "session_content_hash"}
    )
    audit_seq: Mapped[int] = mapped_column(ForeignKey("audit_events.seq"))
    record_hash: Mapped[str | None] = mapped_column(String(64), info={"record_key": "content_hash"})


class AuditEventRow(Base):
    """The audit trail (append-only: triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_subject_ts", "subject_type", "subject_id", "ts"),
        Index("ix_audit_events_ts", "ts"),
        Index("ix_audit_events_action_ts", "action", "ts"),
        Index("ix_audit_events_actor_ts", "actor", "ts"),  # migration 0002 (admin review)
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    v: Mapped[int] = mapped_column(SmallInteger)
    ts: Mapped[str] = mapped_column(TS)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    workstation: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(128))
    data: Mapped[str] = mapped_column(Text)  # canonical JSON text, exactly as hashed
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class SigningKey(Base):
    """Public keys of the installations that sign checkpoints (append-only)."""

    __tablename__ = "signing_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    workstation: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[str] = mapped_column(TS)
    audit_seq: Mapped[int] = mapped_column(ForeignKey("audit_events.seq"))


#: tables whose rows are never updated or deleted (enforced by the database itself)
APPEND_ONLY_TABLES = ("audit_events", "signing_keys", "session_signatures", "session_events")
AUDIT_COLUMNS = (
    "seq",
    "v",
    "ts",
    "actor",
    "role",
    "workstation",
    "action",
    "subject_type",
    "subject_id",
    "data",
    "prev",
    "hash",
)
