"""The audit table's queries: every filter, paged by keyset, equals a plain filter of the whole
trail (SQLite file and PostgreSQL); reading is permission-checked and recorded."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit import Actor, AuditTrail, CheckpointSigner, Subject, open_store
from audit.migrate import upgrade
from audit.patients import PatientRegistry
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook
from audit.users import UserDirectory
from console.admin.audit_query import (
    AuditFilter,
    AuditQueries,
    FilterError,
    parse_when,
)
from console.admin.context import AdminServices
from console.auth import PermissionDenied, SignedInUser
from console.services import ConsoleServices
from tests.console.conftest import PASSWORD

WS = "ws-query"
SYSTEM = Actor.system(WS)
ADMIN = Actor("boss", "admin", WS)
THERAPISTS = [Actor(f"th{i}", "therapist", WS) for i in range(1, 4)]
SERVICE = Actor("svc", "service", WS)
SERIALS = ("RPW200-00001", "RPW200-00002", "E100-24-0117")


def _fill(trail: AuditTrail) -> dict[str, Any]:
    """A small clinic: users, patients with programmes and sessions on three units, unit
    events, alarms, and a spread of actions by several people."""
    users = UserDirectory(trail)
    users.add(SYSTEM, "boss", "Boss Admin", "admin", "x")
    for actor in THERAPISTS:
        users.add(ADMIN, actor.user_id, f"Therapist {actor.user_id}", "therapist", "x")
    users.add(ADMIN, "svc", "Service", "service", "x")
    patients = PatientRegistry(trail)
    programmes = ProgrammeBook(trail)
    book = SessionBook(trail)
    made: dict[str, Any] = {"patients": [], "sessions": []}
    for p in range(4):
        therapist = THERAPISTS[p % 3]
        patient = patients.create(therapist, f"KN-{p:04d}", date(1970 + p, 3, 4))
        made["patients"].append(patient)
        programmes.assign(therapist, patient.patient_id, "knee-load-sharing", "1", date(2026, 1, 5))
        for s in range(3):
            record = book.create(
                therapist,
                patient_id=patient.patient_id,
                protocol_id="knee-pt-epat",
                protocol_version="2026.1",
                modality="epat",
                session_date=date(2026, 2, 1 + s),
            )
            made["sessions"].append(record.session_id)
            serial = SERIALS[(p + s) % len(SERIALS)]
            book.update(therapist, record.session_id, {"device_serial": serial})
            for action in ("device.identify", "device.arm", "device.start", "device.stop"):
                book.record_event(therapist, record.session_id, action, {"ok": True})
            trail.append(therapist, "alarm.raised", Subject("alarm", "device.fault"), {"n": s})
        trail.append(ADMIN, "audit.queried", Subject("trail", "audit"), {"p": p})
    for serial in SERIALS:
        trail.append(SERVICE, "device.raw_command", Subject("device", serial), {"cmd": "HELLO"})
        trail.append(SERVICE, "device.diagnostics", Subject("device", serial), {"ok": True})
    trail.checkpoint()
    return made


def _all_rows(trail: AuditTrail) -> list[tuple[Any, ...]]:
    with trail.store.connection() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM audit_events")]


def _expected(trail: AuditTrail, flt: AuditFilter) -> list[int]:
    """The filter applied by hand to every event of the trail: seqs newest first."""
    with trail.store.connection() as conn:
        sessions = conn.exec_driver_sql(
            "SELECT id, patient_id, device_serial FROM treatment_sessions"
        ).all()
        programmes = conn.exec_driver_sql("SELECT id, patient_id FROM programme_assignments").all()
        patients = conn.exec_driver_sql("SELECT id, pseudonym FROM patients").all()
        rows = conn.exec_driver_sql(
            "SELECT seq, ts, actor, action, subject_type, subject_id FROM audit_events"
        ).all()
    allowed: list[set[tuple[str, str]]] = []
    if flt.session_id:
        allowed.append({("session", flt.session_id)})
    if flt.patient:
        pid = next(i for i, ps in patients if flt.patient in (i, ps))
        allowed.append(
            {("patient", pid)}
            | {("session", s) for s, p, _ in sessions if p == pid}
            | {("programme", g) for g, p in programmes if p == pid}
        )
    if flt.device_serial:
        allowed.append(
            {("device", flt.device_serial)}
            | {("session", s) for s, _, d in sessions if d == flt.device_serial}
        )
    subjects = set.intersection(*allowed) if allowed else None
    start = flt.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if flt.start else None
    end = flt.end.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if flt.end else None
    kept = []
    for seq, ts, actor, action, stype, sid in rows:
        if (start and ts < start) or (end and ts >= end):
            continue
        if flt.actor and actor != flt.actor:
            continue
        if flt.action:
            if flt.action.endswith(".*"):
                if not action.startswith(flt.action[:-1]):
                    continue
            elif action != flt.action:
                continue
        if subjects is not None and (stype, sid) not in subjects:
            continue
        kept.append((ts, seq))
    return [seq for _, seq in sorted(kept, reverse=True)]


def _paged(queries: AuditQueries, flt: AuditFilter, limit: int) -> list[int]:
    seqs: list[int] = []
    cursor = None
    for _ in range(1000):
        page = queries.page(flt, cursor, limit)
        seqs += [row.seq for row in page.rows]
        assert len(page.rows) <= limit
        if page.next_cursor is None:
            return seqs
        assert len(page.rows) == limit
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AuditTrail, dict]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    store = open_store(url)
    trail = AuditTrail(store, CheckpointSigner.generate(), WS, checkpoint_every=50)
    trail.register_signer(created=True)
    try:
        yield trail, _fill(trail)
    finally:
        store.dispose()


@pytest.mark.req("ADM-AUDIT-1")
def test_every_filter_pages_to_exactly_the_matching_events(
    filled: tuple[AuditTrail, dict],
) -> None:
    trail, made = filled
    queries = AuditQueries(trail.store)
    all_seqs = sorted(r[0] for r in _all_rows(trail))
    timestamps = sorted(r[2] for r in _all_rows(trail))
    lo = datetime.fromisoformat(timestamps[len(timestamps) // 4].replace("Z", "+00:00"))
    hi = datetime.fromisoformat(timestamps[3 * len(timestamps) // 4].replace("Z", "+00:00"))
    patient = made["patients"][1]
    filters = [
        AuditFilter(),
        AuditFilter(start=lo),
        AuditFilter(end=hi),
        AuditFilter(start=lo, end=hi),
        AuditFilter(actor="th2"),
        AuditFilter(actor="svc"),
        AuditFilter(action="device.arm"),
        AuditFilter(action="device.*"),
        AuditFilter(action="alarm.*", start=lo),
        AuditFilter(action="nothing.*"),
        AuditFilter(session_id=made["sessions"][4]),
        AuditFilter(patient=patient.pseudonym),
        AuditFilter(patient=patient.patient_id, action="device.*"),
        AuditFilter(device_serial=SERIALS[0]),
        AuditFilter(device_serial=SERIALS[2], actor="svc"),
        AuditFilter(device_serial=SERIALS[1], start=lo, end=hi, action="device.*"),
        AuditFilter(patient=patient.pseudonym, session_id=made["sessions"][0]),  # not theirs
        AuditFilter(patient=patient.pseudonym, session_id=made["sessions"][3]),
        AuditFilter(actor="th1", action="device.stop", start=lo),
    ]
    for flt in filters:
        expected = _expected(trail, flt)
        for limit in (1, 7, 200):
            assert _paged(queries, flt, limit) == expected, (flt, limit)
    assert _paged(queries, AuditFilter(), 13) == sorted(all_seqs, reverse=True)
    assert _expected(trail, filters[14]) and _expected(trail, filters[15])
    assert _expected(trail, filters[16]) == []


@pytest.mark.req("ADM-AUDIT-1")
def test_filter_lists_come_from_the_trail(filled: tuple[AuditTrail, dict]) -> None:
    trail, _ = filled
    queries = AuditQueries(trail.store)
    actions = queries.actions()
    assert actions == sorted({r[6] for r in _all_rows(trail)})
    assert queries.device_serials() == sorted(SERIALS)


@pytest.mark.req("ADM-AUDIT-1")
def test_bad_filters_say_what_to_change(filled: tuple[AuditTrail, dict]) -> None:
    trail, _ = filled
    queries = AuditQueries(trail.store)
    with pytest.raises(FilterError, match="no patient 'KN-9999'"):
        queries.page(AuditFilter(patient="KN-9999"))
    with pytest.raises(FilterError, match="family such as 'device"):
        AuditFilter(action="device.")
    now = datetime.now(UTC)
    with pytest.raises(FilterError, match="empty"):
        AuditFilter(start=now, end=now - timedelta(hours=1))
    with pytest.raises(FilterError, match="time zone"):
        AuditFilter(start=datetime(2026, 1, 1))
    with pytest.raises(FilterError, match="page holds"):
        queries.page(AuditFilter(), None, 0)
    assert parse_when("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when("2026-03-01", end_of_day=True) == datetime(2026, 3, 2, tzinfo=UTC)
    assert parse_when("2026-03-01 14:30") == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert parse_when("  ") is None
    with pytest.raises(FilterError, match="not a date"):
        parse_when("1.3.2026")


@pytest.mark.req("ADM-AUDIT-2")
def test_chain_link_shows_neighbours_links_and_the_signed_checkpoint(
    filled: tuple[AuditTrail, dict],
) -> None:
    trail, _ = filled
    queries = AuditQueries(trail.store)
    key = trail.signer.public

    def signature_ok(checkpoint: Any) -> bool:
        data = checkpoint.data
        return key.verifies(data["head_seq"], data["head_hash"], data["signature"])

    link = queries.chain_link(10, signature_ok)
    assert link is not None
    assert link.previous is not None and link.previous.seq == 9
    assert link.following is not None and link.following.seq == 11
    assert link.hash_ok and link.prev_link_ok and link.next_link_ok
    assert link.covering_checkpoint is not None and link.covering_checkpoint.seq > 10
    assert any("signature valid" in note for note in link.notes)
    assert queries.chain_link(10**9) is None
    if trail.store.dialect == "sqlite":  # an attacker edits an event with the file open
        conn = sqlite3.connect(trail.store.url.database)
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET data = ? WHERE seq = 10", (json.dumps({"x": 1}),))
        conn.commit()
        conn.close()
        tampered = queries.chain_link(10, signature_ok)
        assert tampered is not None and not tampered.hash_ok
        assert any("altered" in note for note in tampered.notes)


@pytest.mark.req("ADM-AUDIT-2")
@pytest.mark.req("ADM-ROLE-1")
def test_reading_the_trail_is_checked_and_recorded_once_per_filter(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    review = admin_services.review
    flt = AuditFilter(actor="admin")
    first = review.page(admin, flt, None, 2)
    assert first.next_cursor is not None
    head = services.trail.head()
    review.page(admin, flt, first.next_cursor, 2)
    assert services.trail.head() == head  # the next page is not a new question
    queried = services.trail.get(head.seq)
    assert queried.action == "audit.queried" and queried.data["filter"] == {"actor": "admin"}
    therapist = services.login("thera", PASSWORD)
    with pytest.raises(PermissionDenied):
        review.page(therapist, flt)
    denied = services.trail.get(services.trail.head().seq)
    assert denied.action == "access.denied" and denied.data["action"] == "view_audit"
    json_text = review.event_json(admin, queried.seq)
    assert json_text is not None and json.loads(json_text)["hash"] == queried.hash
