"""The initial record store: users, patients, programmes, sessions, signatures, audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Self-contained (does not import the models): a migration must keep meaning what it meant when it
was written. The append-only guard is created here, in the database itself: triggers that refuse
UPDATE and DELETE (and TRUNCATE on PostgreSQL) of the audit trail, the signing keys, the
signatures and the session events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_events", "signing_keys", "session_signatures", "session_events")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.String(27)


def _id(name: str = "id") -> sa.Column:
    return sa.Column(name, BigId, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("v", sa.SmallInteger(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("workstation", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_audit_events_subject_ts", "audit_events", ["subject_type", "subject_id", "ts"]
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_action_ts", "audit_events", ["action", "ts"])

    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("workstation", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("audit_seq", BigId, sa.ForeignKey("audit_events.seq"), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("password_changed_at", TS, nullable=False),
        sa.CheckConstraint("role IN ('therapist', 'admin', 'service')", name="ck_users_role"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "programme_assignments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("template_version", sa.String(32), nullable=False),
        sa.Column("current_phase", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'stopped')", name="ck_programme_assignments_status"
        ),
        sa.CheckConstraint("current_phase >= 1", name="ck_programme_assignments_phase"),
    )
    op.create_index("ix_programme_assignments_patient_id", "programme_assignments", ["patient_id"])
    op.create_index(
        "uq_programme_assignments_one_active",
        "programme_assignments",
        ["patient_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "programme_phases",
        _id(),
        sa.Column(
            "assignment_id",
            sa.String(64),
            sa.ForeignKey("programme_assignments.id"),
            nullable=False,
        ),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_programme_phases_assignment_id", "programme_phases", ["assignment_id"])
    op.create_table(
        "treatment_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column(
            "programme_id", sa.String(64), sa.ForeignKey("programme_assignments.id"), nullable=True
        ),
        sa.Column("programme_phase", sa.Integer(), nullable=True),
        sa.Column("protocol_id", sa.String(64), nullable=False),
        sa.Column("protocol_version", sa.String(32), nullable=False),
        sa.Column("modality", sa.String(8), nullable=False),
        sa.Column("therapist_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("device_model", sa.String(64), nullable=True),
        sa.Column("device_serial", sa.String(64), nullable=True),
        sa.Column("applicator_type", sa.String(64), nullable=True),
        sa.Column("applicator_serial", sa.String(64), nullable=True),
        sa.Column("applicator_shots_before", sa.BigInteger(), nullable=True),
        sa.Column("applicator_shots_after", sa.BigInteger(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("validation", sa.Text(), nullable=True),
        sa.Column("parameter_override_reason", sa.Text(), nullable=True),
        sa.Column("titrations", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=True),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("interruptions", sa.Text(), nullable=False),
        sa.Column("faults", sa.Text(), nullable=False),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("screening_answers", sa.Text(), nullable=True),
        sa.Column("screening", sa.Text(), nullable=True),
        sa.Column("screening_decision", sa.String(24), nullable=True),
        sa.Column("screening_override_reason", sa.Text(), nullable=True),
        sa.Column("pain_before", sa.SmallInteger(), nullable=True),
        sa.Column("pain_after", sa.SmallInteger(), nullable=True),
        sa.Column("treatment_points", sa.Text(), nullable=False),
        sa.Column("adverse_events", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("modality IN ('epat', 'emtt')", name="ck_treatment_sessions_modality"),
        sa.CheckConstraint(
            "pain_before IS NULL OR pain_before BETWEEN 0 AND 10",
            name="ck_treatment_sessions_pain_before",
        ),
        sa.CheckConstraint(
            "pain_after IS NULL OR pain_after BETWEEN 0 AND 10",
            name="ck_treatment_sessions_pain_after",
        ),
    )
    op.create_index(
        "ix_treatment_sessions_patient_date", "treatment_sessions", ["patient_id", "session_date"]
    )
    op.create_table(
        "session_events",
        _id(),
        sa.Column(
            "session_id", sa.String(64), sa.ForeignKey("treatment_sessions.id"), nullable=False
        ),
        sa.Column("audit_seq", BigId, sa.ForeignKey("audit_events.seq"), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    )
    op.create_index("ix_session_events_session_id", "session_events", ["session_id"])
    op.create_table(
        "session_signatures",
        _id(),
        sa.Column(
            "session_id", sa.String(64), sa.ForeignKey("treatment_sessions.id"), nullable=False
        ),
        sa.Column("signer_id", sa.String(128), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("signer_name", sa.String(200), nullable=False),
        sa.Column("signed_at", TS, nullable=False),
        sa.Column("meaning", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("audit_seq", BigId, sa.ForeignKey("audit_events.seq"), nullable=False),
        sa.CheckConstraint(
            "meaning IN ('performed', 'reviewed')", name="ck_session_signatures_meaning"
        ),
    )
    op.create_index("ix_session_signatures_session_id", "session_signatures", ["session_id"])
    _create_append_only_guards()


def _create_append_only_guards() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )
        return
    op.execute(
        """
        CREATE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change()"
        )


def downgrade() -> None:
    raise RuntimeError("the clinical record is never downgraded; restore a backup instead")
