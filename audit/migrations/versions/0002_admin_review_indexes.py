"""Indexes for the admin console's audit review: the trail by user, sessions by unit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

The admin's audit table pages the trail newest first by (ts, seq) with filters in SQL. Time,
action and subject already have (…, ts) indexes; a filter by user needs (actor, ts), or a rare
user's events would be found by reading the whole trail. The filter by device serial joins the
sessions treated on that unit, found by ``treatment_sessions.device_serial``. Only indexes are
added; no row changes.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_actor_ts", "audit_events", ["actor", "ts"])
    op.create_index("ix_treatment_sessions_device_serial", "treatment_sessions", ["device_serial"])


def downgrade() -> None:
    raise RuntimeError("the clinical record is never downgraded; restore a backup instead")
