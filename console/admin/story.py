"""A session's full story for the admin: the record, every event of it in order, its signatures.

Built from the record store only (the session record, the trail's events about the session, the
alarms raised on the same console while it ran, and each signature checked against the record
as it is now). Opening a story is an audited read (``session.viewed``), like a therapist's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text

from audit.events import AuditEvent
from audit.schema import AUDIT_COLUMNS
from audit.sessions import SessionBook
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
class SessionStory:
    record: SessionRecord
    pseudonym: str
    ruleset_version: str | None
    timeline: tuple[StoryLine, ...]
    signatures: tuple[SignatureCheck, ...]

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
    if action == "screening.override":
        return f"Screening override of {', '.join(data.get('rules') or [])}: “{data.get('reason')}”"
    if action in ("parameters.validated", "parameters.override"):
        line = f"Parameters {_fmt_params(data.get('parameters'))}: {data.get('verdict')}"
        findings = data.get("findings") or []
        if findings:
            line += " — " + "; ".join(f"{f.get('rule')}: {f.get('message')}" for f in findings)
        if data.get("override_reason"):
            line += f" — override reason “{data['override_reason']}”"
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
        events += self._alarms_during(events)
        events.sort(key=lambda e: e.seq)
        timeline = tuple(
            StoryLine(e.seq, e.ts, e.actor, e.action, kind_of(e.action), tell(e)) for e in events
        )
        screening = thaw(record.screening) if record.screening else {}
        return SessionStory(
            record=record,
            pseudonym=self._pseudonym(record.patient_id),
            ruleset_version=screening.get("ruleset_version") if screening else None,
            timeline=timeline,
            signatures=tuple(self.book.verify_signatures(record.session_id)),
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

    def _alarms_during(self, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Alarms raised or acknowledged on the session's console between its first and last
        event (alarms are about the console, not the session, in the trail)."""
        if not events:
            return []
        workstations = sorted({e.workstation for e in events})
        with self.trail.store.connection() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLS} FROM audit_events WHERE action IN "
                    "('alarm.raised', 'alarm.acknowledged') AND ts >= :a AND ts <= :b "
                    "ORDER BY ts, seq"
                ),
                {"a": events[0].ts, "b": events[-1].ts},
            ).all()
        found = [AuditEvent.from_row(tuple(r)) for r in rows]
        return [e for e in found if e.workstation in workstations]

    def _pseudonym(self, patient_id: str) -> str:
        with self.trail.store.connection() as conn:
            row = conn.execute(
                text("SELECT pseudonym FROM patients WHERE id = :p"), {"p": patient_id}
            ).first()
        return str(row[0]) if row else patient_id


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())
