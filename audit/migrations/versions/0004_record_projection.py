"""The record projection: each existing record row stated once in the trail (record.backfilled).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Issue 11: ``audit verify`` replays the trail's ``data.record`` objects and compares them with
the record tables (audit-format.md, "Record projection"). Rows written before this revision have
no such event, so this migration appends one ``record.backfilled`` event per row as it stands
(actor ``system``, with the reason), users, patients, programmes and phases, sessions, then
signatures, each table in id order. The rows are thereby vouched for as they were found at the
upgrade: the migration cannot know whether they had been altered before it.

Signatures gain ``record_hash``: SHA-256 of the canonical fields of the session they sign, as the
trail records it at the signature (the format's ``content_hash``); for an existing signature
that is the session as backfilled just before it. Setting it is the one change this migration
makes to the append-only signatures table (its guard is lifted for that statement only).

When the upgrade is given the installation's checkpoint signer (``audit.migrate.upgrade``), a
signed checkpoint follows every 1,000th event and the last backfilled one, as the trail's own
rule says; without it the console's next checkpoint (after every session) signs them.

The projection is made by ``audit.records`` from the tables' columns as they are at this
revision (columns a later revision adds are read as NULL here and backfilled by that revision).
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from audit.canonical import canonical_json, event_canonical_text, to_json_value, utc_now_ts
from audit.records import BACKFILL_ACTION, RECORD_TABLES, fields_hash, record_of, row_projection

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ORDER = ("user", "patient", "programme", "programme_phase", "session", "signature")
REASON = "record projection introduced (migration 0004): the row as it stood at the upgrade"
PAGE = 1_000
_SQLITE_GUARD = (
    "CREATE TRIGGER session_signatures_no_update BEFORE UPDATE ON session_signatures "
    "BEGIN SELECT RAISE(ABORT, 'session_signatures is append-only: UPDATE refused'); END"
)


class _Row:
    """A row read at this revision; a column of the models that does not exist yet is None."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values.get(name)


class _Chain:
    """Appends events to the trail exactly as ``AuditTrail`` does (same canonical text)."""

    def __init__(self, conn: sa.Connection, signer: Any, workstation: str) -> None:
        self.conn = conn
        self.signer = signer
        self.workstation = workstation
        head = conn.execute(sa.text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"))
        row = head.first()
        self.seq: int = 0 if row is None else int(row[0])
        self.hash: str = "0" * 64 if row is None else str(row[1])
        self.unsigned = False

    def append(self, action: str, subject: tuple[str, str], data: dict[str, Any]) -> None:
        seq, ts = self.seq + 1, utc_now_ts()
        data_json = canonical_json(to_json_value(data, "data"))
        canonical = event_canonical_text(
            seq=seq,
            ts=ts,
            actor="system",
            role="system",
            workstation=self.workstation,
            action=action,
            subject_type=subject[0],
            subject_id=subject[1],
            data_json=data_json,
            prev=self.hash,
        )
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        self.conn.execute(
            sa.text(
                "INSERT INTO audit_events (seq, v, ts, actor, role, workstation, action, "
                "subject_type, subject_id, data, prev, hash) VALUES (:seq, 1, :ts, 'system', "
                "'system', :ws, :action, :st, :si, :data, :prev, :hash)"
            ),
            {
                "seq": seq,
                "ts": ts,
                "ws": self.workstation,
                "action": action,
                "st": subject[0],
                "si": subject[1],
                "data": data_json,
                "prev": self.hash,
                "hash": digest,
            },
        )
        self.seq, self.hash = seq, digest
        self.unsigned = action != "audit.checkpoint"
        if self.unsigned and seq % 1000 == 0:
            self.checkpoint()

    def checkpoint(self) -> None:
        if self.signer is None or not self.unsigned:
            return
        data = {
            "head_seq": self.seq,
            "head_hash": self.hash,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(self.seq, self.hash),
        }
        self.append("audit.checkpoint", ("trail", "audit"), data)


def _rows(conn: sa.Connection, kind: str) -> Any:
    """The rows of one record table in id order, a page at a time (columns existing now)."""
    table = RECORD_TABLES[kind]
    existing = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    columns = [c for c in table.columns if c.name in existing]
    (key,) = table.primary_key.columns
    last: Any = None
    while True:
        query = sa.select(*columns).order_by(key).limit(PAGE)
        if last is not None:
            query = query.where(key > last)
        page = [dict(r._mapping) for r in conn.execute(query)]
        if not page:
            return
        yield from (_Row(values) for values in page)
        last = page[-1][key.name]


def _set_record_hashes(conn: sa.Connection) -> None:
    """record_hash of every existing signature: the hash of its session as backfilled."""
    sessions: dict[str, str] = {}
    updates = []
    for row in _rows(conn, "signature"):
        if row.session_id not in sessions:
            found = conn.execute(
                sa.select(RECORD_TABLES["session"]).where(
                    RECORD_TABLES["session"].c.id == row.session_id
                )
            ).first()
            sessions[row.session_id] = fields_hash(row_projection("session", found))
        updates.append({"i": row.id, "h": sessions[row.session_id]})
    if not updates:
        return
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.execute(sa.text("DROP TRIGGER session_signatures_no_update"))
    else:
        conn.execute(
            sa.text("ALTER TABLE session_signatures DISABLE TRIGGER session_signatures_append_only")
        )
    conn.execute(sa.text("UPDATE session_signatures SET record_hash = :h WHERE id = :i"), updates)
    if sqlite:
        conn.execute(sa.text(_SQLITE_GUARD))
    else:
        conn.execute(
            sa.text("ALTER TABLE session_signatures ENABLE TRIGGER session_signatures_append_only")
        )


def upgrade() -> None:
    op.add_column("session_signatures", sa.Column("record_hash", sa.String(64), nullable=True))
    conn = op.get_bind()
    attributes = context.config.attributes
    _set_record_hashes(conn)
    chain = _Chain(conn, attributes.get("signer"), attributes.get("workstation") or "db-upgrade")
    for kind in ORDER:
        for row in _rows(conn, kind):
            record = record_of(kind, row)
            chain.append(
                BACKFILL_ACTION,
                (kind, record["id"]),
                {"record": record, "migration": revision, "reason": REASON},
            )
    chain.checkpoint()


def downgrade() -> None:
    raise RuntimeError("the clinical record is never downgraded; restore a backup instead")
