"""Fixtures for the record store tests: SQLite files, and fresh PostgreSQL databases on the
server of this machine (127.0.0.1:5432, trust auth). When that server is not reachable the
PostgreSQL tests fail with a clear message (CI starts it; they are never skipped)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from audit import AuditTrail, CheckpointSigner, RecordStore, open_store
from audit.migrate import upgrade
from tests.audit.helpers import WORKSTATION

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")


def _pg_user() -> str:
    errors = []
    for user in PG_USERS:
        try:
            psycopg.connect(f"postgresql://{user}@{PG_HOST}/postgres", connect_timeout=5).close()
            return user
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    pytest.fail(
        f"PostgreSQL is not reachable on {PG_HOST} ({'; '.join(errors)}). Start it "
        "(`.ci/run` does: pg_ctlcluster <version> main start) and run the tests again.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def pg_user() -> str:
    return _pg_user()


def _create_database(admin: str) -> str:
    name = f"therapy_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database(pg_user: str) -> Iterator[str]:
    """This test run's own PostgreSQL database (dropped at the end of the run)."""
    admin = f"postgresql://{pg_user}@{PG_HOST}/postgres"
    name = _create_database(admin)
    yield name
    _drop_database(admin, name)


@pytest.fixture
def pg_url(pg_user: str, pg_database: str) -> Iterator[str]:
    """A fresh, empty place for one test: its own schema in this run's database (a schema is
    made in milliseconds, a database in about half a second), reached through search_path."""
    schema = f"t_{secrets.token_hex(6)}"
    base = f"postgresql://{pg_user}@{PG_HOST}/{pg_database}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql+psycopg://{pg_user}@{PG_HOST}/{pg_database}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_fresh_database_url(pg_user: str) -> Iterator[str]:
    """A whole new database for one test (when the test is about database-wide set-up)."""
    admin = f"postgresql://{pg_user}@{PG_HOST}/postgres"
    name = _create_database(admin)
    try:
        yield f"postgresql+psycopg://{pg_user}@{PG_HOST}/{name}"
    finally:
        _drop_database(admin, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'record.sqlite3'}"


@pytest.fixture
def store(db_url: str) -> Iterator[RecordStore]:
    upgrade(db_url)
    opened = open_store(db_url)
    yield opened
    opened.dispose()


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner.generate()


@pytest.fixture
def trail(store: RecordStore, signer: CheckpointSigner, tmp_path: Path) -> AuditTrail:
    made = AuditTrail(store, signer, WORKSTATION, witness_path=tmp_path / "witness.json")
    made.register_signer(created=True)
    return made
