"""Printable reports: one session's story, and the sessions of a date range, as HTML.

The HTML is what Qt's PDF writer prints (``console/ui/admin/pdf.py``) and what the session page
shows, so the screen and the printout cannot disagree. Every report names its anchor: the trail
is signed (a checkpoint) just before the report is made and the report prints that checkpoint's
seq and hash, so a paper copy can later be checked against the trail. Signatures are printed as
their manifestation: name, time and meaning (21 CFR 11.50). Writing the file is audited
(``report.exported`` with the file's SHA-256).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy import text

from audit.canonical import utc_now_ts
from audit.events import Subject
from audit.trail import AuditTrail
from audit.values import thaw
from console.admin.story import SessionStories, SessionStory, StoryLine
from console.auth import AuthService, SignedInUser

MAX_RANGE_SESSIONS = 5000
KIND_COLOURS = {
    "fault": "#C62828",
    "alarm": "#9A5B00",
    "refusal": "#9A5B00",
    "signature": "#2E7D4F",
    "screening": "#13506A",
    "parameters": "#13506A",
}


class ReportError(ValueError):
    """The report cannot be made as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TrailAnchor:
    """The signed checkpoint a report is anchored to."""

    seq: int
    hash: str
    ts: str


@dataclass(frozen=True, slots=True)
class SessionReport:
    story: SessionStory
    anchor: TrailAnchor
    generated_at: str
    generated_by: str

    @property
    def title(self) -> str:
        return f"Session {self.story.record.session_id}"


@dataclass(frozen=True, slots=True)
class RangeRow:
    session_id: str
    session_date: date
    pseudonym: str
    protocol_id: str
    protocol_version: str
    modality: str
    state: str
    delivered: int | None
    pain_before: int | None
    pain_after: int | None
    adverse_events: tuple[str, ...]
    signatures: int


@dataclass(frozen=True, slots=True)
class RangeReport:
    start: date
    end: date
    rows: tuple[RangeRow, ...]
    anchor: TrailAnchor
    generated_at: str
    generated_by: str

    @property
    def title(self) -> str:
        return f"Sessions {self.start.isoformat()} to {self.end.isoformat()}"

    @property
    def pulses_by_modality(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for row in self.rows:
            totals[row.modality] += row.delivered or 0
        return dict(totals)

    @property
    def sessions_with_adverse_events(self) -> int:
        return sum(1 for row in self.rows if row.adverse_events)


class Reports:
    def __init__(self, auth: AuthService, trail: AuditTrail, stories: SessionStories) -> None:
        self.auth = auth
        self.trail = trail
        self.stories = stories

    def _anchor(self) -> TrailAnchor:
        checkpoint = self.trail.checkpoint()
        return TrailAnchor(checkpoint.seq, checkpoint.hash, checkpoint.ts)

    def session_report(self, user: SignedInUser, session_id: str) -> SessionReport:
        self.auth.require(user, "view_audit")
        story = self.stories.story(user, session_id)
        return SessionReport(story, self._anchor(), utc_now_ts(), user.full_name)

    def range_report(self, user: SignedInUser, start: date, end: date) -> RangeReport:
        """Every session dated ``start``..``end`` (inclusive), with the figures per session."""
        self.auth.require(user, "view_audit")
        if end < start:
            raise ReportError("the range is empty: 'from' must not be after 'to'")
        sql = (
            "SELECT s.id, s.session_date, p.pseudonym, s.protocol_id, s.protocol_version, "
            "s.modality, s.state, s.delivered, s.pain_before, s.pain_after, s.adverse_events, "
            "(SELECT count(*) FROM session_signatures g WHERE g.session_id = s.id) "
            "FROM treatment_sessions s JOIN patients p ON p.id = s.patient_id "
            "WHERE s.session_date >= :a AND s.session_date <= :b "
            "ORDER BY s.session_date, s.created_at LIMIT :cap"
        )
        with self.trail.store.connection() as conn:
            rows = conn.execute(text(sql), {"a": start, "b": end, "cap": MAX_RANGE_SESSIONS + 1})
            found = [
                RangeRow(
                    r[0],
                    r[1] if isinstance(r[1], date) else date.fromisoformat(str(r[1])),
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    r[9],
                    tuple(_json_list(r[10])),
                    int(r[11]),
                )
                for r in rows
            ]
        if len(found) > MAX_RANGE_SESSIONS:
            raise ReportError(
                f"more than {MAX_RANGE_SESSIONS:,} sessions in that range: print a shorter range"
            )
        self.trail.append(
            user.actor,
            "report.prepared",
            Subject("trail", "audit"),
            {
                "kind": "range",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "sessions": len(found),
            },
        )
        return RangeReport(start, end, tuple(found), self._anchor(), utc_now_ts(), user.full_name)

    def record_export(
        self, user: SignedInUser, report: SessionReport | RangeReport, path: Path
    ) -> str:
        """Audit a written report file; returns its SHA-256."""
        self.auth.require(user, "view_audit")
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if isinstance(report, SessionReport):
            subject = Subject("session", report.story.record.session_id)
            extra: dict[str, Any] = {"kind": "session"}
        else:
            subject = Subject("trail", "audit")
            extra = {
                "kind": "range",
                "start": report.start.isoformat(),
                "end": report.end.isoformat(),
            }
        self.trail.append(
            user.actor,
            "report.exported",
            subject,
            {
                **extra,
                "file_name": Path(path).name,
                "file_sha256": digest,
                "anchor_seq": report.anchor.seq,
                "anchor_hash": report.anchor.hash,
            },
        )
        return digest


def _json_list(value: Any) -> list[str]:
    import json

    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        loaded = json.loads(value)
        return [str(v) for v in loaded] if isinstance(loaded, list) else []
    return []


# ---------------------------------------------------------------------------- HTML
_STYLE = """
body { font-family: 'DejaVu Sans'; font-size: 9pt; color: #1D2A33; }
h1 { font-size: 16pt; color: #13506A; margin-bottom: 2px; }
h2 { font-size: 11pt; color: #13506A; margin-top: 12px; margin-bottom: 4px;
     border-bottom: 1px solid #C9D3DB; }
table { border-collapse: collapse; }
td, th { padding: 2px 6px; vertical-align: top; }
th { background: #E3E9EE; text-align: left; }
.k { color: #56656F; }
.mono { font-family: 'DejaVu Sans Mono'; font-size: 8pt; }
.bad { color: #C62828; font-weight: bold; }
.ok { color: #2E7D4F; font-weight: bold; }
"""


def _e(value: object) -> str:
    return escape("—" if value is None or value == "" else str(value))


def _kv(pairs: Iterable[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><td class='k'>{escape(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _params_text(params: Mapping[str, Any] | None) -> str:
    if not params:
        return "—"
    plain = thaw(params)
    parts = []
    if plain.get("pressure_bar") is not None:
        parts.append(f"pressure {plain['pressure_bar']} bar")
    if plain.get("field_mt") is not None:
        parts.append(f"field {plain['field_mt']} mT")
    if plain.get("frequency_hz") is not None:
        parts.append(f"frequency {plain['frequency_hz']} Hz")
    if plain.get("pulses") is not None:
        parts.append(f"{plain['pulses']:,} pulses")
    return ", ".join(parts)


def _lines_table(lines: Iterable[StoryLine]) -> str:
    body = []
    for line in lines:
        colour = KIND_COLOURS.get(line.kind, "#1D2A33")
        body.append(
            f"<tr><td class='mono'>{line.seq}</td><td class='mono'>{escape(line.ts)}</td>"
            f"<td>{escape(line.actor)}</td>"
            f"<td style='color:{colour}'>{escape(line.text)}</td></tr>"
        )
    if not body:
        return "<p class='k'>none</p>"
    return (
        "<table width='100%'><tr><th>seq</th><th>time (UTC)</th><th>by</th><th>what</th></tr>"
        + "".join(body)
        + "</table>"
    )


def anchor_html(anchor: TrailAnchor, generated_at: str, generated_by: str) -> str:
    return (
        "<h2>Anchor in the audit trail</h2>"
        f"<p>Printed {escape(generated_at)} by {escape(generated_by)}. The trail was signed at "
        f"seq <b>{anchor.seq}</b> ({escape(anchor.ts)}); head hash:</p>"
        f"<p class='mono'>{escape(anchor.hash)}</p>"
        "<p class='k'>An auditor with the clinic's public key checks this printout against the "
        "trail: the event with that seq must carry exactly this hash.</p>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "—" if value is None or value == "" else str(value)


def _decision_text(summary: Mapping[str, Any]) -> str:
    rules = ", ".join(summary.get("rules") or []) or "none"
    return f"{summary.get('decision')} (rules fired: {rules})"


def _screening_html(
    decision: str | None, screening: Mapping[str, Any], override_reason: str | None
) -> str:
    """The first decision, every correction (who, when, old → new, reason) and the decision
    in force (SES-SCREEN-1): never only the last decision."""
    first = screening.get("first_decision")
    corrections = screening.get("corrections") or []
    rows: list[tuple[str, object]] = []
    if isinstance(first, Mapping):
        rows.append((f"First decision ({first.get('time')})", _decision_text(first)))
    for i, c in enumerate(corrections, start=1):
        changes = "; ".join(
            f"{x.get('question')}: {_fmt(x.get('from'))} → {_fmt(x.get('to'))}"
            for x in c.get("changes") or []
        )
        reason = c.get("reason")
        rows.append(
            (
                f"Correction {i} ({c.get('time')}, by {c.get('by')})",
                f"{changes} — decision {c.get('from_decision')} → {c.get('to_decision')}"
                + (f"; reason “{reason}”" if reason else ""),
            )
        )
    rows += [
        ("Decision" + (" in force" if corrections else ""), decision),
        ("Rules that fired", ", ".join(screening.get("rules") or []) or "none"),
        ("Override reason", override_reason),
    ]
    return _kv(rows)


def _validation_text(validation: Mapping[str, Any] | None) -> str | None:
    """The decision, and the override that made it acceptable (SES-OVR-2)."""
    if not validation:
        return None
    text = str(validation.get("decision"))
    override = validation.get("override")
    if isinstance(override, Mapping) and override.get("reason"):
        text += f", accepted with the override “{override['reason']}”"
    elif validation.get("session_overrides"):
        text += " for the parameters now set; overrides earlier in the session below"
    return text


def story_html(story: SessionStory) -> str:
    """The session's story (the same HTML on screen and in the PDF)."""
    r = story.record
    screening = thaw(r.screening) if r.screening else {}
    delivered = f"{r.delivered:,}" if r.delivered is not None else "—"
    target = f"{story.target_pulses:,}" if story.target_pulses is not None else "—"
    pain = (
        f"{_e(r.pain_before)} → {_e(r.pain_after)}"
        if r.pain_before is not None or r.pain_after is not None
        else "—"
    )
    parts = [
        f"<h1>Session {escape(r.session_id)}</h1>",
        _kv(
            [
                ("Patient (pseudonym)", story.pseudonym),
                ("Date", r.session_date.isoformat()),
                ("Protocol", f"{r.protocol_id} version {r.protocol_version}"),
                ("Contraindication rule set", story.ruleset_version),
                ("Modality", r.modality.upper()),
                ("Therapist", r.therapist_id),
                ("State", r.state),
                ("Unit", f"{r.device_model or '—'} serial {r.device_serial or '—'}"),
                (
                    "Applicator",
                    f"{r.applicator_type or '—'} serial {r.applicator_serial or '—'}, shots "
                    f"{_e(r.applicator_shots_before)} → {_e(r.applicator_shots_after)}",
                ),
            ]
        ),
        "<h2>Screening</h2>",
        _screening_html(r.screening_decision, screening, r.screening_override_reason),
    ]
    answers = screening.get("answers") or (thaw(r.screening_answers) if r.screening_answers else {})
    if answers:
        parts.append(
            "<table>"
            + "".join(
                f"<tr><td class='k'>{escape(str(k))}</td><td>{_e(v)}</td></tr>"
                for k, v in sorted(answers.items())
            )
            + "</table>"
        )
    parts += [
        "<h2>Parameters and titrations</h2>",
        _kv(
            [
                ("Planned / loaded", _params_text(r.parameters)),
                ("Validation", _validation_text(thaw(r.validation) if r.validation else None)),
                ("Parameter override reason", r.parameter_override_reason),
            ]
        ),
    ]
    overrides = (thaw(r.validation) or {}).get("session_overrides") if r.validation else None
    for o in overrides or []:
        parts.append(
            f"<p>Override at {_e(o.get('time'))} by {_e(o.get('by'))} for "
            f"{escape(_params_text(o.get('parameters')))}"
            + (" (titration)" if o.get("titration") else "")
            + f": “{_e(o.get('reason'))}” — {_e('; '.join(o.get('for') or []))}</p>"
        )
    for i, change in enumerate(thaw(r.titrations) or [], start=1):
        override = change.get("override_reason")
        parts.append(
            f"<p>Titration {i} at {_e(change.get('time'))} after "
            f"{_e(change.get('delivered_before'))} pulses: "
            f"{escape(_params_text(change.get('from')))} → "
            f"{escape(_params_text(change.get('to')))}"
            + (f" — override “{escape(override)}”" if override else "")
            + (
                f" — covered by the override “{escape(change['override_in_force'])}”"
                if change.get("override_in_force") and not override
                else ""
            )
            + "</p>"
        )
    parts += [
        "<h2>Delivery</h2>",
        _kv(
            [
                ("Pulses delivered", f"{delivered} of {target}"),
                ("Segments (per load)", ", ".join(str(s) for s in thaw(r.segments)) or "—"),
                ("Interruptions", len(r.interruptions)),
                ("End reason", r.end_reason),
            ]
        ),
        "<h2>Faults and alarms</h2>",
    ]
    faults = [
        f"{_e(f.get('time'))}: {_e(f.get('cause'))} (delivered {_e(f.get('delivered'))})"
        for f in thaw(r.faults)
        if isinstance(f, Mapping)
    ]
    parts.append(
        "<ul>" + "".join(f"<li class='bad'>{f}</li>" for f in faults) + "</ul>"
        if faults
        else "<p class='k'>no fault recorded</p>"
    )
    parts.append(_lines_table(story.lines_of("fault", "alarm")))
    original = story.signed_original
    if original is not None:  # the outcome as signed; the addenda follow the signatures
        pain = f"{_e(original.get('pain_before'))} → {_e(original.get('pain_after'))}"
        adverse = ", ".join(original.get("adverse_events") or []) or "none"
        notes = original.get("notes")
    else:
        adverse, notes = ", ".join(r.adverse_events) or "none", r.notes
    parts += [
        "<h2>Outcome" + (" (as signed)" if original is not None else "") + "</h2>",
        _kv(
            [
                ("Pain (NRS 0–10) before → after", pain),
                ("Adverse events", adverse),
                ("Notes", notes),
            ]
        ),
        "<h2>Signatures</h2>",
    ]
    if story.signatures:
        rows = "".join(
            f"<tr><td>{escape(c.signature.signer_name)} ({escape(c.signature.signer_id)})</td>"
            f"<td>{escape(c.signature.signed_at)} UTC</td><td>{escape(c.signature.meaning)}</td>"
            f"<td class='{'ok' if c.valid else 'bad'}'>{escape(c.reason)}</td></tr>"
            for c in story.signatures
        )
        parts.append(
            "<table width='100%'><tr><th>name</th><th>time</th><th>meaning</th><th>check</th></tr>"
            + rows
            + "</table>"
        )
    else:
        parts.append("<p class='bad'>not signed</p>")
    if story.addenda:
        parts.append("<h2>Addenda (after the signed original)</h2>")
        for i, addendum in enumerate(story.addenda, start=1):
            changes = "; ".join(
                f"{name}: {_fmt(c.get('from'))} → {_fmt(c.get('to'))}"
                for name, c in addendum.changes.items()
                if isinstance(c, Mapping)
            )
            signed = (
                f"<span class='ok'>signed by {escape(addendum.signed_by)}</span>"
                if addendum.signed_by
                else "<span class='bad'>NOT signed</span>"
            )
            parts.append(
                f"<p>Addendum {i} (seq {addendum.seq}, {escape(addendum.ts)}, by "
                f"{escape(addendum.actor)}): “{escape(addendum.reason)}” — {escape(changes)}; "
                f"{signed}</p>"
            )
    parts += ["<h2>Device commands and status</h2>", _lines_table(story.lines_of("device"))]
    parts += ["<h2>Every event of the session</h2>", _lines_table(story.timeline)]
    return "".join(parts)


def session_report_html(report: SessionReport) -> str:
    return (
        f"<html><head><style>{_STYLE}</style></head><body>"
        + story_html(report.story)
        + anchor_html(report.anchor, report.generated_at, report.generated_by)
        + "</body></html>"
    )


def range_report_html(report: RangeReport) -> str:
    pulses = ", ".join(f"{m.upper()} {n:,}" for m, n in sorted(report.pulses_by_modality.items()))
    header = _kv(
        [
            ("Sessions", f"{len(report.rows):,}"),
            ("Pulses delivered", pulses or "—"),
            ("Sessions with adverse events", f"{report.sessions_with_adverse_events:,}"),
            ("Unsigned sessions", sum(1 for r in report.rows if r.signatures == 0)),
        ]
    )
    rows = "".join(
        f"<tr><td>{r.session_date.isoformat()}</td><td class='mono'>{escape(r.session_id)}</td>"
        f"<td>{escape(r.pseudonym)}</td><td>{escape(r.protocol_id)} v{escape(r.protocol_version)}"
        f"</td><td>{escape(r.state)}</td><td>{_e(r.delivered)}</td>"
        f"<td>{_e(r.pain_before)} → {_e(r.pain_after)}</td>"
        f"<td>{escape(', '.join(r.adverse_events) or '—')}</td><td>{r.signatures}</td></tr>"
        for r in report.rows
    )
    table = (
        "<table width='100%'><tr><th>date</th><th>session</th><th>patient</th><th>protocol</th>"
        "<th>state</th><th>pulses</th><th>pain</th><th>adverse events</th><th>signatures</th></tr>"
        + rows
        + "</table>"
    )
    return (
        f"<html><head><style>{_STYLE}</style></head><body><h1>{escape(report.title)}</h1>"
        + header
        + "<h2>Sessions</h2>"
        + table
        + anchor_html(report.anchor, report.generated_at, report.generated_by)
        + "</body></html>"
    )


def today() -> date:
    return datetime.now().date()
