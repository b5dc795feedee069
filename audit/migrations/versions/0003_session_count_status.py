"""The session's count: whether it is established, its bounds, its evidence, the arm snapshot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Issue 10: a session's delivered count is the unit's own, read after delivery ends by any path.
When it cannot be established (the unit unreachable, or reset or used since and the cross-checks
disagree) the record says so: ``count_status`` "unconfirmed", ``delivered`` NULL, and the bounds
``delivered_min``/``delivered_max``. ``count_evidence`` says what the count rests on;
``arm_snapshot`` is what the unit reported at arm (serial, uptime, event-log index, applicator
serial and counter), so recovery can tell that session's count from a later one's. Columns are
only added, all nullable: existing rows keep their meaning (and their signatures verify, since
a session's signed content leaves these fields out while they are NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("treatment_sessions") as batch:
        batch.add_column(sa.Column("count_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("delivered_min", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("delivered_max", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("count_evidence", sa.Text(), nullable=True))
        batch.add_column(sa.Column("arm_snapshot", sa.Text(), nullable=True))


def downgrade() -> None:
    raise RuntimeError("the clinical record is never downgraded; restore a backup instead")
