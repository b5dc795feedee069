"""The records export verifies against the trail export with a verifier written from the format
document alone (``independent_record_verifier.py``), which also catches a tampered record."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit import AuditTrail, CheckpointSigner, open_store
from audit.export import export_trail
from audit.migrate import upgrade
from audit.records import export_records
from audit.sessions import SessionBook
from tests.audit import independent_record_verifier, independent_verifier
from tests.audit.helpers import ADMIN, THERAPIST, WORKSTATION, attacker_sql, clinic_record
from tests.audit.test_record_backfill import older_clinic

pytestmark = pytest.mark.req("AUD-REC-6")
VERIFIER = Path(independent_record_verifier.__file__)


def _exports(trail: AuditTrail, tmp_path: Path) -> tuple[Path, Path]:
    out, records = tmp_path / "trail.jsonl", tmp_path / "records.jsonl"
    export_trail(trail, ADMIN, "jsonl", out)
    export_records(trail.store, records)
    pem = tmp_path / "public.pem"
    pem.write_text(trail.signer.public.pem, encoding="ascii")
    assert independent_verifier.verify_file(out, pem) == []  # the trail itself verifies
    return out, records


def _run(trail: Path, records: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VERIFIER), str(trail), str(records), *more],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_record_verifier_uses_nothing_of_the_console() -> None:
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    modules = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(m.split(".")[0] in {"audit", "console", "tests"} for m in modules), modules


def test_the_records_export_of_a_trail_made_by_the_tests_verifies_independently(
    trail: AuditTrail, tmp_path: Path
) -> None:
    clinic_record(trail)
    out, records = _exports(trail, tmp_path)
    result = _run(out, records)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "VERIFIED"
    assert len(records.read_text(encoding="utf-8").splitlines()) == 11


def test_a_migrated_older_record_verifies_independently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'older.sqlite3'}"
    signer = CheckpointSigner.generate()
    older_clinic(url, "0001", signer)
    upgrade(url, signer=signer, workstation=WORKSTATION)
    store = open_store(url)
    try:
        out, records = _exports(AuditTrail(store, signer, WORKSTATION), tmp_path)
    finally:
        store.dispose()
    assert independent_record_verifier.verify_files(out, records) == []


def test_the_independent_record_verifier_catches_a_tampered_records_file(
    trail: AuditTrail, tmp_path: Path
) -> None:
    ids = clinic_record(trail)
    out, records = _exports(trail, tmp_path)
    lines = records.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line)["id"] == ids["session"])
    row = json.loads(lines[index])
    row["fields"]["delivered"] = 1000
    lines[index] = json.dumps(row, ensure_ascii=False)
    extra = {"type": "user", "id": "zz-mallory", "fields": {"id": "zz-mallory"}}
    dropped = json.loads(lines.pop(0))  # the first row (a patient)
    lines.append(json.dumps(extra))
    records.write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems = independent_record_verifier.verify_files(out, records)
    found = {(kind, rid, field) for _seq, kind, rid, field, _why in problems}
    assert found == {
        ("session", ids["session"], "delivered"),
        ("user", "zz-mallory", None),
        (dropped["type"], dropped["id"], None),
    }
    seq = next(p[0] for p in problems if p[3] == "delivered")
    assert seq > 0
    result = _run(out, records)
    assert result.returncode == 1
    assert f"seq {seq}: session {ids['session']} field delivered: store 1000, trail 2000" in (
        result.stdout
    )


def test_the_independent_verifier_agrees_with_ours_on_a_tampered_store(
    trail: AuditTrail, tmp_path: Path
) -> None:
    ids = clinic_record(trail)
    attacker_sql(
        trail.store,
        [
            (
                "UPDATE session_signatures SET session_id = %s WHERE id = %s",
                [ids["open_session"], int(ids["signature"])],
            )
        ],
    )
    out, records = _exports(trail, tmp_path)
    problems = independent_record_verifier.verify_files(out, records)
    assert [(p[1], p[2], p[3]) for p in problems] == [("signature", ids["signature"], "record_id")]


def test_a_records_export_verifies_against_a_later_trail_up_to_its_seq(
    trail: AuditTrail, tmp_path: Path
) -> None:
    """The records export states the record as of a seq; the clinic goes on working before
    the trail is exported."""
    ids = clinic_record(trail)
    records = tmp_path / "records.jsonl"
    exported = export_records(trail.store, records)
    SessionBook(trail).update(THERAPIST, ids["open_session"], {"notes": "later note"})
    out = tmp_path / "trail.jsonl"
    export_trail(trail, ADMIN, "jsonl", out)
    assert independent_record_verifier.verify_files(out, records, exported.last_seq) == []
    later = independent_record_verifier.verify_files(out, records)
    assert {(p[1], p[2], p[3]) for p in later} == {
        ("session", ids["open_session"], "notes"),
        ("session", ids["open_session"], "updated_at"),
    }
    result = _run(out, records, str(exported.last_seq))
    assert result.returncode == 0 and result.stdout.strip() == "VERIFIED"
