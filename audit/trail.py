"""Appending to the audit trail: one writer at a time, one event per commit, signed checkpoints.

Every change to the record appends its audit event in the *same* transaction (``append_in``),
so the record and its trail commit together or not at all; ``append`` is the stand-alone form.
An event is acknowledged (returned) only after its transaction committed.

Appends run on the transaction's own DB-API cursor with two statements (read the head, insert):
the hot path of a clinic's record, kept close to a raw insert (see ``bench/audit_append.py``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from audit.canonical import (
    FORMAT_VERSION,
    GENESIS_HASH,
    canonical_json,
    event_canonical_text,
    to_json_value,
    utc_now_ts,
)
from audit.errors import AuditDataError, AuditError, NotFound, SigningKeyError
from audit.events import CHECKPOINT_ACTION, Actor, AuditEvent, Subject, check_action
from audit.keys import CheckpointSigner
from audit.schema import AUDIT_COLUMNS, SigningKey
from audit.store import AFTER_COMMIT as _AFTER_COMMIT
from audit.store import RecordStore, describe
from audit.witness import record_witness

CHECKPOINT_EVERY = 1000
#: through the standard library: silent until the application configures logging
log = structlog.wrap_logger(logging.getLogger("audit.trail"))
MIN_REASON_CHARS = 10
TRAIL_SUBJECT = Subject("trail", "audit")
_WRITE_MARK = "audit_write_transaction"
_COLUMNS = ", ".join(AUDIT_COLUMNS)


@dataclass(frozen=True, slots=True)
class TrailHead:
    seq: int
    hash: str


class AuditTrail:
    """The clinic's audit trail in one ``RecordStore``.

    ``signer`` is this installation's checkpoint key; ``workstation`` its id. A checkpoint is
    appended automatically right after every event whose seq is a multiple of
    ``checkpoint_every`` (so there are never more than that many events between two), and
    whenever ``checkpoint()`` is called (after every completed or aborted session).
    """

    def __init__(
        self,
        store: RecordStore,
        signer: CheckpointSigner,
        workstation: str,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        witness_path: Path | None = None,
    ) -> None:
        if checkpoint_every < 2:
            raise AuditDataError("checkpoint_every must be at least 2")
        self.store = store
        self.signer = signer
        self.system = Actor.system(workstation)
        self.workstation = workstation
        self.checkpoint_every = checkpoint_every
        self.witness_path = witness_path
        self._placeholder = "?" if store.dialect == "sqlite" else "%s"
        marks = ", ".join([self._placeholder] * len(AUDIT_COLUMNS))
        self._insert_sql = f"INSERT INTO audit_events ({_COLUMNS}) VALUES ({marks})"
        self._head_sql = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"

    # ------------------------------------------------------------------ writing
    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction in which ``append_in`` may be called (see ``RecordStore.write``)."""
        with self.store.write() as session:
            session.info[_WRITE_MARK] = True
            yield session

    def register_signer(self, created: bool = False) -> AuditEvent | None:
        """Make sure this installation's public key is in the database (audited once).

        ``created``: the key file was made just now (``key.created``), else ``key.registered``.
        Returns the event appended, or None when the key was already registered."""
        with self.write() as session:
            known = session.get(SigningKey, self.signer.key_id)
            if known is not None:
                if known.public_key_pem.strip() != self.signer.public.pem.strip():
                    raise SigningKeyError(
                        f"the database holds a different public key under key id "
                        f"{self.signer.key_id}; the signing_keys table was altered"
                    )
                return None
            event = self.append_in(
                session,
                self.system,
                "key.created" if created else "key.registered",
                Subject("signing_key", self.signer.key_id),
                {
                    "key_id": self.signer.key_id,
                    "algorithm": "Ed25519",
                    "public_key_pem": self.signer.public.pem,
                    "workstation": self.workstation,
                },
            )
            session.add(
                SigningKey(
                    key_id=self.signer.key_id,
                    public_key_pem=self.signer.public.pem,
                    workstation=self.workstation,
                    created_at=event.ts,
                    audit_seq=event.seq,
                )
            )
            return event

    def append(
        self,
        actor: Actor,
        action: str,
        subject: Subject,
        data: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event in its own transaction; returned once committed (durable).

        It changes no record row, so its data cannot carry a ``record`` (the projection of a
        row, audit-format.md): that is appended with the row's change (``append_in``)."""
        if data is not None and "record" in data:
            raise AuditDataError(
                "an event appended on its own changes no record row; 'record' is reserved for "
                "the row a change writes"
            )
        data_json = self._prepare(actor, action, subject, data)
        with self.store.raw_write() as (cursor, after_commit):
            return self._append_cursor(cursor, after_commit, actor, action, subject, data_json)

    def append_in(
        self,
        session: Session,
        actor: Actor,
        action: str,
        subject: Subject,
        data: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append inside the caller's write transaction (commits with the record's change)."""
        if not session.info.get(_WRITE_MARK):
            raise AuditError("append_in needs a transaction from AuditTrail.write()")
        data_json = self._prepare(actor, action, subject, data)
        session.flush()  # ORM changes first: they may reference this event's seq afterwards
        cursor = session.connection().connection.cursor()
        after_commit: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
        try:
            return self._append_cursor(cursor, after_commit, actor, action, subject, data_json)
        finally:
            cursor.close()

    def next_seq_in(self, session: Session) -> int:
        """The seq the next ``append_in`` in this write transaction gets (writers are
        serialised, so nobody else appends in between)."""
        if not session.info.get(_WRITE_MARK):
            raise AuditError("next_seq_in needs a transaction from AuditTrail.write()")
        head = session.execute(text(self._head_sql)).first()
        return 1 if head is None else int(head[0]) + 1

    @staticmethod
    def _prepare(
        actor: Actor, action: str, subject: Subject, data: Mapping[str, Any] | None
    ) -> str:
        if not isinstance(actor, Actor) or not isinstance(subject, Subject):
            raise AuditDataError("actor must be an Actor and subject a Subject")
        check_action(action)
        if action == CHECKPOINT_ACTION:
            raise AuditDataError("checkpoints are appended by checkpoint(), not append()")
        return canonical_json(to_json_value(data or {}, "data"))

    def _append_cursor(
        self,
        cursor: Any,
        after_commit: list[Callable[[], None]],
        actor: Actor,
        action: str,
        subject: Subject,
        data_json: str,
    ) -> AuditEvent:
        event = self._insert(cursor, actor, action, subject, data_json)
        if event.seq % self.checkpoint_every == 0:
            self._insert_checkpoint(cursor, after_commit, event)
        return event

    def checkpoint(self) -> AuditEvent:
        """Sign the head of the trail now (idempotent when the head already is a checkpoint)."""
        with self.store.raw_write() as (cursor, after_commit):
            cursor.execute(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT 1")
            row = cursor.fetchone()
            if row is None:
                raise AuditError("the trail is empty: there is nothing to checkpoint")
            head = AuditEvent.from_row(tuple(row))
            if head.action == CHECKPOINT_ACTION:
                return head
            return self._insert_checkpoint(cursor, after_commit, head)

    def correct(
        self,
        actor: Actor,
        corrects_seq: int,
        reason: str,
        data: Mapping[str, Any] | None = None,
        *,
        action: str = "record.corrected",
    ) -> AuditEvent:
        """A correction: a new event that names the event it corrects and why."""
        with self.write() as session:
            return self.correct_in(session, actor, corrects_seq, reason, data, action=action)

    def correct_in(
        self,
        session: Session,
        actor: Actor,
        corrects_seq: int,
        reason: str,
        data: Mapping[str, Any] | None = None,
        *,
        action: str = "record.corrected",
    ) -> AuditEvent:
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_CHARS:
            raise AuditDataError(
                f"a correction needs a reason of at least {MIN_REASON_CHARS} characters"
            )
        corrected = self._get_in(session, corrects_seq)
        if corrected.action == CHECKPOINT_ACTION:
            raise AuditDataError("a checkpoint cannot be corrected")
        payload = dict(data or {})
        payload["corrects"] = {"seq": corrected.seq, "hash": corrected.hash}
        payload["reason"] = reason.strip()
        return self.append_in(session, actor, action, corrected.subject, payload)

    def _insert(
        self, cursor: Any, actor: Actor, action: str, subject: Subject, data_json: str
    ) -> AuditEvent:
        cursor.execute(self._head_sql)
        head = cursor.fetchone()
        seq, prev = (1, GENESIS_HASH) if head is None else (int(head[0]) + 1, head[1])
        ts = utc_now_ts()
        canonical = event_canonical_text(
            seq=seq,
            ts=ts,
            actor=actor.user_id,
            role=actor.role,
            workstation=actor.workstation,
            action=action,
            subject_type=subject.type,
            subject_id=subject.id,
            data_json=data_json,
            prev=prev,
        )
        event = AuditEvent(
            seq=seq,
            ts=ts,
            actor=actor.user_id,
            role=actor.role,
            workstation=actor.workstation,
            action=action,
            subject_type=subject.type,
            subject_id=subject.id,
            data_json=data_json,
            prev=prev,
            hash=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
            v=FORMAT_VERSION,
        )
        cursor.execute(self._insert_sql, event.as_row())
        return event

    def _insert_checkpoint(
        self, cursor: Any, after_commit: list[Callable[[], None]], head: AuditEvent
    ) -> AuditEvent:
        data = {
            "head_seq": head.seq,
            "head_hash": head.hash,
            "key_id": self.signer.key_id,
            "signature": self.signer.sign(head.seq, head.hash),
        }
        event = self._insert(
            cursor, self.system, CHECKPOINT_ACTION, TRAIL_SUBJECT, canonical_json(data)
        )
        if self.witness_path is not None:
            path, database = self.witness_path, describe(self.store.url)
            after_commit.append(lambda: record_witness(path, database, event.seq, event.hash))
        after_commit.append(
            lambda: log.info(
                "audit_checkpoint", seq=event.seq, head_seq=head.seq, key_id=self.signer.key_id
            )
        )
        return event

    # ------------------------------------------------------------------ reading
    def head(self) -> TrailHead | None:
        with self.store.read() as session:
            row = session.execute(text(self._head_sql)).first()
        return None if row is None else TrailHead(int(row[0]), row[1])

    def get(self, seq: int) -> AuditEvent:
        with self.store.read() as session:
            return self._get_in(session, seq)

    def _get_in(self, session: Session, seq: int) -> AuditEvent:
        row = session.execute(
            text(f"SELECT {_COLUMNS} FROM audit_events WHERE seq = :seq"), {"seq": seq}
        ).first()
        if row is None:
            raise NotFound(f"there is no audit event with seq {seq}")
        return AuditEvent.from_row(tuple(row))

    def events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in seq order, ``limit`` at a time (page with ``after_seq``)."""
        with self.store.read() as session:
            rows = session.execute(
                text(
                    f"SELECT {_COLUMNS} FROM audit_events WHERE seq > :after "
                    "ORDER BY seq LIMIT :limit"
                ),
                {"after": after_seq, "limit": limit},
            )
            return [AuditEvent.from_row(tuple(r)) for r in rows]

    def patient_events(self, patient_id: str, start_ts: str, end_ts: str) -> list[AuditEvent]:
        """Every event about one patient (the patient, their programmes and sessions) with
        ``start_ts <= ts < end_ts``, in seq order: the admin's review query.

        The patient's sessions and programmes are looked up first (a handful of ids), then each
        id is a range scan of the (subject_type, subject_id, ts) index: fast on a trail of
        millions of events whatever the planner's statistics say."""
        with self.store.read() as session:
            subjects: list[tuple[str, str]] = [("patient", patient_id)]
            for table, kind in (
                ("treatment_sessions", "session"),
                ("programme_assignments", "programme"),
            ):
                ids = session.execute(
                    text(f"SELECT id FROM {table} WHERE patient_id = :p"), {"p": patient_id}
                ).scalars()
                subjects.extend((kind, i) for i in ids)
            query = text(
                f"SELECT {_COLUMNS} FROM audit_events WHERE subject_type = :t "
                "AND subject_id = :i AND ts >= :start AND ts < :end"
            )
            rows: list[tuple[Any, ...]] = []
            for kind, subject_id in subjects:
                params = {"t": kind, "i": subject_id, "start": start_ts, "end": end_ts}
                rows.extend(tuple(r) for r in session.execute(query, params))
        rows.sort(key=lambda r: r[0])
        return [AuditEvent.from_row(r) for r in rows]
