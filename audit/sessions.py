"""Treatment sessions: the record of clinical-reference §5, its events and its signatures.

The session workflow (``console/session``) drives this through ``SessionBook``: ``create``,
``transition``, ``record_event``, ``update`` and ``sign``. Every call changes the record and
appends its audit event in one transaction. Once a session carries a signature its content is
locked: a change is then an *amendment* (``amend``), a correction event that names the event it
corrects and the reason, after which the earlier signatures no longer verify — as they should.

An electronic signature covers the record's content hash (canonical JSON of every clinical
field, including the session and patient ids), so a signature moved to another record, or a
record changed after signing, fails ``verify_signatures``; the signature must also appear in
the audit trail exactly as stored, or it is reported as forged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import date
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from audit.canonical import canonical_json, to_json_value, utc_now_ts
from audit.errors import AuditDataError, DuplicateRecord, NotFound, RecordLocked
from audit.events import Actor, AuditEvent, Subject
from audit.records import fields_hash, record_of, row_projection, signature_record_seq
from audit.schema import (
    AuditEventRow,
    Patient,
    ProgrammeAssignment,
    SessionEvent,
    SessionSignature,
    TreatmentSession,
    User,
)
from audit.trail import AuditTrail
from audit.values import (
    SessionEventRecord,
    SessionRecord,
    SignatureCheck,
    SignatureRecord,
    freeze,
    thaw,
)

#: through the standard library: silent until the application configures logging
log = structlog.wrap_logger(logging.getLogger("audit.sessions"))
SESSION_STATES = (
    "screening",
    "planned",
    "connected",
    "armed",
    "delivering",
    "paused",
    "completed",
    "stopped",
    "aborted",
    "faulted",
    "interrupted",
    "documented",
    "signed",
)
UNFINISHED_STATES = ("connected", "armed", "delivering", "paused")
MODALITIES = ("epat", "emtt")
MEANINGS = ("performed", "reviewed")
SCREENING_DECISIONS = ("allow", "override_required", "block", "incomplete")
ADVERSE_EVENTS = (
    "reddening",
    "petechiae",
    "haematoma",
    "transient_pain",
    "swelling",
    "numbness",
    "syncope",
    "other",
)
CONTENT_FORMAT = "therapy-session-content-v1"

_TEXT = ("device_model", "device_serial", "applicator_type", "applicator_serial")
_REASONS = ("parameter_override_reason", "screening_override_reason", "end_reason")
_COUNTS = (
    "applicator_shots_before",
    "applicator_shots_after",
    "delivered",
    "delivered_min",
    "delivered_max",
)
_OBJECTS = (
    "parameters",
    "validation",
    "screening_answers",
    "screening",
    "count_evidence",
    "arm_snapshot",
)
COUNT_STATUSES = ("confirmed", "unconfirmed")
#: Fields added by migration 0003: part of the signed content only once set, so a record signed
#: before they existed keeps verifying.
_COUNT_FIELDS = ("count_status", "delivered_min", "delivered_max", "count_evidence", "arm_snapshot")
_LISTS = ("titrations", "segments", "interruptions", "faults", "treatment_points")
#: the fields ``update`` and ``amend`` accept (the rest are fixed at creation or by transitions)
UPDATABLE_FIELDS = frozenset(
    (
        *_TEXT,
        *_REASONS,
        *_COUNTS,
        *_OBJECTS,
        *_LISTS,
        "screening_decision",
        "count_status",
        "pain_before",
        "pain_after",
        "adverse_events",
        "notes",
        "programme_id",
        "programme_phase",
    )
)
#: what a signature covers, in addition to the updatable fields
_FIXED_CONTENT = (
    "session_id",
    "patient_id",
    "protocol_id",
    "protocol_version",
    "modality",
    "therapist_id",
    "session_date",
)


def _checked_value(name: str, value: Any) -> Any:
    """The value to store for field ``name``, or ``AuditDataError`` saying what is wrong."""
    if name not in UPDATABLE_FIELDS:
        raise AuditDataError(
            f"{name!r} is not a session field that can be set; known: "
            f"{', '.join(sorted(UPDATABLE_FIELDS))}"
        )
    if value is None and name not in (*_LISTS, "adverse_events", "notes"):
        return None
    if name in (*_TEXT, *_REASONS, "notes", "programme_id"):
        if not isinstance(value, str):
            raise AuditDataError(f"{name} must be text")
        return value
    if name in (*_COUNTS, "programme_phase"):
        if type(value) is not int or value < 0:
            raise AuditDataError(f"{name} must be a whole number ≥ 0")
        return value
    if name in ("pain_before", "pain_after"):
        if type(value) is not int or not 0 <= value <= 10:
            raise AuditDataError(f"{name} must be a whole number 0–10 (NRS)")
        return value
    if name == "count_status":
        if value not in COUNT_STATUSES:
            raise AuditDataError(f"count_status must be one of {COUNT_STATUSES}")
        return value
    if name == "screening_decision":
        if value not in SCREENING_DECISIONS:
            raise AuditDataError(f"screening_decision must be one of {SCREENING_DECISIONS}")
        return value
    if name == "adverse_events":
        events = to_json_value(value, name)
        if not isinstance(events, list) or not set(events) <= set(ADVERSE_EVENTS):
            raise AuditDataError(f"adverse_events must be a list from {', '.join(ADVERSE_EVENTS)}")
        return sorted(set(events))
    json_value = to_json_value(value, name)
    if name in _OBJECTS and not isinstance(json_value, dict):
        raise AuditDataError(f"{name} must be an object (mapping)")
    if name in _LISTS and not isinstance(json_value, list):
        raise AuditDataError(f"{name} must be a list")
    return json_value


def _signature(s: SessionSignature) -> SignatureRecord:
    return SignatureRecord(
        session_id=s.session_id,
        signer_id=s.signer_id,
        signer_name=s.signer_name,
        signed_at=s.signed_at,
        meaning=s.meaning,
        content_hash=s.content_hash,
        audit_seq=s.audit_seq,
    )


def _record(session: Session, row: TreatmentSession) -> SessionRecord:
    signatures = session.scalars(
        select(SessionSignature)
        .where(SessionSignature.session_id == row.id)
        .order_by(SessionSignature.id)
    )
    return SessionRecord(
        session_id=row.id,
        patient_id=row.patient_id,
        programme_id=row.programme_id,
        programme_phase=row.programme_phase,
        protocol_id=row.protocol_id,
        protocol_version=row.protocol_version,
        modality=row.modality,
        therapist_id=row.therapist_id,
        session_date=row.session_date,
        state=row.state,
        device_model=row.device_model,
        device_serial=row.device_serial,
        applicator_type=row.applicator_type,
        applicator_serial=row.applicator_serial,
        applicator_shots_before=row.applicator_shots_before,
        applicator_shots_after=row.applicator_shots_after,
        parameters=freeze(row.parameters),
        validation=freeze(row.validation),
        parameter_override_reason=row.parameter_override_reason,
        titrations=freeze(row.titrations),
        delivered=row.delivered,
        segments=freeze(row.segments),
        interruptions=freeze(row.interruptions),
        faults=freeze(row.faults),
        end_reason=row.end_reason,
        screening_answers=freeze(row.screening_answers),
        screening=freeze(row.screening),
        screening_decision=row.screening_decision,
        screening_override_reason=row.screening_override_reason,
        pain_before=row.pain_before,
        pain_after=row.pain_after,
        treatment_points=freeze(row.treatment_points),
        adverse_events=tuple(row.adverse_events),
        notes=row.notes,
        created_at=row.created_at,
        updated_at=row.updated_at,
        signatures=tuple(_signature(s) for s in signatures),
        count_status=row.count_status,
        delivered_min=row.delivered_min,
        delivered_max=row.delivered_max,
        count_evidence=freeze(row.count_evidence),
        arm_snapshot=freeze(row.arm_snapshot),
    )


def session_content(record: SessionRecord) -> dict[str, Any]:
    """The clinical content a signature covers (not the state, timestamps or signatures)."""
    content: dict[str, Any] = {"format": CONTENT_FORMAT}
    for name in (*_FIXED_CONTENT, *sorted(UPDATABLE_FIELDS)):
        value = getattr(record, name)
        if name in _COUNT_FIELDS and value is None:
            continue
        content[name] = value.isoformat() if isinstance(value, date) else thaw(value)
    return content


def content_hash(record: SessionRecord) -> str:
    """SHA-256 of the canonical JSON of ``session_content(record)``."""
    text = canonical_json(to_json_value(session_content(record), "session"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SessionBook:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    # ------------------------------------------------------------------ creating
    def create(
        self,
        actor: Actor,
        *,
        patient_id: str,
        protocol_id: str,
        protocol_version: str,
        modality: str,
        session_date: date,
        programme_id: str | None = None,
        programme_phase: int | None = None,
        session_id: str | None = None,
        state: str = "screening",
    ) -> SessionRecord:
        if modality not in MODALITIES:
            raise AuditDataError(f"modality must be one of {MODALITIES}")
        if state not in SESSION_STATES:
            raise AuditDataError(f"state must be one of {SESSION_STATES}")
        if not protocol_id or not protocol_version:
            raise AuditDataError("give the protocol id and version")
        session_id = session_id or f"se-{secrets.token_hex(8)}"
        now = utc_now_ts()
        with self.trail.write() as session:
            if session.get(TreatmentSession, session_id) is not None:
                raise DuplicateRecord(f"there already is a session {session_id!r}")
            if session.get(Patient, patient_id) is None:
                raise NotFound(f"there is no patient {patient_id!r}")
            if session.get(User, actor.user_id) is None:
                raise NotFound(f"there is no user {actor.user_id!r} to treat")
            if programme_id is not None:
                programme = session.get(ProgrammeAssignment, programme_id)
                if programme is None or programme.patient_id != patient_id:
                    raise AuditDataError("the programme is not one of this patient's")
            row = TreatmentSession(
                id=session_id,
                patient_id=patient_id,
                programme_id=programme_id,
                programme_phase=programme_phase,
                protocol_id=protocol_id,
                protocol_version=protocol_version,
                modality=modality,
                therapist_id=actor.user_id,
                session_date=session_date,
                state=state,
                titrations=[],
                segments=[],
                interruptions=[],
                faults=[],
                treatment_points=[],
                adverse_events=[],
                notes="",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            data = {
                "patient_id": patient_id,
                "programme_id": programme_id,
                "programme_phase": programme_phase,
                "protocol_id": protocol_id,
                "protocol_version": protocol_version,
                "modality": modality,
                "session_date": session_date.isoformat(),
                "state": state,
            }
            self._append(session, actor, "session.created", row, data, session_event=True)
            session.flush()
            return _record(session, row)

    # ------------------------------------------------------------------ changing
    def update(self, actor: Actor, session_id: str, fields: Mapping[str, Any]) -> SessionRecord:
        """Set record fields (before signing); the event lists exactly what was set."""
        values = {name: _checked_value(name, value) for name, value in fields.items()}
        if not values:
            raise AuditDataError("nothing to update")
        with self.trail.write() as session:
            row = self._load(session, session_id, for_update=True)
            self._refuse_if_signed(session, row)
            self._apply(session, row, values)
            self._append(session, actor, "session.updated", row, {"fields": values})
            return _record(session, row)

    def transition(
        self,
        actor: Actor,
        session_id: str,
        old: str,
        new: str,
        action: str,
        data: Mapping[str, Any] | None = None,
    ) -> SessionRecord:
        """Move the session from state ``old`` to ``new`` (the workflow has checked the table);
        refused if the stored state is not ``old`` (another console moved it)."""
        if new not in SESSION_STATES:
            raise AuditDataError(f"unknown session state {new!r}")
        details = to_json_value(dict(data or {}), "data")
        with self.trail.write() as session:
            row = self._load(session, session_id, for_update=True)
            if (old, new) == ("documented", "signed") and row.state == "signed":
                # the "performed" signature moved it already (``sign``), before signing
                return _record(session, row)
            if row.state != old:
                raise AuditDataError(
                    f"the session is {row.state}, not {old}: reload it before acting"
                )
            if row.state == "signed":
                raise RecordLocked("the session is signed; it cannot change state")
            row.state = new
            row.updated_at = utc_now_ts()
            payload = {"action": action, "from": old, "to": new, "details": details}
            event = self._append(
                session, actor, "session.transition", row, payload, session_event=True
            )
            record = _record(session, row)
        log.info("session_transition", session_id=session_id, old=old, new=new, seq=event.seq)
        return record

    def record_event(
        self, actor: Actor, session_id: str, action: str, data: Mapping[str, Any] | None = None
    ) -> int:
        """Something that happened in the session (a device command and its result, a
        screening decision, an alarm …); returns the audit seq. Changes no row, so ``record``
        (a row's projection) is refused in its data."""
        payload = to_json_value(dict(data or {}), "data")
        if "record" in payload:
            raise AuditDataError("'record' is reserved for the row a change writes")
        with self.trail.write() as session:
            self._load(session, session_id)
            event = self.trail.append_in(
                session, actor, action, Subject("session", session_id), payload
            )
            self._session_event(session, session_id, event.seq, event.ts, action, payload)
            return event.seq

    def sign(
        self, signer: Actor, signer_name: str, session_id: str, meaning: str
    ) -> SignatureRecord:
        """Attach an electronic signature. The caller has re-authenticated the signer (password
        re-entered) and checked the role; this stores {who, name, when, meaning, content hash}
        and audits it in the same transaction."""
        if meaning not in MEANINGS:
            raise AuditDataError(f"the meaning of a signature is one of {', '.join(MEANINGS)}")
        with self.trail.write() as session:
            row = self._load(session, session_id, for_update=True)
            record = _record(session, row)
            performed = [s for s in record.signatures if s.meaning == "performed"]
            if meaning == "performed":
                if signer.user_id != row.therapist_id:
                    raise AuditDataError(
                        "only the therapist who treated can sign 'performed'; others sign "
                        "'reviewed'"
                    )
                if row.state not in ("documented", "signed") or performed:
                    raise AuditDataError("sign 'performed' once, after the session is documented")
            else:
                if not performed:
                    raise AuditDataError("a review follows the treating therapist's signature")
                if signer.user_id in {s.signer_id for s in record.signatures}:
                    raise AuditDataError("the reviewer must be someone who has not signed it")
            if meaning == "performed" and row.state == "documented":
                # the state moves with the signature, so that the record it covers is final
                row.state = "signed"
                row.updated_at = utc_now_ts()
                payload = {
                    "action": "sign",
                    "from": "documented",
                    "to": "signed",
                    "details": {"meaning": meaning},
                }
                self._append(
                    session, signer, "session.transition", row, payload, session_event=True
                )
            digest = content_hash(record)
            signed_at = utc_now_ts()
            data = {
                "signer_id": signer.user_id,
                "signer_name": signer_name,
                "signed_at": signed_at,
                "meaning": meaning,
                "content_hash": digest,
            }
            # The signature row references its own event (audit_seq), so it is added after the
            # event; its id and that seq are taken first, inside this serialised transaction.
            signature = SessionSignature(
                id=_next_signature_id(session),
                session_id=session_id,
                signer_id=signer.user_id,
                signer_name=signer_name,
                signed_at=signed_at,
                meaning=meaning,
                content_hash=digest,
                audit_seq=self.trail.next_seq_in(session),
                record_hash=fields_hash(row_projection("session", row)),
            )
            event = self.trail.append_in(
                session,
                signer,
                "session.signed",
                Subject("session", session_id),
                {**data, "record": record_of("signature", signature)},
            )
            if event.seq != signature.audit_seq:
                raise AuditDataError("the trail moved while signing; sign again")
            session.add(signature)
            session.flush()
            return _signature(signature)

    def amend(
        self,
        actor: Actor,
        session_id: str,
        fields: Mapping[str, Any],
        reason: str,
        corrects_seq: int,
    ) -> SessionRecord:
        """Change a signed record: a correction event naming the event it corrects and why,
        with every field's old and new value. Earlier signatures stop verifying."""
        values = {name: _checked_value(name, value) for name, value in fields.items()}
        if not values:
            raise AuditDataError("nothing to amend")
        with self.trail.write() as session:
            row = self._load(session, session_id, for_update=True)
            corrected = session.get(AuditEventRow, corrects_seq)
            if corrected is None or (corrected.subject_type, corrected.subject_id) != (
                "session",
                session_id,
            ):
                raise AuditDataError(f"seq {corrects_seq} is not an event of session {session_id}")
            before = session_content(_record(session, row))
            changes = {name: {"from": before[name], "to": value} for name, value in values.items()}
            self._apply(session, row, values)
            data: dict[str, Any] = {"changes": changes, "record": record_of("session", row)}
            performed = session.scalars(
                select(SessionSignature)
                .where(SessionSignature.session_id == session_id)
                .where(SessionSignature.meaning == "performed")
                .order_by(SessionSignature.id.desc())
            ).first()
            if performed is not None:
                # audit-format: a signed record changes only by naming its signature's seq
                data["amends"] = signature_record_seq(session, performed.id, performed.audit_seq)
            self.trail.correct_in(
                session, actor, corrects_seq, reason, data, action="session.amended"
            )
            return _record(session, row)

    # ------------------------------------------------------------------ reading
    def load(self, session_id: str) -> SessionRecord:
        """The record for the workflow's own use (not a display: that is ``view``)."""
        with self.trail.store.read() as session:
            return _record(session, self._load(session, session_id))

    def view(self, actor: Actor, session_id: str) -> SessionRecord:
        """A read of the session record: audited (``session.viewed``)."""
        with self.trail.write() as session:
            row = self._load(session, session_id)
            self.trail.append_in(session, actor, "session.viewed", Subject("session", session_id))
            return _record(session, row)

    def events(self, session_id: str) -> list[SessionEventRecord]:
        with self.trail.store.read() as session:
            rows = session.scalars(
                select(SessionEvent)
                .where(SessionEvent.session_id == session_id)
                .order_by(SessionEvent.id)
            )
            return [SessionEventRecord(r.audit_seq, r.ts, r.action, freeze(r.data)) for r in rows]

    def for_patient(self, patient_id: str) -> list[SessionRecord]:
        with self.trail.store.read() as session:
            rows = session.scalars(
                select(TreatmentSession)
                .where(TreatmentSession.patient_id == patient_id)
                .order_by(TreatmentSession.session_date, TreatmentSession.created_at)
            ).all()
            return [_record(session, r) for r in rows]

    def all(self) -> list[SessionRecord]:
        with self.trail.store.read() as session:
            rows = session.scalars(select(TreatmentSession).order_by(TreatmentSession.id)).all()
            return [_record(session, r) for r in rows]

    def count_pending(self, device_serial: str | None = None) -> list[SessionRecord]:
        """Sessions whose count is unconfirmed and awaits recovery (``count_evidence``
        ``recovery_pending``), on the unit ``device_serial`` or on any unit."""
        with self.trail.store.read() as session:
            query = select(TreatmentSession).where(TreatmentSession.count_status == "unconfirmed")
            if device_serial is not None:
                query = query.where(TreatmentSession.device_serial == device_serial)
            rows = session.scalars(query).all()
            records = [_record(session, r) for r in rows]
        return [r for r in records if r.count_evidence and r.count_evidence.get("recovery_pending")]

    def unfinished(self) -> list[SessionRecord]:
        """Sessions left connected/armed/delivering/paused (a console stopped mid-session)."""
        with self.trail.store.read() as session:
            rows = session.scalars(
                select(TreatmentSession).where(TreatmentSession.state.in_(UNFINISHED_STATES))
            ).all()
            return [_record(session, r) for r in rows]

    def verify_signatures(self, session_id: str) -> list[SignatureCheck]:
        """Each signature: does it still cover this record, and is it in the audit trail?"""
        with self.trail.store.read() as session:
            record = _record(session, self._load(session, session_id))
            current = content_hash(record)
            checks = []
            for signature in record.signatures:
                event = session.get(AuditEventRow, signature.audit_seq)
                checks.append(SignatureCheck(signature, *_judge(signature, event, current)))
            return checks

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _load(session: Session, session_id: str, for_update: bool = False) -> TreatmentSession:
        query = select(TreatmentSession).where(TreatmentSession.id == session_id)
        if for_update:
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            raise NotFound(f"there is no session {session_id!r}")
        return row

    @staticmethod
    def _refuse_if_signed(session: Session, row: TreatmentSession) -> None:
        signed = session.scalars(
            select(SessionSignature.id).where(SessionSignature.session_id == row.id)
        ).first()
        if signed is not None or row.state == "signed":
            raise RecordLocked(
                f"session {row.id} is signed; change it with an amendment that gives a reason"
            )

    @staticmethod
    def _apply(session: Session, row: TreatmentSession, values: Mapping[str, Any]) -> None:
        if "programme_id" in values and values["programme_id"] is not None:
            programme = session.get(ProgrammeAssignment, values["programme_id"])
            if programme is None or programme.patient_id != row.patient_id:
                raise AuditDataError("the programme is not one of this patient's")
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = utc_now_ts()

    def _append(
        self,
        session: Session,
        actor: Actor,
        action: str,
        row: TreatmentSession,
        data: Mapping[str, Any],
        *,
        session_event: bool = False,
    ) -> AuditEvent:
        """Append ``action`` about the session carrying its complete row (``data.record``);
        with ``session_event`` also the session's own event row (without the record)."""
        session.flush()
        event = self.trail.append_in(
            session,
            actor,
            action,
            Subject("session", row.id),
            {**data, "record": record_of("session", row)},
        )
        if session_event:
            self._session_event(session, row.id, event.seq, event.ts, action, data)
        return event

    @staticmethod
    def _session_event(
        session: Session, session_id: str, seq: int, ts: str, action: str, data: Any
    ) -> None:
        session.add(
            SessionEvent(session_id=session_id, audit_seq=seq, ts=ts, action=action, data=data)
        )


def _judge(
    signature: SignatureRecord, event: AuditEventRow | None, current_hash: str
) -> tuple[bool, str]:
    if (
        event is None
        or event.action != "session.signed"
        or event.subject_id != signature.session_id
    ):
        return False, "the signature is not in the audit trail (forged or moved)"
    logged = json.loads(event.data)
    logged.pop("record", None)
    expected = {
        "signer_id": signature.signer_id,
        "signer_name": signature.signer_name,
        "signed_at": signature.signed_at,
        "meaning": signature.meaning,
        "content_hash": signature.content_hash,
    }
    if logged != expected or event.actor != signature.signer_id:
        return False, "the signature differs from the one recorded in the audit trail"
    if signature.content_hash != current_hash:
        return (
            False,
            "the record changed after it was signed (or the signature belongs to another record)",
        )
    return True, "valid: covers the record as it is now"


def _next_signature_id(session: Session) -> int:
    """The id the next signature row gets, taken inside the (serialised) write transaction."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(
            text("SELECT nextval(pg_get_serial_sequence('session_signatures', 'id'))")
        ).scalar_one()
    else:
        value = session.execute(
            text("SELECT coalesce(max(id), 0) + 1 FROM session_signatures")
        ).scalar_one()
    return int(value)
