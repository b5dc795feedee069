"""The clinical record: users, patients, programmes, sessions, signatures — each change audited
in the same transaction, frozen values out, signed records changed only by amendment."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from audit import (
    AuditDataError,
    AuditTrail,
    DuplicateRecord,
    NotFound,
    RecordLocked,
    RecordStore,
)
from audit.patients import PatientRegistry
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook, content_hash
from audit.users import UserDirectory
from audit.values import thaw
from audit.verify import verify_store
from tests.audit.helpers import ADMIN, SYSTEM, THERAPIST, THERAPIST2, attacker_sql


@pytest.fixture
def clinic(trail: AuditTrail) -> dict:
    users = UserDirectory(trail)
    users.add(SYSTEM, "admin1", "Ada Admin", "admin", "hash-a")
    users.add(ADMIN, "th1", "Theo Therapist", "therapist", "hash-t")
    users.add(ADMIN, "th2", "Tara Therapist", "therapist", "hash-t2")
    patients = PatientRegistry(trail)
    patient = patients.create(THERAPIST, "KN-0001", date(1980, 5, 6))
    programmes = ProgrammeBook(trail)
    programme = programmes.assign(THERAPIST, patient.patient_id, "knee-pfp", "2", date(2026, 1, 1))
    return {
        "users": users,
        "patients": patients,
        "patient": patient,
        "programmes": programmes,
        "programme": programme,
        "sessions": SessionBook(trail),
    }


def _actions(trail: AuditTrail) -> list[str]:
    return [e.action for e in trail.events(limit=10_000)]


def _session(clinic: dict, state: str = "screening"):
    return clinic["sessions"].create(
        THERAPIST,
        patient_id=clinic["patient"].patient_id,
        protocol_id="knee-pt-epat",
        protocol_version="1.0",
        modality="epat",
        session_date=date(2026, 1, 8),
        programme_id=clinic["programme"].programme_id,
        programme_phase=1,
        state=state,
    )


FULL_RECORD = {
    "device_model": "EPAT-SIM 1",
    "device_serial": "SN-123",
    "applicator_type": "R15",
    "applicator_serial": "AP-9",
    "applicator_shots_before": 120_000,
    "applicator_shots_after": 122_000,
    "parameters": {"pressure_bar": "2.5", "frequency_hz": "8", "pulses": 2000},
    "validation": {"verdict": "ok", "findings": []},
    "titrations": [
        {
            "time": "2026-01-08T10:01:00.000000Z",
            "from": {"pressure_bar": "2.5"},
            "to": {"pressure_bar": "2.0"},
            "delivered_before": 500,
        }
    ],
    "delivered": 2000,
    "segments": [500, 1500],
    "interruptions": [{"time": "2026-01-08T10:00:30.000000Z", "reason": "patient asked"}],
    "faults": [],
    "end_reason": "target reached",
    "screening_answers": {"pregnant": False, "active_implant": None, "fever": False},
    "screening": {"decision": "override_required", "rules": ["CI-COAG"]},
    "screening_decision": "override_required",
    "screening_override_reason": "INR in range per GP letter of 2026-01-02",
    "pain_before": 6,
    "pain_after": 3,
    "treatment_points": [{"n": 1, "x": 420, "y": 610}],
    "adverse_events": ["reddening", "transient_pain"],
    "notes": "Tolerated well.",
}


@pytest.mark.req("AUD-WHAT-1")
def test_creating_users_patients_programmes_is_audited_with_their_content(
    clinic: dict, trail: AuditTrail
) -> None:
    actions = _actions(trail)
    assert actions[:6] == [
        "key.created",
        "user.created",
        "user.created",
        "user.created",
        "patient.created",
        "programme.assigned",
    ]
    created = trail.events(limit=10)[4]
    assert created.actor == "th1" and created.subject.type == "patient"
    data = created.data
    record = data.pop("record")
    assert data == {"pseudonym": "KN-0001", "birth_date": "1980-05-06"}
    assert record["type"] == "patient" and record["id"] == created.subject.id
    assert record["fields"]["pseudonym"] == "KN-0001"
    assert record["fields"]["birth_date"] == "1980-05-06"


def test_users_are_unique_checked_and_frozen(clinic: dict) -> None:
    users = clinic["users"]
    with pytest.raises(DuplicateRecord):
        users.add(ADMIN, "th1", "Again", "therapist", "h")
    with pytest.raises(AuditDataError, match="role 'doctor'"):
        users.add(ADMIN, "dr1", "Doc", "doctor", "h")
    with pytest.raises(AuditDataError, match="user id"):
        users.add(ADMIN, "bad name!", "Bad", "therapist", "h")
    record = users.get("th1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.role = "admin"  # type: ignore[misc]
    assert [u.user_id for u in users.list()] == ["admin1", "th1", "th2"]


@pytest.mark.req("AUD-WHAT-1")
def test_patient_changes_carry_old_and_new_and_reads_are_audited(
    clinic: dict, trail: AuditTrail
) -> None:
    patients, patient = clinic["patients"], clinic["patient"]
    changed = patients.change(
        THERAPIST, patient.patient_id, "birth date typed wrong", birth_date=date(1980, 6, 5)
    )
    assert changed.birth_date == date(1980, 6, 5)
    event = trail.events(limit=100)[-1]
    assert event.action == "patient.changed"
    assert event.data["changes"] == {"birth_date": {"from": "1980-05-06", "to": "1980-06-05"}}
    viewed = patients.view(THERAPIST, patient.patient_id)
    assert viewed == changed and _actions(trail)[-1] == "patient.viewed"
    with pytest.raises(AuditDataError, match="never a name"):
        patients.create(THERAPIST, "Jane Doe", date(1990, 1, 1))
    with pytest.raises(DuplicateRecord):
        patients.create(THERAPIST, "KN-0001", date(1990, 1, 1))
    with pytest.raises(AuditDataError, match="not in the future"):
        patients.create(THERAPIST, "KN-0002", date(2999, 1, 1))
    assert [p.pseudonym for p in patients.find("KN-")] == ["KN-0001"]
    assert patients.find("KN_") == []  # LIKE wildcards in the text are literal


@pytest.mark.req("AUD-WHAT-1")
def test_programme_phases_move_forward_and_one_is_active(clinic: dict, trail: AuditTrail) -> None:
    book, programme = clinic["programmes"], clinic["programme"]
    with pytest.raises(DuplicateRecord, match="already has an active programme"):
        book.assign(THERAPIST, programme.patient_id, "knee-oa", "1", date(2026, 2, 1))
    moved = book.change_phase(THERAPIST, programme.programme_id, 2, date(2026, 2, 1), "load up")
    assert moved.current_phase == 2
    assert [(p.phase, p.ended_on) for p in moved.phases] == [(1, date(2026, 2, 1)), (2, None)]
    with pytest.raises(AuditDataError, match="above the current phase 2"):
        book.change_phase(THERAPIST, programme.programme_id, 2, date(2026, 2, 2))
    ended = book.end(
        THERAPIST,
        programme.programme_id,
        "completed",
        date(2026, 3, 1),
        "goals reached, discharged",
    )
    assert ended.status == "completed" and book.active_for(programme.patient_id) is None
    # each further row the operation wrote (the phases) has its own record.written event
    assert _actions(trail)[-5:] == [
        "programme.phase_changed",
        "record.written",
        "record.written",
        "programme.ended",
        "record.written",
    ]


@pytest.mark.req("AUD-WHAT-1")
def test_a_session_holds_everything_the_clinical_reference_lists(
    clinic: dict, trail: AuditTrail
) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    updated = book.update(THERAPIST, session.session_id, FULL_RECORD)
    for name, value in FULL_RECORD.items():
        assert thaw(getattr(updated, name)) == value, name
    assert updated.parameters["pulses"] == 2000
    assert updated.titrations[0]["to"]["pressure_bar"] == "2.0"
    with pytest.raises(TypeError):
        updated.parameters["pulses"] = 1  # type: ignore[index]
    assert book.load(session.session_id) == updated
    assert updated.programme_id == clinic["programme"].programme_id
    event = trail.events(limit=100)[-1]
    assert event.action == "session.updated" and event.data["fields"]["delivered"] == 2000


@pytest.mark.req("AUD-FLOAT-1")
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parameters": {"pressure_bar": 2.5}}, "floating-point"),
        ({"pain_before": 11}, "0–10"),
        ({"adverse_events": ["fainted"]}, "adverse_events must be a list from"),
        ({"delivered": -1}, "whole number"),
        ({"screening_decision": "maybe"}, "screening_decision must be one of"),
        ({"colour": "red"}, "'colour' is not a session field"),
        ({"parameters": [1, 2]}, "must be an object"),
    ],
)
def test_bad_session_fields_are_refused_and_nothing_is_written(
    clinic: dict, trail: AuditTrail, fields: dict, message: str
) -> None:
    session = _session(clinic)
    before = _actions(trail)
    with pytest.raises(AuditDataError, match=message):
        clinic["sessions"].update(THERAPIST, session.session_id, fields)
    assert _actions(trail) == before


@pytest.mark.req("AUD-WHAT-1")
def test_transitions_and_events_are_recorded_in_order(clinic: dict, trail: AuditTrail) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    book.record_event(
        THERAPIST,
        session.session_id,
        "screening.override",
        {"reason": "INR in range per GP letter", "rules": ["CI-COAG"]},
    )
    book.transition(THERAPIST, session.session_id, "screening", "planned", "plan", {"x": 1})
    book.record_event(THERAPIST, session.session_id, "device.arm", {"result": "ok"})
    book.record_event(THERAPIST, session.session_id, "alarm.raised", {"id": "device.fault"})
    book.record_event(THERAPIST, session.session_id, "alarm.acknowledged", {"id": "device.fault"})
    with pytest.raises(AuditDataError, match="the session is planned, not screening"):
        book.transition(THERAPIST, session.session_id, "screening", "planned", "plan")
    events = book.events(session.session_id)
    assert [e.action for e in events] == [
        "session.created",
        "screening.override",
        "session.transition",
        "device.arm",
        "alarm.raised",
        "alarm.acknowledged",
    ]
    assert events[2].data["to"] == "planned" and events[2].data["details"] == {"x": 1}
    assert [e.audit_seq for e in events] == sorted(e.audit_seq for e in events)
    assert all(trail.get(e.audit_seq).action == e.action for e in events)
    assert book.load(session.session_id).state == "planned"


@pytest.mark.req("AUD-SIGN-1")
def test_signature_shows_name_time_meaning_and_covers_the_content(
    clinic: dict, trail: AuditTrail
) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    book.update(THERAPIST, session.session_id, FULL_RECORD)
    book.transition(THERAPIST, session.session_id, "screening", "documented", "document")
    signature = book.sign(THERAPIST, "Theo Therapist", session.session_id, "performed")
    assert signature.signer_id == "th1" and signature.meaning == "performed"
    assert signature.manifestation().startswith("Signed by Theo Therapist (th1) on 20")
    assert signature.manifestation().endswith("UTC — performed")
    assert signature.content_hash == content_hash(book.load(session.session_id))
    event = trail.get(signature.audit_seq)
    assert event.action == "session.signed" and event.data["content_hash"] == signature.content_hash
    (check,) = book.verify_signatures(session.session_id)
    assert check.valid, check.reason
    review = book.sign(THERAPIST2, "Tara Therapist", session.session_id, "reviewed")
    assert [c.valid for c in book.verify_signatures(session.session_id)] == [True, True]
    assert review.meaning == "reviewed"


@pytest.mark.req("AUD-SIGN-1")
def test_signing_rules(clinic: dict) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    with pytest.raises(AuditDataError, match="after the session is documented"):
        book.sign(THERAPIST, "Theo", session.session_id, "performed")
    book.transition(THERAPIST, session.session_id, "screening", "documented", "document")
    with pytest.raises(AuditDataError, match="review follows"):
        book.sign(THERAPIST2, "Tara", session.session_id, "reviewed")
    with pytest.raises(AuditDataError, match="only the therapist who treated"):
        book.sign(THERAPIST2, "Tara", session.session_id, "performed")
    with pytest.raises(AuditDataError, match="one of performed, reviewed"):
        book.sign(THERAPIST, "Theo", session.session_id, "approved")
    book.sign(THERAPIST, "Theo", session.session_id, "performed")
    with pytest.raises(AuditDataError, match="someone who has not signed"):
        book.sign(THERAPIST, "Theo", session.session_id, "reviewed")


@pytest.mark.req("AUD-SIGN-1")
@pytest.mark.req("AUD-CORR-1")
def test_a_signed_record_is_locked_and_amended_only_with_a_reason(
    clinic: dict, trail: AuditTrail, store: RecordStore
) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    book.update(THERAPIST, session.session_id, {"pain_after": 7})
    book.transition(THERAPIST, session.session_id, "screening", "documented", "document")
    signature = book.sign(THERAPIST, "Theo", session.session_id, "performed")
    with pytest.raises(RecordLocked, match="amendment that gives a reason"):
        book.update(THERAPIST, session.session_id, {"pain_after": 1})
    with pytest.raises(AuditDataError, match="reason of at least"):
        book.amend(THERAPIST, session.session_id, {"pain_after": 1}, "typo", signature.audit_seq)
    amended = book.amend(
        THERAPIST,
        session.session_id,
        {"pain_after": 1},
        "NRS typed as 7, patient said 1",
        signature.audit_seq,
    )
    assert amended.pain_after == 1
    event = trail.events(limit=100)[-1]
    assert event.action == "session.amended"
    assert event.data["corrects"]["seq"] == signature.audit_seq
    assert event.data["changes"] == {"pain_after": {"from": 7, "to": 1}}
    (check,) = book.verify_signatures(session.session_id)
    assert not check.valid and "changed after it was signed" in check.reason
    assert verify_store(store).ok


@pytest.mark.req("AUD-SIGN-1")
def test_a_signature_moved_to_another_record_fails(clinic: dict, store: RecordStore) -> None:
    book = clinic["sessions"]
    signed, other = _session(clinic), _session(clinic)
    for session in (signed, other):
        book.transition(THERAPIST, session.session_id, "screening", "documented", "document")
    signature = book.sign(THERAPIST, "Theo", signed.session_id, "performed")
    # the signatures table is append-only: "moving" means copying the row onto the other record
    attacker_sql(
        store,
        [
            (
                "INSERT INTO session_signatures (session_id, signer_id, signer_name, signed_at, "
                "meaning, content_hash, audit_seq) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    other.session_id,
                    "th1",
                    "Theo",
                    signature.signed_at,
                    "performed",
                    signature.content_hash,
                    signature.audit_seq,
                ),
            )
        ],
    )
    (moved,) = book.verify_signatures(other.session_id)
    assert not moved.valid and "not in the audit trail" in moved.reason
    (original,) = book.verify_signatures(signed.session_id)
    assert original.valid


@pytest.mark.req("AUD-SIGN-1")
def test_a_record_changed_behind_the_signatures_back_fails(
    clinic: dict, store: RecordStore
) -> None:
    book = clinic["sessions"]
    session = _session(clinic)
    book.transition(THERAPIST, session.session_id, "screening", "documented", "document")
    book.sign(THERAPIST, "Theo", session.session_id, "performed")
    attacker_sql(
        store,
        [
            (
                "UPDATE treatment_sessions SET delivered = %s WHERE id = %s",
                (4000, session.session_id),
            )
        ],
    )
    (check,) = book.verify_signatures(session.session_id)
    assert not check.valid and "changed after it was signed" in check.reason


@pytest.mark.req("AUD-WHAT-1")
def test_session_reads_and_unfinished_sessions(clinic: dict, trail: AuditTrail) -> None:
    book = clinic["sessions"]
    session = _session(clinic, state="delivering")
    assert [s.session_id for s in book.unfinished()] == [session.session_id]
    assert book.view(THERAPIST, session.session_id).session_id == session.session_id
    assert _actions(trail)[-1] == "session.viewed"
    with pytest.raises(NotFound):
        book.load("se-none")
    assert [s.session_id for s in book.for_patient(clinic["patient"].patient_id)] == [
        session.session_id
    ]


@pytest.mark.req("AUD-WHAT-1")
def test_a_failed_record_change_leaves_neither_record_nor_event(
    clinic: dict, trail: AuditTrail
) -> None:
    before = _actions(trail)
    with pytest.raises(NotFound):
        clinic["sessions"].create(
            THERAPIST,
            patient_id="pt-none",
            protocol_id="p",
            protocol_version="1",
            modality="epat",
            session_date=date(2026, 1, 1),
        )
    assert _actions(trail) == before


@pytest.mark.req("AUD-QUERY-1")
def test_the_admin_query_finds_one_patients_events_in_a_window(
    clinic: dict, trail: AuditTrail
) -> None:
    other = clinic["patients"].create(THERAPIST, "KN-0002", date(1990, 1, 1))
    session = _session(clinic)
    clinic["sessions"].record_event(THERAPIST, session.session_id, "device.arm", {})
    clinic["patients"].view(THERAPIST, other.patient_id)
    found = trail.patient_events(
        clinic["patient"].patient_id, "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
    )
    assert [e.action for e in found] == [
        "patient.created",
        "programme.assigned",
        "record.written",  # the programme's first phase
        "session.created",
        "device.arm",
    ]
    assert trail.patient_events(clinic["patient"].patient_id, "2000", "2001") == []
