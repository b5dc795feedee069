"""Exports (JSONL, CSV, FHIR R4B) and the verification report's machinery."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from audit import AuditDataError, AuditTrail, RecordStore
from audit.export import export_trail
from audit.patients import PatientRegistry
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook
from audit.users import UserDirectory
from audit.verify import check_rows, verify_store
from tests.audit.helpers import ADMIN, SYSTEM, THERAPIST, fill

pytestmark = pytest.mark.req("AUD-EXPORT-1")


def _record_some(trail: AuditTrail) -> tuple[str, str]:
    UserDirectory(trail).add(SYSTEM, "th1", "Theo Therapist", "therapist", "h")
    patient = PatientRegistry(trail).create(THERAPIST, "KN-0007", date(1962, 7, 1))
    programme = ProgrammeBook(trail).assign(
        THERAPIST, patient.patient_id, "knee-oa", "1", date(2026, 1, 1)
    )
    book = SessionBook(trail)
    session = book.create(
        THERAPIST,
        patient_id=patient.patient_id,
        protocol_id="knee-oa-emtt",
        protocol_version="1",
        modality="emtt",
        session_date=date(2026, 1, 9),
        programme_id=programme.programme_id,
        programme_phase=1,
    )
    book.update(
        THERAPIST,
        session.session_id,
        {
            "device_model": "EMTT-SIM",
            "device_serial": "E-77",
            "delivered": 4000,
            "adverse_events": ["reddening"],
            "notes": "ok",
            "end_reason": "target reached",
        },
    )
    return session.session_id, programme.programme_id


def test_every_export_is_checkpointed_and_audited_with_its_file_hash(
    trail: AuditTrail, tmp_path: Path
) -> None:
    fill(trail, 5)
    out = tmp_path / "trail.jsonl"
    result = export_trail(trail, ADMIN, "jsonl", out, note={"via": "test"})
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.events == result.last_seq == 7  # key, 5 events, the export's checkpoint
    exported = trail.events(limit=100)[-1]
    assert exported.action == "audit.exported" and exported.actor == "admin1"
    assert exported.data["file_sha256"] == result.sha256 and exported.data["via"] == "test"
    assert exported.data["last_seq"] == 7 and exported.data["format"] == "jsonl"


def test_csv_export_holds_the_rows_and_they_verify(trail: AuditTrail, tmp_path: Path) -> None:
    fill(trail, 8)
    out = tmp_path / "trail.csv"
    export_trail(trail, ADMIN, "csv", out)
    with open(out, newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == [
        "seq",
        "v",
        "ts",
        "actor",
        "role",
        "workstation",
        "action",
        "subject_type",
        "subject_id",
        "data",
        "prev",
        "hash",
    ]
    rows = [(int(r[0]), int(r[1]), *r[2:]) for r in table[1:]]
    keys = {trail.signer.key_id: trail.signer.public}
    segment = check_rows([rows], keys, {})
    assert segment.problems == [] and segment.count == 10 and segment.checkpoints == [10]


def test_fhir_export_is_a_valid_r4b_bundle_of_the_trail_sessions_and_programmes(
    trail: AuditTrail, tmp_path: Path
) -> None:
    session_id, programme_id = _record_some(trail)
    out = tmp_path / "trail.fhir.json"
    result = export_trail(trail, ADMIN, "fhir", out)
    bundle = Bundle.model_validate_json(out.read_text(encoding="utf-8"))
    assert bundle.type == "collection"
    by_type: dict[str, list] = {}
    for entry in bundle.entry or []:
        by_type.setdefault(entry.resource.get_resource_type(), []).append(entry.resource)
    assert len(by_type["AuditEvent"]) == result.events == result.last_seq
    (procedure,) = by_type["Procedure"]
    assert procedure.identifier[0].value == session_id
    assert procedure.subject.identifier.system.endswith(":patient")
    assert procedure.basedOn[0].reference == f"CarePlan/{programme_id}"
    assert procedure.focalDevice[0].manipulated.identifier.value == "E-77"
    assert procedure.complication[0].coding[0].code == "reddening"
    (careplan,) = by_type["CarePlan"]
    assert careplan.id == programme_id and careplan.status == "active"
    first = by_type["AuditEvent"][0]
    details = {d.type: d.valueString for d in first.entity[0].detail}
    assert details["seq"] == "1" and details["prev"] == "0" * 64
    assert json.loads(details["data"])["key_id"] == trail.signer.key_id
    text = out.read_text(encoding="utf-8")
    assert "1962-07-01" not in text.split('"AuditEvent"')[0]  # no Patient resource, no birth date


def test_unknown_format_and_folder_are_refused(trail: AuditTrail, tmp_path: Path) -> None:
    with pytest.raises(AuditDataError, match="not one of jsonl, csv, fhir"):
        export_trail(trail, ADMIN, "xml", tmp_path / "x")
    with pytest.raises(AuditDataError, match="is a folder"):
        export_trail(trail, ADMIN, "jsonl", tmp_path)


@pytest.mark.req("AUD-VERIFY-2")
def test_parallel_verification_equals_one_pass_and_reports_progress(
    trail: AuditTrail, store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audit.verify as verify_module

    fill(trail, 60)
    keys = {trail.signer.key_id: trail.signer.public}
    seen: list[tuple[int, int]] = []
    single = verify_store(store, keys=keys, workers=1, progress=lambda d, t: seen.append((d, t)))
    monkeypatch.setattr(verify_module, "CHUNK_EVENTS", 16)  # several ranges in 2 processes
    parallel = verify_store(store, keys=keys, workers=2)
    assert single.ok and parallel.ok
    assert (parallel.events, parallel.last_seq, parallel.last_hash, parallel.checkpoints) == (
        single.events,
        single.last_seq,
        single.last_hash,
        single.checkpoints,
    )
    assert seen[-1] == (61, 61)
    # a broken link on a range boundary is found by the stitching
    from tests.audit.helpers import attacker_sql

    attacker_sql(store, [("DELETE FROM audit_events WHERE seq = %s", (17,))])
    broken = verify_store(store, keys=keys, workers=2)
    assert broken.first_failing_seq == 17 and broken.problems[0].kind == "missing"
