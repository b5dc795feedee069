"""The database: SQLite pragmas, PostgreSQL by URL, migrations, clear errors, append-only."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from audit import RecordStore, SchemaNotCurrent, StoreError, open_store
from audit.migrate import current_revision, head_revision, upgrade
from audit.schema import APPEND_ONLY_TABLES, Base
from tests.audit.helpers import SESSION, THERAPIST


@pytest.mark.req("AUD-STORE-1")
def test_sqlite_runs_with_wal_full_sync_and_foreign_keys(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    store = open_store(sqlite_url)
    try:
        with store.connection() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        with pytest.raises(sqlalchemy.exc.IntegrityError), store.write() as session:
            session.execute(
                sqlalchemy.text(
                    "INSERT INTO programme_assignments (id, patient_id, template_id, "
                    "template_version, current_phase, status, start_date, created_at, "
                    "updated_at) VALUES ('pg-1', 'no-such-patient', 't', '1', 1, 'active', "
                    "'2026-01-01', 'x', 'x')"
                )
            )
    finally:
        store.dispose()


@pytest.mark.req("AUD-STORE-1")
def test_upgrade_creates_and_is_idempotent_on_both_databases(db_url: str) -> None:
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()
    store = open_store(db_url)
    try:
        assert current_revision(store) == head_revision()
        tables = set(sqlalchemy.inspect(store.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        store.dispose()


@pytest.mark.req("AUD-STORE-1")
def test_migrations_build_exactly_the_models(db_url: str) -> None:
    """The hand-written migration and the ORM models describe the same schema."""
    upgrade(db_url)
    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        store.dispose()
    assert diffs == []


@pytest.mark.req("AUD-STORE-2")
def test_missing_sqlite_file_is_not_created_silently(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"there is no database at .*run `therapy-console db"):
        open_store(str(tmp_path / "typo.sqlite3"))
    assert not (tmp_path / "typo.sqlite3").exists()


@pytest.mark.req("AUD-STORE-2")
def test_corrupt_sqlite_file_gets_a_one_line_explanation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError) as info:
        open_store(str(bad))
    message = str(info.value)
    assert "is not a readable SQLite database" in message and "restore it from a backup" in message
    assert "\n" not in message


@pytest.mark.req("AUD-STORE-2")
def test_dead_postgresql_url_names_the_server_and_what_to_check() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://postgres:secret@127.0.0.1:5999/clinic")
    message = str(info.value)
    assert "127.0.0.1:5999" in message and "check that the server is running" in message
    assert "secret" not in message  # the password is never shown


@pytest.mark.req("AUD-STORE-2")
def test_unsupported_or_broken_urls_are_refused_with_the_right_form() -> None:
    with pytest.raises(StoreError, match="not supported; use sqlite"):
        open_store("mysql://x@y/z")
    with pytest.raises(StoreError, match="in-memory is not durable"):
        open_store("sqlite:///:memory:")


@pytest.mark.req("AUD-STORE-2")
def test_a_database_without_the_current_schema_is_refused(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()
    with pytest.raises(SchemaNotCurrent, match="has no schema; run `therapy-console db upgrade`"):
        open_store(db_url)


@pytest.mark.req("AUD-APPEND-1")
def test_database_refuses_update_delete_of_append_only_tables(trail, store: RecordStore) -> None:
    trail.append(THERAPIST, "session.created", SESSION, {"x": 1})
    refused = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.DatabaseError)
    for sql in (
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "UPDATE signing_keys SET workstation = 'elsewhere'",
        "DELETE FROM signing_keys",
    ):
        with pytest.raises(refused) as info, store.write() as session:
            session.execute(sqlalchemy.text(sql))
        assert "append-only" in str(info.value)
    if store.is_postgres:
        with pytest.raises(refused, match="append-only"), store.write() as session:
            session.execute(sqlalchemy.text("TRUNCATE audit_events CASCADE"))
    with store.connection() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar() == 2
        assert conn.exec_driver_sql("SELECT actor FROM audit_events WHERE seq = 2").scalar() == (
            "th1"
        )


@pytest.mark.req("AUD-APPEND-1")
def test_every_append_only_table_has_its_guard(db_url: str) -> None:
    upgrade(db_url)
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        conn.close()
        expected = {f"{t}_no_{v}" for t in APPEND_ONLY_TABLES for v in ("update", "delete")}
    else:
        url = db_url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(url) as conn:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                ).fetchall()
            }
        expected = {f"{t}_{s}" for t in APPEND_ONLY_TABLES for s in ("append_only", "no_truncate")}
    assert expected <= names


@pytest.mark.postgres
@pytest.mark.req("AUD-APPEND-1")
def test_the_documented_console_role_can_work_but_not_remove_the_guard(
    pg_fresh_database_url: str,
) -> None:
    """docs/audit.md: the consoles connect as a role with INSERT/SELECT (and UPDATE on the
    record tables only); with it the record works and the trail's guard cannot be removed."""
    from audit import AuditTrail, CheckpointSigner
    from audit.patients import PatientRegistry
    from tests.audit.helpers import THERAPIST

    pg_url = pg_fresh_database_url
    upgrade(pg_url)
    role = f"therapy_console_{pg_url.rsplit('_', 1)[-1]}"
    admin_url = pg_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(
            f"GRANT UPDATE ON users, patients, programme_assignments, programme_phases, "
            f"treatment_sessions TO {role}"
        )
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    user = pg_url.split("://", 1)[1].split("@", 1)[0]
    console_url = pg_url.replace(f"://{user}@", f"://{role}@")
    store = open_store(console_url)
    try:
        trail = AuditTrail(store, CheckpointSigner.generate(), "ws-room-2")
        trail.register_signer(created=True)
        PatientRegistry(trail).create(THERAPIST, "KN-0001", date(1970, 1, 1))
        trail.checkpoint()
        for sql in (
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
            "DROP TRIGGER audit_events_append_only ON audit_events",
            "UPDATE audit_events SET actor = 'x'",
        ):
            with pytest.raises(sqlalchemy.exc.DBAPIError), store.write() as session:
                session.execute(sqlalchemy.text(sql))
        from audit.verify import verify_store

        assert verify_store(store).ok
    finally:
        store.dispose()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.req("AUD-STORE-2")
def test_an_older_or_newer_schema_is_named_with_what_to_do(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0001")
    with pytest.raises(SchemaNotCurrent, match=r"is at schema 0001, not .*db upgrade"):
        open_store(sqlite_url)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaNotCurrent, match="made by a newer version of the console"):
        open_store(sqlite_url)
