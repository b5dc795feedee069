"""The record projection: the record tables are checked against the trail (issue 11, item 1).

A change to a record row behind the trail's back (a plain SQL UPDATE, DELETE or INSERT, a
signature moved), a signature whose content hash does not match, and a signed record changed
without an amendment are each reported with the row's type, id, field and the seq of the event
that last set the row; an untouched record made through the real APIs verifies. SQLite and
PostgreSQL.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from audit import AuditTrail, CheckpointSigner, RecordStore, Subject, open_store
from audit.errors import AuditDataError
from audit.records import (
    BACKFILL_ACTION,
    RECORD_TABLES,
    export_records,
    fields_hash,
    store_records,
    verify_records,
)
from audit.sessions import SessionBook
from audit.verify import verify_store
from console.cli import main
from tests.audit.helpers import THERAPIST, WORKSTATION, attacker_sql, clinic_record

pytestmark = pytest.mark.req("AUD-REC-2")


@pytest.fixture
def clinic(trail: AuditTrail) -> dict[str, str]:
    return clinic_record(trail)


def last_set(store: RecordStore, kind: str, rid: str) -> int:
    """The seq of the last event whose data.record names (kind, rid), read independently."""
    found = 0
    with store.connection() as conn:
        for seq, data in conn.exec_driver_sql("SELECT seq, data FROM audit_events ORDER BY seq"):
            record = json.loads(data).get("record")
            if record and (record["type"], record["id"]) == (kind, rid):
                found = int(seq)
    assert found, f"no event recorded {kind} {rid}"
    return found


def problems_of(store: RecordStore) -> set[tuple[str, str, str, str | None, int]]:
    report = verify_records(store)
    return {(p.kind, p.type, p.id, p.field, p.seq) for p in report.problems}


@pytest.mark.req("AUD-REC-1")
def test_an_untouched_record_after_a_realistic_clinic_day_verifies(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail
) -> None:
    report = verify_records(store)
    assert report.ok, [str(p) for p in report.problems]
    # 3 users, a patient, a programme and its 2 phases, 2 sessions, 2 signatures
    assert report.records == 11
    assert verify_store(store).ok
    counts: dict[str, int] = {}
    for record in store_records(store):
        counts[record["type"]] = counts.get(record["type"], 0) + 1
    assert counts == {
        "patient": 1,
        "programme": 1,
        "programme_phase": 2,
        "session": 2,
        "signature": 2,
        "user": 3,
    }


@pytest.mark.req("AUD-REC-1")
def test_every_record_event_carries_the_complete_row_and_no_secret(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail
) -> None:
    columns = {kind: len(table.columns) for kind, table in RECORD_TABLES.items()}
    with store.connection() as conn:
        rows = conn.exec_driver_sql("SELECT data FROM audit_events").all()
        hashes = [r[0] for r in conn.exec_driver_sql("SELECT password_hash FROM users")]
    records = [json.loads(r[0]).get("record") for r in rows]
    records = [r for r in records if r]
    assert records
    for record in records:
        extra = 1 if record["type"] == "signature" else 0  # the constant record_type
        assert len(record["fields"]) == columns[record["type"]] + extra, record
    text = "\n".join(r[0] for r in rows)
    assert hashes and not any(h in text for h in hashes)  # credentials only as sha256:
    user = next(r for r in reversed(records) if r["type"] == "user" and r["id"] == "th1")
    assert user["fields"]["password_hash"].startswith("sha256:")


@pytest.mark.req("AUD-REC-2")
def test_plain_update_of_delivered_and_pain_after_no_longer_verifies(
    clinic: dict[str, str], store: RecordStore
) -> None:
    """The defect: ``UPDATE treatment_sessions SET delivered=1000, pain_after=0`` (no trigger
    to bypass) left ``audit verify`` saying VERIFIED."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE treatment_sessions SET delivered=1000, pain_after=0")
    found = problems_of(store)
    for sid in (clinic["session"], clinic["open_session"]):
        seq = last_set(store, "session", sid)
        assert ("field_differs", "session", sid, "delivered", seq) in found
        assert ("field_differs", "session", sid, "pain_after", seq) in found
    assert len(found) == 4
    assert verify_store(store).ok  # the trail itself is intact: the record is what failed


#: (table, column, SQL value, record key): a text, an integer, a JSON and a nullable column of
#: each record table, and the other kinds a table has (date, boolean, credential)
CHANGES = [
    ("users", "full_name", "'Mallory'", "full_name"),
    ("users", "failed_logins", "7", "failed_logins"),
    ("users", "active", "FALSE", "active"),
    ("users", "password_hash", "'$argon2id$attacker'", "password_hash"),
    ("patients", "pseudonym", "'KN-9999'", "pseudonym"),
    ("patients", "birth_date", "'1950-01-01'", "birth_date"),
    ("programme_assignments", "template_id", "'other'", "template_id"),
    ("programme_assignments", "current_phase", "5", "current_phase"),
    ("programme_assignments", "end_reason", "'ended'", "end_reason"),
    ("programme_phases", "note", "'rewritten'", "note"),
    ("programme_phases", "phase", "7", "phase"),
    ("programme_phases", "ended_on", "NULL", "ended_on"),
    ("treatment_sessions", "notes", "'rewritten'", "notes"),
    ("treatment_sessions", "applicator_shots_after", "99", "applicator_shots_after"),
    ("treatment_sessions", "parameters", """'{"pressure_cbar":400}'""", "parameters"),
    ("treatment_sessions", "count_evidence", "'{}'", "count_evidence"),
    ("treatment_sessions", "adverse_events", "'[]'", "adverse_events"),
    ("treatment_sessions", "pain_before", "NULL", "pain_before"),
    ("treatment_sessions", "screening_override_reason", "'x'", "screening_override_reason"),
    ("session_signatures", "signer_name", "'Mallory'", "signer_name"),
    ("session_signatures", "audit_seq", "1", "audit_seq"),
    ("session_signatures", "meaning", "'reviewed'", "meaning"),
    ("session_signatures", "record_hash", f"'{'0' * 64}'", "content_hash"),
    ("session_signatures", "content_hash", f"'{'0' * 64}'", "session_content_hash"),
]
_KIND = {table.name: kind for kind, table in RECORD_TABLES.items()}


@pytest.mark.req("AUD-REC-2")
@pytest.mark.parametrize(("table", "column", "value", "key"), CHANGES, ids=lambda v: str(v))
def test_each_kind_of_field_of_each_table_changed_behind_the_trail_is_named(
    clinic: dict[str, str], store: RecordStore, table: str, column: str, value: str, key: str
) -> None:
    kind = _KIND[table]
    rid = clinic[kind]
    attacker_sql(
        store, [(f"UPDATE {table} SET {column} = {value} WHERE id = %s", [_id(kind, rid)])]
    )
    seq = last_set(store, kind, rid)
    assert problems_of(store) == {("field_differs", kind, rid, key, seq)}


def _id(kind: str, rid: str) -> Any:
    return int(rid) if kind in ("programme_phase", "signature") else rid


@pytest.mark.req("AUD-REC-2")
def test_a_deleted_row_is_reported_missing_with_its_last_event(
    clinic: dict[str, str], store: RecordStore
) -> None:
    sid = clinic["open_session"]
    attacker_sql(
        store,
        [
            ("DELETE FROM session_events WHERE session_id = %s", [sid]),
            ("DELETE FROM treatment_sessions WHERE id = %s", [sid]),
        ],
    )
    assert problems_of(store) == {
        ("missing_row", "session", sid, None, last_set(store, "session", sid))
    }


@pytest.mark.req("AUD-REC-2")
def test_an_inserted_row_is_reported_as_made_by_no_event(
    clinic: dict[str, str], store: RecordStore
) -> None:
    attacker_sql(
        store,
        [
            (
                "INSERT INTO patients (id, pseudonym, birth_date, created_at, created_by) "
                "VALUES (%s, %s, %s, %s, %s)",
                ["pt-forged", "KN-6666", "1960-01-01", "2026-01-01T00:00:00.000000Z", "th1"],
            )
        ],
    )
    assert problems_of(store) == {("extra_row", "patient", "pt-forged", None, 0)}


@pytest.mark.req("AUD-REC-3")
def test_a_signature_moved_to_another_session_is_reported(
    clinic: dict[str, str], store: RecordStore
) -> None:
    sig = clinic["signature"]
    attacker_sql(
        store,
        [
            (
                "UPDATE session_signatures SET session_id = %s WHERE id = %s",
                [clinic["open_session"], int(sig)],
            )
        ],
    )
    assert problems_of(store) == {
        ("field_differs", "signature", sig, "record_id", last_set(store, "signature", sig))
    }


def _session_fields(store: RecordStore, sid: str) -> dict[str, Any]:
    record = next(r for r in store_records(store) if r["type"] == "session" and r["id"] == sid)
    fields: dict[str, Any] = record["fields"]
    return fields


@pytest.mark.req("AUD-REC-3")
@pytest.mark.parametrize("how", ["no_amendment", "amends_another_seq", "amendment_without_reason"])
def test_a_signed_record_changed_without_an_amendment_is_reported(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail, how: str
) -> None:
    """Store and trail agree (someone with the append path wrote both), but the change after
    the "performed" signature names no signature seq and reason."""
    sid = clinic["session"]
    signature_seq = last_set(store, "signature", clinic["signature"])
    fields = dict(_session_fields(store, sid), pain_after=0)
    data: dict[str, Any] = {"record": {"type": "session", "id": sid, "fields": fields}}
    if how == "amends_another_seq":
        data.update(amends=signature_seq - 1, reason="tidying up the record")
    elif how == "amendment_without_reason":
        data.update(amends=signature_seq)
    with trail.write() as session:  # the append path a change of the row uses
        event = trail.append_in(
            session, THERAPIST, "session.updated", Subject("session", sid), data
        )
    attacker_sql(store, [("UPDATE treatment_sessions SET pain_after = 0 WHERE id = %s", [sid])])
    assert problems_of(store) == {("signed_changed", "session", sid, "pain_after", event.seq)}


@pytest.mark.req("AUD-REC-3")
def test_an_amendment_naming_the_signature_and_a_reason_verifies(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail
) -> None:
    book = SessionBook(trail)
    sid = clinic["session"]
    amended = book.amend(
        THERAPIST, sid, {"pain_after": 2}, "pain re-rated on the day", book.events(sid)[0].audit_seq
    )
    assert amended.pain_after == 2
    last = trail.events(after_seq=trail.head().seq - 1)[0]  # type: ignore[union-attr]
    assert last.data["amends"] == last_set(store, "signature", clinic["signature"])
    assert verify_records(store).ok


@pytest.mark.req("AUD-REC-3")
def test_a_signature_whose_content_hash_does_not_match_the_record_is_reported(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail
) -> None:
    sid = clinic["open_session"]
    fields = _session_fields(store, sid)
    assert fields_hash(fields)  # the real hash is over these fields
    forged = {
        "id": 99,
        "record_type": "session",
        "record_id": sid,
        "signer": "th1",
        "signer_name": "Thérèse Ødegård",
        "signed_at": "2026-01-19T12:00:00.000000Z",
        "meaning": "performed",
        "content_hash": "0" * 64,
        "session_content_hash": "0" * 64,
        "audit_seq": trail.head().seq + 1,  # type: ignore[union-attr]
        "record_hash": None,
    }
    with trail.write() as session:
        event = trail.append_in(
            session,
            THERAPIST,
            "session.signed",
            Subject("session", sid),
            {"record": {"type": "signature", "id": "99", "fields": forged}},
        )
    found = problems_of(store)
    assert ("signature_hash", "signature", "99", "content_hash", event.seq) in found
    assert ("missing_row", "signature", "99", None, event.seq) in found


@pytest.mark.req("AUD-REC-4")
def test_the_records_export_is_the_stores_rows_sorted_by_type_then_id(
    clinic: dict[str, str], store: RecordStore, tmp_path: Path
) -> None:
    out = tmp_path / "records.jsonl"
    result = export_records(store, out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert result.records == len(lines) == 11
    assert [(r["type"], r["id"]) for r in lines] == sorted((r["type"], r["id"]) for r in lines)
    assert all(set(r) == {"type", "id", "fields"} for r in lines)
    assert lines == list(store_records(store))


# --------------------------------------------------------------------------- the command line
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THERAPY_CONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("THERAPY_CONSOLE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("THERAPY_CONSOLE_WORKSTATION", "room-1")
    monkeypatch.delenv("THERAPY_CONSOLE_DB", raising=False)
    monkeypatch.delenv("THERAPY_CONSOLE_SIGNING_KEY", raising=False)
    return tmp_path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch) -> Any:
    mp.setattr(sys, "stdin", io.StringIO(""))
    code = main(args)
    return code, capsys.readouterr().out


@pytest.mark.req("AUD-REC-2")
@pytest.mark.req("AUD-REC-4")
def test_audit_verify_on_the_command_line_fails_on_a_plain_update_naming_the_row(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cli(["db", "upgrade"], capsys, monkeypatch)[0] == 0
    db = home / "data" / "therapy-console.sqlite3"
    store = open_store(str(db))
    try:
        trail = AuditTrail(store, CheckpointSigner.generate(), WORKSTATION)
        trail.register_signer(created=True)
        ids = clinic_record(trail)
    finally:
        store.dispose()
    code, out = _cli(["audit", "verify"], capsys, monkeypatch)
    assert code == 0, out
    assert "record of 11 rows" in out and out.count("VERIFIED") == 2
    code, out = _cli(
        ["audit", "export", "--format", "records", "--out", str(home / "r.jsonl")],
        capsys,
        monkeypatch,
    )
    assert code == 0 and "exported 11 record rows" in out
    exported = (home / "r.jsonl").read_text(encoding="utf-8")

    with open_store(str(db)).engine.begin() as conn:
        conn.exec_driver_sql("UPDATE treatment_sessions SET delivered=1000, pain_after=0")
    code, out = _cli(["audit", "verify"], capsys, monkeypatch)
    assert code == 1
    assert f"session {ids['session']} field delivered: store has 1000, the trail 2000" in out
    assert f"session {ids['open_session']} field pain_after: store has 0, the trail 3" in out
    assert "FAILED — 4 problem(s)" in out
    code, out = _cli(
        ["audit", "export", "--format", "records", "--out", str(home / "r2.jsonl")],
        capsys,
        monkeypatch,
    )
    assert code == 0 and (home / "r2.jsonl").read_text(encoding="utf-8") != exported


@pytest.mark.req("AUD-REC-1")
def test_record_is_refused_in_events_that_change_no_row(
    clinic: dict[str, str], trail: AuditTrail
) -> None:
    fake = {"record": {"type": "patient", "id": clinic["patient"], "fields": {}}}
    with pytest.raises(AuditDataError, match="reserved"):
        trail.append(THERAPIST, "patient.viewed", Subject("patient", clinic["patient"]), fake)
    with pytest.raises(AuditDataError, match="reserved"):
        SessionBook(trail).record_event(THERAPIST, clinic["session"], "device.arm", fake)


@pytest.mark.req("AUD-REC-1")
def test_backfill_action_is_reserved_for_the_migration(
    clinic: dict[str, str], store: RecordStore
) -> None:
    with store.connection() as conn:
        count = conn.exec_driver_sql(
            f"SELECT count(*) FROM audit_events WHERE action = '{BACKFILL_ACTION}'"
        ).scalar()
    assert count == 0  # a fresh database has nothing to backfill: rows carry their records


@pytest.mark.req("AUD-REC-2")
def test_verification_while_a_console_keeps_writing_raises_no_false_alarm(
    clinic: dict[str, str], store: RecordStore, trail: AuditTrail
) -> None:
    """The replay and the tables are read in one snapshot: rows written meanwhile are neither
    extra nor different."""
    import threading
    from datetime import date

    from audit.patients import PatientRegistry

    stop = threading.Event()
    written = []
    failures: list[BaseException] = []

    def console() -> None:
        book, patients = SessionBook(trail), PatientRegistry(trail)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                book.update(THERAPIST, clinic["open_session"], {"notes": f"note {n}"})
                written.append(patients.create(THERAPIST, f"KN-L{n:04d}", date(1980, 1, 1)))
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=console)
    thread.start()
    try:
        reports = [verify_records(store) for _ in range(8)]
    finally:
        stop.set()
        thread.join(30)
    assert not failures and written
    assert all(r.ok for r in reports), [str(p) for r in reports for p in r.problems]
    assert verify_records(store).ok
