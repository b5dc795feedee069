"""Verification from the admin console (progress, result recorded in the trail and read back as
"last verification"), and exports of the trail with the public key beside them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.keys import load_public_keys
from audit.verify import verify_file
from console.admin.context import AdminServices
from console.admin.exports import ExportError
from console.auth import PermissionDenied, SignedInUser
from console.services import ConsoleServices
from tests.console.conftest import PASSWORD


@pytest.mark.req("ADM-VERIFY-1")
def test_verify_now_reports_progress_and_is_recorded_as_the_last_verification(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    review = admin_services.review
    assert review.last_verification(admin) is None
    progress: list[tuple[int, int]] = []
    outcome = review.verify_now(admin, lambda done, total: progress.append((done, total)))
    assert outcome.ok and outcome.first_failing_seq is None
    assert progress and progress[-1][0] == progress[-1][1] == outcome.events
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    last = review.last_verification(admin)
    assert last is not None and last.seq == outcome.audit_seq
    assert last.ok and last.actor == "admin" and last.last_seq == outcome.last_seq


@pytest.mark.req("ADM-VERIFY-1")
def test_a_tampered_trail_fails_with_its_first_failing_seq(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices
) -> None:
    target = services.trail.head().seq - 2
    conn = sqlite3.connect(services.store.url.database)
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = ?", (target,))
    conn.commit()
    conn.close()
    outcome = admin_services.review.verify_now(admin)
    assert not outcome.ok and outcome.first_failing_seq == target
    assert any(f"seq {target}" in problem for problem in outcome.problems)
    last = admin_services.review.last_verification(admin)
    assert last is not None and not last.ok and last.first_failing_seq == target


@pytest.mark.req("ADM-VERIFY-1")
@pytest.mark.req("AUD-REC-2")
def test_verify_now_finds_a_session_row_changed_behind_the_trail(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices, treated: Any
) -> None:
    """The issue's plain UPDATE, after a whole session through the real workflow."""
    assert admin_services.review.verify_now(admin).ok  # no false alarm on the real record
    conn = sqlite3.connect(services.store.url.database)
    conn.execute("UPDATE treatment_sessions SET delivered=1000, pain_after=0")
    conn.commit()
    conn.close()
    outcome = admin_services.review.verify_now(admin)
    assert not outcome.ok
    named = [p for p in outcome.problems if f"session {treated.session_id} field" in p]
    assert len(named) == 2 and any("field delivered: store has 1000" in p for p in named)
    last = admin_services.review.last_verification(admin)
    assert last is not None and not last.ok and last.problems == 2


@pytest.mark.req("ADM-EXPORT-1")
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "fhir"])
def test_exports_write_the_trail_and_its_public_key(
    fmt: str,
    services: ConsoleServices,
    admin: SignedInUser,
    admin_services: AdminServices,
    tmp_path: Path,
) -> None:
    out = tmp_path / f"trail.{fmt}"
    result = admin_services.exports.export(admin, fmt, out)
    assert out.is_file() and result.public_key_path.is_file()
    keys = {k.key_id: k for k in load_public_keys(result.public_key_path)}
    assert services.trail.signer.key_id in keys
    if fmt == "jsonl":
        assert verify_file(out, keys).ok  # an auditor needs nothing else
    exported = services.trail.get(services.trail.head().seq)
    assert exported.action == "audit.exported" and exported.actor == "admin"
    assert exported.data["format"] == fmt and exported.data["file_sha256"] == result.sha256
    assert exported.data["public_key_file"] == result.public_key_path.name


@pytest.mark.req("ADM-EXPORT-1")
@pytest.mark.req("ADM-ROLE-1")
def test_exports_are_refused_to_others_and_for_bad_places(
    services: ConsoleServices, admin: SignedInUser, admin_services: AdminServices, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        admin_services.exports.export(admin, "jsonl", tmp_path / "no" / "trail.jsonl")
    with pytest.raises(ExportError, match="is a folder"):
        admin_services.exports.export(admin, "jsonl", tmp_path)
    with pytest.raises(ExportError, match="one of"):
        admin_services.exports.export(admin, "xml", tmp_path / "trail.xml")
    service_user = services.login("svc", PASSWORD)
    with pytest.raises(PermissionDenied):
        admin_services.exports.export(service_user, "jsonl", tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()
    denied = services.trail.get(services.trail.head().seq)
    assert denied.action == "access.denied" and denied.data["action"] == "export_audit"
