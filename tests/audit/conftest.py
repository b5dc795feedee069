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


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"therapy_test_{secrets.token_hex(6)}"
    admin = f"postgresql://{pg_user}@{PG_HOST}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{pg_user}@{PG_HOST}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
