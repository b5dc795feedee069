"""A session's full story for the admin: the record, every event of it in order, its signatures.

Built from the record store only (the session record, the trail's events about the session, the
alarms that name the session, each signature checked against the record as it is now, and the
addenda after the signed original). Opening a story is an audited read (``session.viewed``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text

from audit.canonical import canonical_json, to_json_value
from audit.events import AuditEvent
from audit.schema import AUDIT_COLUMNS
from audit.sessions import SessionBook, session_content
from audit.trail import AuditTrail
from audit.values import SessionRecord, SignatureCheck, thaw
from console.admin.audit_query import summarise
from console.auth import AuthService, SignedInUser

_COLS = ", ".join(AUDIT_COLUMNS)
MAX_FOUND = 500

#: the kind of each action family, for the story's sections and colours
KINDS = (
    ("screening.", "screening"),
    ("parameters.", "parameters"),
    ("device.fault", "fault"),
    ("device.link_lost", "fault"),
    ("device.emergency_stop", "fault"),
    ("session.emergency_stop", "fault"),
    ("device.", "device"),
    ("alarm.", "alarm"),
    ("session.signed", "signature"),
    ("session.amended", "signature"),
    ("session.addendum_signed", "signature"),
    ("session.signature_failed", "refusal"),
    ("session.transition", "transition"),
    ("session.refused", "refusal"),
)


def kind_of(action: str) -> str:
    for prefix, kind in KINDS:
        if action.startswith(prefix):
            return kind
    return "record"


@dataclass(frozen=True, slots=True)
class StoryLine:
    """One event of the session, told in a line."""

    seq: int
    ts: str
    actor: str
    action: str
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class SessionListing:
    """A session in the admin's session finder (pseudonymous)."""

    session_id: str
    session_date: date
    pseudonym: str
    protocol_id: str
    modality: str
    state: str
    delivered: int | None
    therapist_id: str


@dataclass(frozen=True, slots=True)
class Addendum:
    """A later fact about a signed session: the amendment, its reason and its own signature."""

    seq: int
    ts: str
    actor: str
    reason: str
    changes: Mapping[str, Any]  # field -> {"from": as signed (or as before), "to": added}
    signed_by: str | None  # "name (id) at time", or None when it carries no signature


@dataclass(frozen=True, slots=True)
class SessionStory:
    record: SessionRecord
    pseudonym: str
    ruleset_version: str | None
    timeline: tuple[StoryLine, ...]
    signatures: tuple[SignatureCheck, ...]
    addenda: tuple[Addendum, ...] = ()
    #: the content as it was signed "performed" (addenda undone), when there are addenda
    signed_original: Mapping[str, Any] | None = None

    def lines_of(self, *kinds: str) -> tuple[StoryLine, ...]:
        return tuple(line for line in self.timeline if line.kind in kinds)

    @property
    def target_pulses(self) -> int | None:
        params = self.record.parameters
        pulses = params.get("pulses") if params else None
        return pulses if isinstance(pulses, int) else None


def _fmt_params(params: Any) -> str:
    if not isinstance(params, Mapping):
        return "—"
    parts = []
    if params.get("pressure_bar") is not None:
        parts.append(f"{params['pressure_bar']} bar")
    if params.get("field_mt") is not None:
        parts.append(f"{params['field_mt']} mT")
    if params.get("frequency_hz") is not None:
        parts.append(f"{params['frequency_hz']} Hz")
    if params.get("pulses") is not None:
        parts.append(f"{params['pulses']:,} pulses" if isinstance(params["pulses"], int) else "")
    return ", ".join(p for p in parts if p) or "—"


def tell(event: AuditEvent) -> str:
    """A human line for one event of a session (falls back to its data, summarised)."""
    data = event.data
    action = event.action
    if action == "session.created":
        return (
            f"Session created: protocol {data.get('protocol_id')} version "
            f"{data.get('protocol_version')} ({str(data.get('modality', '')).upper()})"
        )
    if action == "screening.decided":
        rules = ", ".join(data.get("rules") or []) or "no rule fired"
        return (
            f"Screening decided: {data.get('decision')} ({rules}); rule set "
            f"{data.get('ruleset_version')}"
        )
    if action == "screening.corrected":
        changes = "; ".join(
            f"{c.get('question')}: {c.get('from')} → {c.get('to')}"
            for c in data.get("changes") or []
        )
        reason = data.get("reason")
        return (
            f"Screening corrected by {data.get('by')}: {changes} — decision "
            f"{data.get('from_decision')} → {data.get('to_decision')}"
            + (f"; reason “{reason}”" if reason else "; no reason needed")
        )
    if action == "session.signature_failed":
        return (
            "Signing attempt FAILED (wrong user name or password; "
            f"{data.get('consecutive_failures')} in a row)"
        )
    if action == "session.addendum_signed":
        return (
            f"Addendum (seq {data.get('amendment_seq')}) signed by {data.get('signer_name')} "
            f"({data.get('signer_id')})"
        )
    if action == "screening.override":
        return f"Screening override of {', '.join(data.get('rules') or [])}: “{data.get('reason')}”"
    if action in ("parameters.validated", "parameters.override"):
        line = f"Parameters {_fmt_params(data.get('parameters'))}: {data.get('verdict')}"
        findings = data.get("findings") or []
        if findings:
            line += " — " + "; ".join(f"{f.get('rule')}: {f.get('message')}" for f in findings)
        if data.get("override_reason"):
            line += f" — override reason “{data['override_reason']}”"
        elif data.get("override_in_force"):
            line += f" — covered by the override “{data['override_in_force']}”"
        return ("Override: " if action == "parameters.override" else "") + line
    if action == "parameters.confirmed":
        return f"Parameters confirmed by the therapist: {_fmt_params(data.get('parameters'))}"
    if action == "session.transition":
        details = data.get("details") or {}
        extra = f" ({summarise(json.dumps(details))})" if details else ""
        return f"{data.get('from')} → {data.get('to')} [{data.get('action')}]{extra}"
    if action.startswith("device."):
        what = action.split(".", 1)[1].replace("_", " ")
        if data.get("ok") is False:
            return (
                f"Unit: {what} FAILED — {data.get('error', '')} {data.get('message', '')}".strip()
            )
        rest = {k: v for k, v in data.items() if k != "ok"}
        return f"Unit: {what} ok" + (f" ({summarise(json.dumps(rest))})" if rest else "")
    if action == "session.updated":
        fields = data.get("fields") or {}
        return "Recorded: " + (summarise(json.dumps(fields)) or "—")
    if action == "session.signed":
        return (
            f"Signed by {data.get('signer_name')} ({data.get('signer_id')}) — {data.get('meaning')}"
        )
    if action == "session.amended":
        changes = summarise(json.dumps(data.get("changes", {})))
        return f"Amended after signing: “{data.get('reason')}” — {changes}"
    if action == "session.viewed":
        return f"Record viewed by {event.actor}"
    if action == "session.refused":
        reasons = "; ".join(data.get("reasons") or [])
        return f"Refused: {data.get('action')} in {data.get('state')} — {reasons}"
    if action.startswith("alarm."):
        verb = action.split(".", 1)[1]
        return f"Alarm {verb} ({data.get('priority')}): {data.get('message')}"
    return summarise(event.data_json) or action


class SessionStories:
    def __init__(self, auth: AuthService, trail: AuditTrail) -> None:
        self.auth = auth
        self.trail = trail
        self.book = SessionBook(trail)

    def find(
        self,
        user: SignedInUser,
        *,
        session_id: str = "",
        pseudonym: str = "",
        start: date | None = None,
        end: date | None = None,
        limit: int = 200,
    ) -> list[SessionListing]:
        """Sessions newest first, narrowed by id prefix, patient pseudonym and date range."""
        self.auth.require(user, "view_audit")
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": min(limit, MAX_FOUND)}
        if session_id.strip():
            where.append("s.id LIKE :sid")
            params["sid"] = session_id.strip().replace("%", "") + "%"
        if pseudonym.strip():
            where.append("p.pseudonym = :ps")
            params["ps"] = pseudonym.strip()
        if start is not None:
            where.append("s.session_date >= :start")
            params["start"] = start
        if end is not None:
            where.append("s.session_date <= :end")
            params["end"] = end
        sql = (
            "SELECT s.id, s.session_date, p.pseudonym, s.protocol_id, s.modality, s.state, "
            "s.delivered, s.therapist_id FROM treatment_sessions s JOIN patients p "
            f"ON p.id = s.patient_id WHERE {' AND '.join(where)} "
            "ORDER BY s.session_date DESC, s.created_at DESC LIMIT :limit"
        )
        with self.trail.store.connection() as conn:
            rows = conn.execute(text(sql), params).all()
        return [
            SessionListing(r[0], _as_date(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows
        ]

    def story(self, user: SignedInUser, session_id: str) -> SessionStory:
        """The whole story of one session (an audited read: ``session.viewed``)."""
        self.auth.require(user, "view_audit")
        record = self.book.view(user.actor, session_id.strip())
        events = self._session_events(record.session_id)
        events += self._alarms_during(record.session_id, events)
        events.sort(key=lambda e: e.seq)
        timeline = tuple(
            StoryLine(e.seq, e.ts, e.actor, e.action, kind_of(e.action), tell(e)) for e in events
        )
        screening = thaw(record.screening) if record.screening else {}
        addenda = _addenda(events)
        checks = tuple(self.book.verify_signatures(record.session_id))
        original = None
        if addenda:
            original = _undo(session_content(record), addenda)
            checks = tuple(_as_signed(c, original) for c in checks)
        return SessionStory(
            record=record,
            pseudonym=self._pseudonym(record.patient_id),
            ruleset_version=screening.get("ruleset_version") if screening else None,
            timeline=timeline,
            signatures=checks,
            addenda=addenda,
            signed_original=original,
        )

    def _session_events(self, session_id: str) -> list[AuditEvent]:
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLS} FROM audit_events WHERE subject_type = 'session' "
                    "AND subject_id = :s ORDER BY ts, seq"
                ),
                {"s": session_id},
            ).all()
        return [AuditEvent.from_row(tuple(r)) for r in rows]

    def _alarms_during(self, session_id: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """The session's own alarms, raised or acknowledged: those whose data names it
        (SES-STORY-1). Alarms are about the console in the trail; only the session id in their
        data ties one to a session, never the time or the workstation (another session's alarm,
        or the console's own, may fall between a session's first and last event)."""
        if not events:
            return []
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLS} FROM audit_events WHERE action IN "
                    "('alarm.raised', 'alarm.acknowledged') AND ts >= :a ORDER BY ts, seq"
                ),
                {"a": events[0].ts},
            ).all()
        found = [AuditEvent.from_row(tuple(r)) for r in rows]
        return [e for e in found if e.data.get("session_id") == session_id]

    def _pseudonym(self, patient_id: str) -> str:
        with self.trail.store.connection() as conn:
            row = conn.execute(
                text("SELECT pseudonym FROM patients WHERE id = :p"), {"p": patient_id}
            ).first()
        return str(row[0]) if row else patient_id


def _addenda(events: Sequence[AuditEvent]) -> tuple[Addendum, ...]:
    """The session's amendments in order, each with the signature that names it."""
    signed = {
        e.data.get("amendment_seq"): e for e in events if e.action == "session.addendum_signed"
    }
    found = []
    for e in events:
        if e.action != "session.amended":
            continue
        signature = signed.get(e.seq)
        found.append(
            Addendum(
                seq=e.seq,
                ts=e.ts,
                actor=e.actor,
                reason=str(e.data.get("reason") or ""),
                changes=dict(e.data.get("changes") or {}),
                signed_by=(
                    f"{signature.data.get('signer_name')} ({signature.data.get('signer_id')}) "
                    f"at {signature.data.get('signed_at')} UTC"
                )
                if signature is not None
                else None,
            )
        )
    return tuple(found)


def _undo(content: Mapping[str, Any], addenda: Sequence[Addendum]) -> dict[str, Any]:
    """The content before the addenda: each amendment's old values put back, newest first."""
    original = dict(content)
    for addendum in reversed(addenda):
        for name, change in addendum.changes.items():
            if isinstance(change, Mapping) and "from" in change:
                original[name] = change["from"]
    return original


def _hash(content: Mapping[str, Any]) -> str:
    text_ = canonical_json(to_json_value(dict(content), "session"))
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def _as_signed(check: SignatureCheck, original: Mapping[str, Any]) -> SignatureCheck:
    """A signature that no longer covers the amended record is checked against the record as
    signed (the addenda undone): valid if it covers exactly that."""
    if check.valid or "changed after it was signed" not in check.reason:
        return check
    if check.signature.content_hash != _hash(original):
        return check
    return replace(
        check, valid=True, reason="valid: covers the record as signed; addenda follow it"
    )


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())
