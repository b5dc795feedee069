"""First run: create the database and key, migrate an older database after a checked backup,
refuse a newer one without touching anything; the clinic server's schema is left to the service
engineer. Real SQLite files and the real PostgreSQL server; real Alembic migrations."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from audit import migrate
from audit.keys import load_or_create_signer
from audit.records import verify_records
from audit.store import open_store
from audit.trail import AuditTrail
from audit.users import UserDirectory
from audit.verify import verify_store
from console import firstrun
from console.auth import AuthService
from console.firstrun import (
    BackupFailed,
    DatabaseState,
    DatabaseTooNew,
    FirstRunError,
    NotAConsoleDatabase,
    ServerMigrationNeeded,
    ServerNotReady,
    prepare_database,
)
from tests.installer.conftest import newer_history
from tests.installer.installer_helpers import tree_snapshot

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
NOW = dt.datetime(2026, 11, 25, 9, 30, 0, tzinfo=dt.UTC)


def previous_revision() -> str:
    """The revision before the program's head: the schema an older version wrote."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(migrate._config()).get_revision(migrate.head_revision())
    assert isinstance(head.down_revision, str), "the migration history has one revision only"
    return head.down_revision


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def add_admin(url: str, data: Path) -> None:
    """The first admin, added the way the first-run screen does (console/auth.py)."""
    signer, created = load_or_create_signer(data / "audit-signing-key.pem")
    store = open_store(url, check_schema=False)  # also a database an older version made
    try:
        trail = AuditTrail(store, signer, "room-1", witness_path=data / "audit-witness.json")
        trail.register_signer(created)
        auth = AuthService(UserDirectory(trail), workstation="room-1", hasher=FAST_HASHER)
        auth.add_user(None, "admin", "Ada Admin", "admin", "correct horse battery")
    finally:
        store.dispose()


def audit_actions(url: str) -> list[str]:
    store = open_store(url, check_schema=False)
    try:
        with store.connection() as conn:
            rows = conn.exec_driver_sql("SELECT action FROM audit_events ORDER BY seq")
            return [r[0] for r in rows]
    finally:
        store.dispose()


@pytest.mark.req("INST-FIRST-1")
def test_first_run_creates_database_and_key_and_asks_for_an_admin(isolated_console: Path) -> None:
    db = isolated_console / "therapy-console.sqlite3"
    report = prepare_database()  # everything from console.paths: the data folder's defaults
    assert report.action == "created" and report.from_revision is None
    assert report.revision == migrate.head_revision()
    assert report.backup is None
    assert report.key_created and report.needs_first_admin
    key = isolated_console / "audit-signing-key.pem"
    assert db.is_file() and key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert audit_actions(sqlite_url(db)) == ["key.created"]
    assert any("first admin" in line for line in report.lines())

    again = prepare_database()
    assert (again.action, again.key_created, again.needs_first_admin) == ("current", False, True)
    assert again.key_id == report.key_id
    add_admin(sqlite_url(db), isolated_console)
    assert prepare_database().needs_first_admin is False
    assert audit_actions(sqlite_url(db)) == ["key.created", "user.created"]


@pytest.mark.req("INST-FIRST-1")
def test_an_empty_file_is_given_the_schema(isolated_console: Path) -> None:
    db = isolated_console / "empty.sqlite3"
    db.parent.mkdir(parents=True)
    sqlite3.connect(db).close()
    report = prepare_database(str(db))
    assert report.action == "created" and report.backup is None
    assert firstrun.inspect_database(str(db)).state is DatabaseState.CURRENT


def make_older_database(tmp_path: Path, data: Path) -> Path:
    """A database at the program's current head (0001) with users and events, then copied: the
    copy is "a database made by an older schema" once the history has revision 9001 on top."""
    original = tmp_path / "made-by-older-version.sqlite3"
    url = sqlite_url(original)
    migrate.upgrade(url)
    add_admin(url, data)
    copy = data / "therapy-console.sqlite3"
    with (
        contextlib.closing(sqlite3.connect(original)) as src,
        contextlib.closing(sqlite3.connect(copy)) as dst,
    ):
        src.backup(dst)
    return copy


@pytest.mark.req("INST-FIRST-2")
@pytest.mark.req("AUD-REC-5")
def test_a_database_at_the_previous_schema_is_backed_up_then_migrated(
    tmp_path: Path, isolated_console: Path
) -> None:
    """The real history: a database written at the revision before head, with an admin."""
    older_revision = previous_revision()
    original = tmp_path / "older.sqlite3"
    migrate.upgrade(sqlite_url(original), older_revision)
    add_admin(sqlite_url(original), isolated_console)
    db = isolated_console / "therapy-console.sqlite3"
    with (
        contextlib.closing(sqlite3.connect(original)) as src,
        contextlib.closing(sqlite3.connect(db)) as dst,
    ):
        src.backup(dst)
    before = audit_actions(sqlite_url(db))

    report = prepare_database(now=NOW)

    assert (report.action, report.from_revision) == ("migrated", older_revision)
    assert report.revision == migrate.head_revision()
    assert report.backup == db.with_name(
        f"therapy-console.backup-{older_revision}-20261125T093000Z.sqlite3"
    )
    assert firstrun.inspect_database(str(report.backup)).revision == older_revision
    assert firstrun.inspect_database(str(db)).state is DatabaseState.CURRENT
    assert audit_actions(str(report.backup)) == before
    after = audit_actions(str(db))
    assert after[: len(before)] == before
    # migration 0004 states the one user row in the trail, signed with this console's key
    assert after[len(before) :] == ["record.backfilled", "audit.checkpoint"]
    store = open_store(str(db))
    try:
        assert verify_store(store).ok and verify_records(store).ok
    finally:
        store.dispose()
    assert not report.needs_first_admin


@pytest.mark.req("INST-FIRST-2")
def test_an_older_database_is_backed_up_then_migrated(
    tmp_path: Path, isolated_console: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = make_older_database(tmp_path, isolated_console)
    before = audit_actions(sqlite_url(older))
    old_head = migrate.head_revision()
    monkeypatch.setattr(migrate, "_HERE", newer_history(tmp_path))
    assert migrate.head_revision() == "9001"
    assert firstrun.inspect_database(str(older)).state is DatabaseState.OLDER

    report = prepare_database(str(older), now=NOW)

    assert (report.action, report.from_revision, report.revision) == ("migrated", old_head, "9001")
    assert report.backup == older.with_name(
        f"therapy-console.backup-{old_head}-20261125T093000Z.sqlite3"
    )
    assert stat.S_IMODE(report.backup.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(report.backup)) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (old_head,)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        names = {r[0] for r in copy.execute("SELECT name FROM sqlite_master")}
        assert "clinic_settings" not in names
        backed_up = [r[0] for r in copy.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert backed_up == before
    with contextlib.closing(sqlite3.connect(older)) as migrated:
        assert migrated.execute("SELECT value FROM clinic_settings").fetchone() == ("yes",)
    assert audit_actions(sqlite_url(older)) == before  # the key was registered already
    store = open_store(str(older))
    try:
        assert verify_store(store).ok
    finally:
        store.dispose()
    assert not report.needs_first_admin
    assert any(str(report.backup) in line for line in report.lines())


@pytest.mark.req("INST-FIRST-2")
def test_a_failed_migration_leaves_the_database_as_it_was_and_the_backup_beside_it(
    tmp_path: Path, isolated_console: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = make_older_database(tmp_path, isolated_console)
    old_head = migrate.head_revision()
    monkeypatch.setattr(migrate, "_HERE", newer_history(tmp_path, fail=True))
    with pytest.raises(FirstRunError, match="backup made before is at") as caught:
        prepare_database(str(older), now=NOW)
    assert "disk full (simulated)" in str(caught.value)
    backup = older.with_name(f"therapy-console.backup-{old_head}-20261125T093000Z.sqlite3")
    assert backup.is_file()
    with contextlib.closing(sqlite3.connect(older)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (old_head,)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "clinic_settings" not in names  # the migration's transaction was rolled back


@pytest.mark.req("INST-FIRST-2")
def test_no_migration_without_a_backup(
    tmp_path: Path, isolated_console: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = make_older_database(tmp_path, isolated_console)
    old_head = migrate.head_revision()
    monkeypatch.setattr(migrate, "_HERE", newer_history(tmp_path))
    taken = older.with_name(f"therapy-console.backup-{old_head}-20261125T093000Z.sqlite3")
    taken.write_text("an earlier backup made in the same second")
    with pytest.raises(BackupFailed, match="nothing was migrated"):
        prepare_database(str(older), now=NOW)
    assert taken.read_text() == "an earlier backup made in the same second"
    assert firstrun.inspect_database(str(older)).revision == old_head


@pytest.mark.req("INST-FIRST-3")
@pytest.mark.parametrize("another_console_open", [False, True])
def test_a_newer_database_is_refused_and_nothing_is_touched(
    isolated_console: Path, another_console_open: bool
) -> None:
    db = isolated_console / "therapy-console.sqlite3"
    migrate.upgrade(sqlite_url(db))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999_from_the_future'")
        conn.commit()
    holder = open_store(str(db), check_schema=False) if another_console_open else None
    try:
        if holder is not None:  # a second console keeps the database (and its -wal) open
            with holder.connection() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar()
        assert db.with_name(db.name + "-wal").exists() is another_console_open
        before = tree_snapshot(isolated_console)
        with pytest.raises(DatabaseTooNew) as caught:
            prepare_database()
        assert tree_snapshot(isolated_console) == before
    finally:
        if holder is not None:
            holder.dispose()
    message = str(caught.value)
    assert "0999_from_the_future" in message and "newer version" in message
    assert "Nothing was changed." in message
    assert not (isolated_console / "audit-signing-key.pem").exists()


@pytest.mark.req("INST-FIRST-3")
def test_a_database_of_another_program_is_refused_untouched(isolated_console: Path) -> None:
    db = isolated_console / "therapy-console.sqlite3"
    db.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        conn.commit()
    before = tree_snapshot(isolated_console)
    with pytest.raises(NotAConsoleDatabase, match="not one of therapy-console's"):
        prepare_database()
    assert tree_snapshot(isolated_console) == before


def test_a_file_that_is_not_a_database_gets_a_clear_error(isolated_console: Path) -> None:
    db = isolated_console / "therapy-console.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is a spreadsheet, not a database" * 200)
    with pytest.raises(FirstRunError, match=r"not a readable SQLite database.*backup"):
        prepare_database()


# --------------------------------------------------------------------------- the clinic server
@pytest.mark.postgres
@pytest.mark.req("INST-FIRST-4")
def test_a_console_does_not_create_the_shared_schema(pg_url: str, isolated_console: Path) -> None:
    with pytest.raises(ServerNotReady, match=r"prepare\.sh") as caught:
        prepare_database(pg_url)
    assert not isinstance(caught.value, ServerMigrationNeeded)  # nothing to confirm here
    assert "Nothing was changed." in str(caught.value)
    with pytest.raises(ServerNotReady, match=r"prepare\.sh"):
        prepare_database(pg_url, server_backup_confirmed=True)  # a confirmation changes nothing
    assert not isolated_console.exists()  # not even the key
    store = open_store(pg_url, check_schema=False)
    try:
        assert migrate.current_revision(store) is None
    finally:
        store.dispose()


@pytest.mark.postgres
@pytest.mark.req("INST-FIRST-4")
def test_a_prepared_server_database_gets_this_consoles_key(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    report = prepare_database(pg_url)
    assert (report.action, report.key_created, report.needs_first_admin) == ("current", True, True)
    assert report.backup is None
    assert audit_actions(pg_url) == ["key.created"]


@pytest.mark.postgres
@pytest.mark.req("INST-FIRST-4")
def test_an_older_server_schema_is_migrated_only_after_the_backup_is_confirmed(
    pg_url: str,
) -> None:
    older_revision = previous_revision()
    migrate.upgrade(pg_url, older_revision)
    with pytest.raises(ServerMigrationNeeded, match="pg_dump"):
        prepare_database(pg_url)
    assert firstrun.inspect_database(pg_url).revision == older_revision
    report = prepare_database(pg_url, server_backup_confirmed=True)
    assert (report.action, report.from_revision) == ("migrated", older_revision)
    assert report.revision == migrate.head_revision()
    assert report.backup is None  # the server's backup is pg_dump's job


@pytest.mark.postgres
def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(FirstRunError, match="check that the server is running"):
        prepare_database("postgresql+psycopg://postgres@127.0.0.1:1/therapy")
