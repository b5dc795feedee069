"""The clinic server: prepare.sh on the real PostgreSQL (127.0.0.1:5432) in a uniquely named
database with unique roles, then the console role at work: it records, and it cannot UPDATE,
DELETE or TRUNCATE audit rows (permission denied), while the owner is stopped by the trigger."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher

from audit.events import Subject
from audit.keys import load_or_create_signer
from audit.store import open_store
from audit.trail import AuditTrail
from audit.users import UserDirectory
from console.auth import AuthService, LoginFailed
from console.dbcheck import check_database
from console.firstrun import prepare_database
from tests.installer.installer_helpers import PG_HOST, admin_dsn

pytestmark = [pytest.mark.postgres]
REPO = Path(__file__).resolve().parents[2]
PREPARE = REPO / "installer" / "clinic-server" / "prepare.sh"
APPEND_ONLY = ("audit_events", "signing_keys", "session_signatures", "session_events")
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass(frozen=True)
class ClinicServer:
    database: str
    owner: str
    console: str
    admin: str
    first_output: str
    second_output: str

    def url(self, role: str) -> str:
        return f"postgresql+psycopg://{role}@{PG_HOST}/{self.database}"

    def dsn(self, role: str) -> str:
        return f"postgresql://{role}@{PG_HOST}/{self.database}"


def program() -> Path:
    """The installed console of this venv (what prepare.sh runs the migrations with)."""
    path = Path(sys.executable).parent / "therapy-console"
    assert path.is_file(), f"{path} is missing: install the project (pip install -e '.[test]')"
    return path


def run_prepare(names: dict[str, str], admin: str) -> subprocess.CompletedProcess[str]:
    host, port = PG_HOST.split(":")
    return subprocess.run(
        [
            "bash",
            str(PREPARE),
            "--host",
            host,
            "--port",
            port,
            "--admin",
            admin,
            "--database",
            names["database"],
            "--owner",
            names["owner"],
            "--console-role",
            names["console"],
            "--program",
            str(program()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def server(pg_user: str) -> Iterator[ClinicServer]:
    tag = secrets.token_hex(4)
    names = {"database": f"tc_clinic_{tag}", "owner": f"tc_own_{tag}", "console": f"tc_con_{tag}"}
    try:
        first = run_prepare(names, pg_user)
        assert first.returncode == 0, first.stderr
        second = run_prepare(names, pg_user)  # idempotent: again after an upgrade
        assert second.returncode == 0, second.stderr
        yield ClinicServer(
            admin=pg_user, first_output=first.stdout, second_output=second.stdout, **names
        )
    finally:
        with psycopg.connect(admin_dsn(pg_user), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)')
            for role in (names["console"], names["owner"]):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def console_records(server: ClinicServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A console connected as the console role: first run, first admin, a few events."""
    data = tmp_path_factory.mktemp("console-data")
    url = server.url(server.console)
    report = prepare_database(
        url,
        key_path=data / "key.pem",
        witness_path=data / "witness.json",
        workstation="room-2",
    )
    assert report.action == "current" and report.key_created and report.needs_first_admin
    signer, _ = load_or_create_signer(data / "key.pem")
    store = open_store(url)
    trail = AuditTrail(store, signer, "room-2", witness_path=data / "witness.json")
    auth = AuthService(UserDirectory(trail), workstation="room-2", hasher=HASHER)
    auth.add_user(None, "ada", "Ada Admin", "admin", "knee-clinic-2026!")
    yield trail, auth
    store.dispose()


def test_prepare_prints_the_console_setting_and_runs_twice(server: ClinicServer) -> None:
    setting = f"THERAPY_CONSOLE_DB={server.url(server.console)}"
    assert setting in server.first_output and setting in server.second_output
    assert "audit_events          | INSERT, SELECT" in server.second_output


@pytest.mark.req("INST-SRV-1")
def test_the_console_role_records_and_signs(console_records) -> None:
    trail, auth = console_records
    admin = auth.login("ada", "knee-clinic-2026!")
    with pytest.raises(LoginFailed):  # a failed sign-in UPDATEs the users row: allowed
        auth.login("ada", "not the password")
    trail.append(admin.actor, "user.note", Subject("user", "ada"), {"note": "from room 2"})
    trail.checkpoint()
    actions = [e.action for e in trail.events()]
    assert actions[:3] == ["key.created", "user.created", "user.login"]
    assert "user.login_failed" in actions and actions[-1] == "audit.checkpoint"


@pytest.mark.req("INST-SRV-1")
@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}", "TRUNCATE {t}"],
)
def test_the_console_role_cannot_change_append_only_rows(
    server: ClinicServer, console_records, table: str, statement: str
) -> None:
    column = {"audit_events": "actor", "signing_keys": "workstation"}.get(table, "id")
    with (
        psycopg.connect(server.dsn(server.console)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege) as caught,
    ):
        conn.execute(statement.format(t=table, c=column))
    assert f"permission denied for table {table}" in str(caught.value)


@pytest.mark.req("INST-SRV-1")
def test_the_owner_is_stopped_by_the_append_only_trigger(
    server: ClinicServer, console_records
) -> None:
    with psycopg.connect(server.dsn(server.owner)) as conn:
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(statement)
            conn.rollback()
            assert "audit_events is append-only" in str(caught.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE audit_events CASCADE")


@pytest.mark.req("INST-SRV-1")
def test_the_console_role_has_no_ddl_and_cannot_drop_the_guard(
    server: ClinicServer, console_records
) -> None:
    for statement, message in (
        ("CREATE TABLE scratch (i int)", "permission denied for schema public"),
        ("DROP TRIGGER audit_events_append_only ON audit_events", "must be owner"),
        ("ALTER TABLE audit_events DISABLE TRIGGER ALL", "must be owner"),
        ("UPDATE alembic_version SET version_num = 'x'", "permission denied"),
    ):
        with psycopg.connect(server.dsn(server.console)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(statement)
            assert message in str(caught.value)
    with psycopg.connect(admin_dsn(server.admin, server.database)) as conn:
        rights = dict(
            conn.execute(
                "SELECT v, has_table_privilege(%s, 'audit_events', v) FROM unnest(%s::text[]) v",
                (server.console, ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]),
            ).fetchall()
        )
    assert rights == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
    }


def test_other_roles_cannot_connect(server: ClinicServer, pg_user: str) -> None:
    stranger = f"tc_stranger_{secrets.token_hex(3)}"
    with psycopg.connect(admin_dsn(pg_user), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{stranger}" LOGIN')
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(server.dsn(stranger)).close()
    finally:
        with psycopg.connect(admin_dsn(pg_user), autocommit=True) as conn:
            conn.execute(f'DROP ROLE "{stranger}"')


@pytest.mark.req("INST-SRV-2")
def test_db_check_as_the_console_role_and_as_the_owner(
    server: ClinicServer, console_records
) -> None:
    report = check_database(server.url(server.console))
    assert report.ok, report.render()
    text = report.render()
    assert f"connected as {server.console}" in text
    assert "cannot update or delete" in text and "VERIFIED" in text
    owner = check_database(server.url(server.owner)).render()
    assert "may also UPDATE, DELETE, TRUNCATE" in owner


def test_prepare_refuses_bad_names_before_touching_the_server() -> None:
    result = run_prepare(
        {"database": "Therapy; DROP", "owner": "o", "console": "c"}, admin="postgres"
    )
    assert result.returncode == 2
    assert "--database 'Therapy; DROP' must be lower-case letters" in result.stderr
    assert result.stdout == ""
