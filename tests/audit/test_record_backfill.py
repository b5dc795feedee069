"""Migration 0004: a record written before the projection keeps verifying after the upgrade.

The older databases are made as the older console made them: the schema at revision 0003 (or
0001, migrated through the whole chain), rows written by SQL and events without ``data.record``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from audit import AuditTrail, CheckpointSigner, RecordStore, Subject, open_store
from audit.migrate import current_revision, upgrade
from audit.records import BACKFILL_ACTION, fields_hash, store_records, verify_records
from audit.sessions import SessionBook
from audit.verify import verify_store
from tests.audit.helpers import ADMIN, SYSTEM, THERAPIST, WORKSTATION, attacker_sql

pytestmark = pytest.mark.req("AUD-REC-5")
TS = "2026-01-12T10:00:00.000000Z"


def older_clinic(url: str, revision: str, signer: CheckpointSigner, patients: int = 1) -> dict:
    """A database at ``revision`` with users, patients, a programme and its phase, a signed
    session and an unsigned one, written as the console of that revision wrote them."""
    upgrade(url, revision)
    store = open_store(url, check_schema=False)
    try:
        trail = AuditTrail(store, signer, WORKSTATION)
        trail.register_signer(created=True)
        with trail.write() as s:
            for uid, name, role, by in (
                ("admin1", "Ada Admin", "admin", SYSTEM),
                ("th1", "Thérèse Ødegård", "therapist", ADMIN),
            ):
                s.execute(
                    text(
                        "INSERT INTO users (id, full_name, role, password_hash, active, "
                        "failed_logins, locked, created_at, password_changed_at) VALUES "
                        "(:i, :n, :r, :h, TRUE, 0, FALSE, :t, :t)"
                    ),
                    {"i": uid, "n": name, "r": role, "h": f"$argon2id$old-{uid}", "t": TS},
                )
                trail.append_in(s, by, "user.created", Subject("user", uid), {"role": role})
        for n in range(patients):
            with trail.write() as s:
                s.execute(
                    text(
                        "INSERT INTO patients (id, pseudonym, birth_date, created_at, "
                        "created_by) VALUES (:i, :p, '1971-03-09', :t, 'th1')"
                    ),
                    {"i": f"pt-{n:05d}", "p": f"KN-{n:05d}", "t": TS},
                )
                trail.append_in(s, THERAPIST, "patient.created", Subject("patient", f"pt-{n:05d}"))
        with trail.write() as s:
            s.execute(
                text(
                    "INSERT INTO programme_assignments (id, patient_id, template_id, "
                    "template_version, current_phase, status, start_date, created_at, "
                    "updated_at) VALUES ('pg-1', 'pt-00000', 'knee-pfp', '1', 1, 'active', "
                    "'2026-01-05', :t, :t)"
                ),
                {"t": TS},
            )
            s.execute(
                text(
                    "INSERT INTO programme_phases (assignment_id, phase, started_on, note) "
                    "VALUES ('pg-1', 1, '2026-01-05', '')"
                )
            )
            trail.append_in(s, THERAPIST, "programme.assigned", Subject("programme", "pg-1"))
        count = ", count_status, count_evidence" if revision >= "0003" else ""
        count_values = ", 'confirmed', :evidence" if revision >= "0003" else ""
        for sid, state in (("se-signed", "signed"), ("se-open", "documented")):
            with trail.write() as s:
                s.execute(
                    text(
                        "INSERT INTO treatment_sessions (id, patient_id, programme_id, "
                        "programme_phase, protocol_id, protocol_version, modality, therapist_id, "
                        "session_date, state, parameters, titrations, delivered, segments, "
                        "interruptions, faults, pain_before, pain_after, treatment_points, "
                        f"adverse_events, notes, created_at, updated_at{count}) VALUES (:i, "
                        "'pt-00000', 'pg-1', 1, 'knee-pfp-epat', '1', 'epat', 'th1', "
                        "'2026-01-12', :s, :params, '[]', 2000, '[2000]', '[]', '[]', 6, 3, "
                        f":points, '[\"reddening\"]', 'ok', :t, :t{count_values})"
                    ),
                    {
                        "i": sid,
                        "s": state,
                        "t": TS,
                        "params": '{"pulses":2000}',
                        "points": '[{"x":120,"y":340}]',
                        "evidence": '{"unit_count":2000}',
                    },
                )
                trail.append_in(s, THERAPIST, "session.created", Subject("session", sid))
        with trail.write() as s:
            event = trail.append_in(
                s, THERAPIST, "session.signed", Subject("session", "se-signed"), {"m": 1}
            )
            s.execute(
                text(
                    "INSERT INTO session_signatures (session_id, signer_id, signer_name, "
                    "signed_at, meaning, content_hash, audit_seq) VALUES ('se-signed', 'th1', "
                    "'Thérèse Ødegård', :t, 'performed', :h, :q)"
                ),
                {"t": TS, "h": "a" * 64, "q": event.seq},
            )
        trail.checkpoint()
        rows = 2 + patients + 2 + 2 + 1
        return {"rows": rows, "events": trail.head().seq}  # type: ignore[union-attr]
    finally:
        store.dispose()


def _backfilled(store: RecordStore) -> list[Any]:
    with store.connection() as conn:
        return conn.exec_driver_sql(
            "SELECT seq, actor, role, subject_type, subject_id, data FROM audit_events "
            f"WHERE action = '{BACKFILL_ACTION}' ORDER BY seq"
        ).all()


@pytest.mark.parametrize("revision", ["0003", "0001"])
def test_an_older_record_is_backfilled_once_and_keeps_verifying(db_url: str, revision: str) -> None:
    signer = CheckpointSigner.generate()
    made = older_clinic(db_url, revision, signer)
    assert upgrade(db_url, signer=signer, workstation=WORKSTATION) == "0004"
    store = open_store(db_url)
    try:
        assert current_revision(store) == "0004"
        assert verify_store(store).ok
        report = verify_records(store)
        assert report.ok, [str(p) for p in report.problems]
        assert report.records == made["rows"]
        backfilled = _backfilled(store)
        assert len(backfilled) == made["rows"]
        assert backfilled[0][0] == made["events"] + 1  # appended after the old trail
        kinds = [row[3] for row in backfilled]
        assert kinds == sorted(
            kinds,
            key=["user", "patient", "programme", "programme_phase", "session", "signature"].index,
        )
        for _seq, actor, role, stype, sid, data in backfilled:
            parsed = json.loads(data)
            assert (actor, role) == ("system", "system")
            assert (
                parsed["migration"] == "0004" and "as it stood at the upgrade" in parsed["reason"]
            )
            assert (parsed["record"]["type"], parsed["record"]["id"]) == (stype, sid)
        records = {(r["type"], r["id"]): r["fields"] for r in store_records(store)}
        signature = next(f for (t, _i), f in records.items() if t == "signature")
        assert signature["content_hash"] == fields_hash(records[("session", "se-signed")])
        assert signature["session_content_hash"] == "a" * 64  # the old hash is kept as it was
        with store.connection() as conn:
            tail = conn.exec_driver_sql(
                "SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1"
            ).scalar()
        assert tail == "audit.checkpoint"  # the backfill is signed

        # the guard of the signatures table is back after the migration's one UPDATE
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE session_signatures SET meaning = 'reviewed'")

        # an amendment of the backfilled signed session names the backfill event's seq
        trail = AuditTrail(store, signer, WORKSTATION)
        book = SessionBook(trail)
        with store.connection() as conn:
            created = conn.exec_driver_sql(
                "SELECT seq FROM audit_events WHERE action = 'session.created' "
                "AND subject_id = 'se-signed'"
            ).scalar_one()
        book.amend(THERAPIST, "se-signed", {"pain_after": 2}, "re-rated at the visit", created)
        amended = trail.events(after_seq=trail.head().seq - 1)[0]  # type: ignore[union-attr]
        signature_seq = next(row[0] for row in backfilled if row[3] == "signature")
        assert amended.data["amends"] == signature_seq
        assert verify_records(store).ok

        # and the backfilled record is now protected like any other
        attacker_sql(store, [("UPDATE patients SET pseudonym = 'KN-X' WHERE id = 'pt-00000'", [])])
        patient_seq = next(row[0] for row in backfilled if row[3] == "patient")
        assert {(p.kind, p.type, p.id, p.field, p.seq) for p in verify_records(store).problems} == {
            ("field_differs", "patient", "pt-00000", "pseudonym", patient_seq)
        }
    finally:
        store.dispose()


def test_a_backfill_of_over_a_thousand_rows_is_signed_every_thousand_events(
    sqlite_url: str,
) -> None:
    signer = CheckpointSigner.generate()
    made = older_clinic(sqlite_url, "0003", signer, patients=1_200)
    upgrade(sqlite_url, signer=signer, workstation=WORKSTATION)
    store = open_store(sqlite_url)
    try:
        trail_report = verify_store(store)
        assert trail_report.ok, [str(p) for p in trail_report.problems]
        assert trail_report.checkpoints >= (made["events"] + made["rows"]) // 1000
        assert verify_records(store).ok
    finally:
        store.dispose()


def test_without_the_signer_the_backfill_verifies_and_the_next_checkpoint_signs_it(
    sqlite_url: str,
) -> None:
    signer = CheckpointSigner.generate()
    made = older_clinic(sqlite_url, "0003", signer)
    upgrade(sqlite_url)
    store = open_store(sqlite_url)
    try:
        assert verify_store(store).ok and verify_records(store).ok
        trail = AuditTrail(store, signer, WORKSTATION)
        assert trail.checkpoint().seq == made["events"] + made["rows"] + 1
    finally:
        store.dispose()
