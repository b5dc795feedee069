"""Fixtures for the installer's tests: an isolated data folder per test, fresh PostgreSQL
databases on this machine's server (127.0.0.1:5432, trust auth; never skipped: a test fails
with a clear message when the server is down), and a migration history with one more revision
than the program's (to test migrating a database made by an older schema)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.installer.installer_helpers import PG_HOST, admin_dsn, pg_superuser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data and log folders; no inherited database setting."""
    data = tmp_path / "data"
    monkeypatch.setenv("THERAPY_CONSOLE_DATA_DIR", str(data))
    monkeypatch.setenv("THERAPY_CONSOLE_LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setenv("THERAPY_CONSOLE_WORKSTATION", "room-1")
    for name in ("THERAPY_CONSOLE_DB", "THERAPY_CONSOLE_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    return data


@pytest.fixture(scope="session")
def pg_user() -> str:
    return pg_superuser()


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    name = f"tc_install_{secrets.token_hex(6)}"
    with psycopg.connect(admin_dsn(pg_user), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{pg_user}@{PG_HOST}/{name}"
    finally:
        with psycopg.connect(admin_dsn(pg_user), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


NEXT_REVISION = '''"""A test-only revision after the program's head: settings of the clinic.

Revision ID: 9001
Revises: {down}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clinic_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.execute("INSERT INTO clinic_settings (key, value) VALUES ('migrated', 'yes')")
    {fail}


def downgrade() -> None:
    raise RuntimeError("never downgraded")
'''


def newer_history(tmp_path: Path, *, fail: bool = False) -> Path:
    """A copy of the program's migration history with a revision ``9001`` on top (whose
    upgrade raises half-way when ``fail``); point ``audit.migrate._HERE`` at it."""
    from audit import migrate

    here = tmp_path / "newer-history"
    shutil.copytree(
        Path(migrate.__file__).parent / "migrations",
        here / "migrations",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(Path(migrate.__file__).parent / "alembic.ini", here / "alembic.ini")
    body = NEXT_REVISION.format(
        down=migrate.head_revision(),
        fail='raise RuntimeError("disk full (simulated)")' if fail else "",
    )
    (here / "migrations" / "versions" / "9001_test_clinic_settings.py").write_text(body)
    return here
