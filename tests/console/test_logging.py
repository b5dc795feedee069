"""Application logs: JSON lines, bound ids, rotation — and never a patient identifier beyond
the pseudonymous id, whatever the code around tries to log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from audit import AuditTrail, CheckpointSigner, open_store
from audit.migrate import upgrade
from audit.patients import PatientRegistry
from audit.sessions import SessionBook
from audit.users import UserDirectory
from console.app_logging import (
    LOG_FILE_NAME,
    bind_context,
    clear_context,
    configure_logging,
    get_logger,
    shutdown_logging,
)
from console.auth import AuthService, LoginFailed

pytestmark = pytest.mark.req("AUD-LOG-1")
BIRTH_DATE = date(1957, 11, 23)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = configure_logging(tmp_path / "logs")
    yield path
    clear_context()
    shutdown_logging()


def _lines(path: Path) -> list[dict]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_json_lines_carry_level_time_and_the_bound_ids(log_file: Path) -> None:
    assert log_file.name == LOG_FILE_NAME
    bind_context(session_id="se-1", user_id="th1", device_id="EPAT-SN-7")
    get_logger("test").info("arming", pulses=2000)
    bind_context(device_id="EMTT-SN-9")
    get_logger("test").warning("link slow")
    first, second = _lines(log_file)
    assert first["event"] == "arming" and first["level"] == "info" and first["pulses"] == 2000
    assert (first["session_id"], first["user_id"], first["device_id"]) == (
        "se-1",
        "th1",
        "EPAT-SN-7",
    )
    assert second["device_id"] == "EMTT-SN-9" and second["timestamp"].endswith("Z")


def test_identifying_keys_are_removed_at_any_depth(log_file: Path) -> None:
    get_logger("test").info(
        "careless",
        patient_id="pt-42",
        birth_date="1957-11-23",
        patient={"full_name": "Jane Doe", "patient_id": "pt-42", "dob": "1957-11-23"},
        rows=[{"last_name": "Doe", "email": "jane@example.org", "file_name": "x.csv"}],
        patient_birth_date="1957-11-23",
    )
    (line,) = _lines(log_file)
    text = log_file.read_text(encoding="utf-8")
    for secret in ("1957-11-23", "Jane", "Doe", "jane@example.org"):
        assert secret not in text
    assert line["patient_id"] == "pt-42" and line["patient"] == {"patient_id": "pt-42"}
    assert line["rows"] == [{"file_name": "x.csv"}]
    assert line["redacted_keys"] == sorted(
        {"birth_date", "full_name", "dob", "last_name", "email", "patient_birth_date"}
    )


def test_standard_library_records_go_to_the_same_file(log_file: Path) -> None:
    bind_context(user_id="admin1")
    logging.getLogger("sqlalchemy.engine").warning("pool %s exhausted", "main")
    (line,) = _lines(log_file)
    assert line["event"] == "pool main exhausted" and line["user_id"] == "admin1"
    assert line["logger"] == "sqlalchemy.engine"


def test_the_file_rotates(tmp_path: Path) -> None:
    path = configure_logging(tmp_path / "small", max_bytes=2000, backup_count=3)
    try:
        for i in range(100):
            get_logger("test").info("line", n=i, padding="x" * 50)
        assert path.exists() and (path.parent / f"{LOG_FILE_NAME}.1").exists()
        assert not (path.parent / f"{LOG_FILE_NAME}.4").exists()
    finally:
        shutdown_logging()


def test_a_clinic_day_logs_no_patient_identifier_beyond_the_pseudonymous_id(
    log_file: Path, tmp_path: Path
) -> None:
    """Real services, real records: the birth date is in the record, never in the log."""
    url = f"sqlite:///{tmp_path / 'record.sqlite3'}"
    upgrade(url)
    store = open_store(url)
    try:
        trail = AuditTrail(store, CheckpointSigner.generate(), "ws-log")
        trail.register_signer(created=True)
        fast = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1, type=Type.ID)
        auth = AuthService(UserDirectory(trail), workstation="ws-log", hasher=fast)
        auth.add_user(None, "admin1", "Ada Admin", "admin", "admin passphrase 1")
        admin = auth.login("admin1", "admin passphrase 1")
        auth.add_user(admin, "th1", "Theo Therapist", "therapist", "therapist passphrase")
        with pytest.raises(LoginFailed):
            auth.login("th1", "wrong passphrase!")
        user = auth.login("th1", "therapist passphrase")
        bind_context(user_id=user.user_id)
        patients = PatientRegistry(trail)
        patient = patients.create(user.actor, "KN-7781", BIRTH_DATE)
        bind_context(patient_id=patient.patient_id)
        patients.view(user.actor, patient.patient_id)
        book = SessionBook(trail)
        session = book.create(
            user.actor,
            patient_id=patient.patient_id,
            protocol_id="knee-oa-epat",
            protocol_version="1",
            modality="epat",
            session_date=date(2026, 1, 8),
        )
        bind_context(session_id=session.session_id, device_id="EPAT-SN-7")
        book.update(user.actor, session.session_id, {"screening_answers": {"pregnant": False}})
        book.transition(user.actor, session.session_id, "screening", "planned", "plan", {})
        trail.checkpoint()
        get_logger("console.session").info("planned", patient_birth_date=BIRTH_DATE.isoformat())
        lines = _lines(log_file)
        text = log_file.read_text(encoding="utf-8")
    finally:
        store.dispose()
    events = {line["event"] for line in lines}
    assert {
        "login",
        "login_failed",
        "patient_created",
        "patient_viewed",
        "session_transition",
        "audit_checkpoint",
    } <= events
    for forbidden in (BIRTH_DATE.isoformat(), "1957", "23.11.1957"):
        assert forbidden not in text
    assert patient.patient_id in text  # the pseudonymous id is what identifies the patient
    transition = next(line for line in lines if line["event"] == "session_transition")
    assert transition["session_id"] == session.session_id
    assert transition["device_id"] == "EPAT-SN-7" and transition["user_id"] == "th1"
