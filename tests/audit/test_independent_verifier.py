"""The export verifies with a verifier written from the format document alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from audit import AuditTrail
from audit.export import export_trail
from audit.patients import PatientRegistry
from audit.programmes import ProgrammeBook
from audit.sessions import SessionBook
from audit.users import UserDirectory
from tests.audit import independent_verifier
from tests.audit.helpers import ADMIN, SYSTEM, THERAPIST, fill

pytestmark = [pytest.mark.req("AUD-EXPORT-1"), pytest.mark.req("AUD-VERIFY-1")]
VERIFIER = Path(independent_verifier.__file__)


def _clinic_day(trail: AuditTrail) -> None:
    """A realistic trail: users, a patient, a programme, a session with its events, signed."""
    users = UserDirectory(trail)
    users.add(SYSTEM, "admin1", "Ada Admin", "admin", "$argon2id$fake")
    users.add(ADMIN, "th1", "Thérèse Ødegård", "therapist", "$argon2id$fake")
    patient = PatientRegistry(trail).create(THERAPIST, "KN-0042", date(1971, 3, 9))
    programme = ProgrammeBook(trail).assign(
        THERAPIST, patient.patient_id, "knee-pfp", "1", date(2026, 1, 5)
    )
    book = SessionBook(trail)
    record = book.create(
        THERAPIST,
        patient_id=patient.patient_id,
        protocol_id="knee-pfp-epat",
        protocol_version="1",
        modality="epat",
        session_date=date(2026, 1, 12),
        programme_id=programme.programme_id,
        programme_phase=1,
    )
    book.record_event(THERAPIST, record.session_id, "screening.decided", {"decision": "allow"})
    book.update(
        THERAPIST,
        record.session_id,
        {"parameters": {"pressure_bar": "4.5", "frequency_hz": "8", "pulses": 2500}},
    )
    book.transition(THERAPIST, record.session_id, "screening", "documented", "document", {})
    book.sign(THERAPIST, "Thérèse Ødegård", record.session_id, "performed")
    trail.checkpoint()
    fill(trail, 40)


def _export(trail: AuditTrail, tmp_path: Path) -> tuple[Path, Path]:
    out, pem = tmp_path / "trail.jsonl", tmp_path / "public.pem"
    export_trail(trail, ADMIN, "jsonl", out)
    pem.write_text(trail.signer.public.pem, encoding="ascii")
    return out, pem


def test_the_verifier_uses_nothing_of_the_console() -> None:
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    modules = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not any(m.split(".")[0] in {"audit", "console", "tests"} for m in modules), modules


def test_an_export_made_by_the_tests_verifies_independently(
    trail: AuditTrail, tmp_path: Path
) -> None:
    _clinic_day(trail)
    out, pem = _export(trail, tmp_path)
    result = subprocess.run(
        [sys.executable, str(VERIFIER), str(out), str(pem)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("VERIFIED")
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert events[-1]["action"] == "audit.checkpoint"  # every export ends signed
    assert any("Ødegård" in json.dumps(e, ensure_ascii=False) for e in events)


def test_the_independent_verifier_rejects_what_ours_rejects(
    trail: AuditTrail, tmp_path: Path
) -> None:
    fill(trail, 12)
    out, pem = _export(trail, tmp_path)
    lines = out.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[5])
    event["actor"] = "mallory"
    lines[5] = json.dumps(event)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = independent_verifier.verify_file(out, pem)
    assert problems and problems[0][0] == 6
    result = subprocess.run(
        [sys.executable, str(VERIFIER), str(out), str(pem)], capture_output=True, text=True
    )
    assert result.returncode == 1 and "seq 6:" in result.stdout
