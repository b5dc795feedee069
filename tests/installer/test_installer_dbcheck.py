"""``db check``: reach, schema, guard, rights and trail, on real SQLite files and a dead server;
through the parser the ``db`` command adds it with (``console.dbcheck.add_check_parser``)."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from pathlib import Path

import pytest

from audit import migrate
from console.dbcheck import add_check_parser, check_database
from console.firstrun import prepare_database


def db_check(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``db check ARGS`` through a parser wired exactly as ``console/cli/db.py`` does."""
    parser = argparse.ArgumentParser(prog="therapy-console")
    commands = (
        parser.add_subparsers(dest="command")
        .add_parser("db")
        .add_subparsers(dest="db_command", required=True)
    )
    add_check_parser(commands)
    args = parser.parse_args(["db", "check", *argv])
    code = args.handler(args)
    return code, capsys.readouterr().out


@pytest.fixture
def ready_db(isolated_console: Path) -> Path:
    prepare_database()
    return isolated_console / "therapy-console.sqlite3"


@pytest.mark.req("INST-SRV-2")
def test_a_ready_database_checks_out(ready_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = db_check(["--db", str(ready_db)], capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "db",
        "reach",
        "schema",
        "guard",
        "rights",
        "trail",
        "db",
    ]
    assert all(line.split()[1] == "ok" for line in lines[1:-1])
    assert f"{migrate.head_revision()} (this program's latest" in out
    assert "1 events, 0 signed checkpoints, last seq 1: VERIFIED" in out
    assert lines[-1] == "db check: all well"


@pytest.mark.req("INST-SRV-2")
def test_the_database_setting_is_used_without_db(
    ready_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THERAPY_CONSOLE_DB", f"sqlite:///{ready_db}")
    code, out = db_check([], capsys)
    assert code == 0 and str(ready_db) in out.splitlines()[0]


@pytest.mark.req("INST-SRV-2")
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/therapy", "check that the server is running"),
        ("mysql://x@y/z", "not supported"),
        ("/nowhere/therapy.sqlite3", "there is no database at /nowhere/therapy.sqlite3"),
    ],
)
def test_an_unreachable_database_is_one_clear_line(
    url: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = db_check(["--db", url], capsys)
    assert code == 1
    reach = next(line for line in out.splitlines() if line.startswith("reach"))
    assert "FAILED" in reach and said in reach
    assert out.splitlines()[-1] == "db check: 1 problem(s): reach"


@pytest.mark.req("INST-SRV-2")
def test_older_and_newer_schemas_are_named(tmp_path: Path) -> None:
    older = tmp_path / "older.sqlite3"
    migrate.upgrade(f"sqlite:///{older}", "0001")
    report = check_database(str(older))
    assert not report.ok
    assert "0001 is older than this program's" in report.render()
    with contextlib.closing(sqlite3.connect(older)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
        conn.commit()
    assert "0999 is newer than this program knows" in check_database(str(older)).render()
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    text = check_database(str(empty)).render()
    assert "none: the database is empty" in text and "no audit trail" in text


@pytest.mark.req("INST-SRV-2")
def test_a_missing_guard_and_a_tampered_trail_fail(ready_db: Path) -> None:
    with contextlib.closing(sqlite3.connect(ready_db)) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        conn.commit()
    report = check_database(str(ready_db))
    text = report.render()
    assert not report.ok
    assert "guard  FAILED  audit_events does not refuse UPDATE" in text
    assert "trail  FAILED  1 events" in text and "first at seq 1" in text
    assert text.splitlines()[-1] == "db check: 2 problem(s): guard, trail"


@pytest.mark.req("AUD-REC-2")
def test_a_record_row_inserted_behind_the_trail_fails_the_check(ready_db: Path) -> None:
    with contextlib.closing(sqlite3.connect(ready_db)) as conn:
        conn.execute(
            "INSERT INTO patients (id, pseudonym, birth_date, created_at, created_by) VALUES "
            "('pt-forged', 'KN-6666', '1960-01-01', '2026-01-01T00:00:00.000000Z', 'x')"
        )
        conn.commit()
    text = check_database(str(ready_db)).render()
    assert "last seq 1: VERIFIED; record of 1 rows: FAILED — 1 problem(s)" in text
    assert "first at seq 0: patient pt-forged: is in the store but no event recorded it" in text


def test_db_check_writes_nothing(ready_db: Path) -> None:
    before = ready_db.read_bytes()
    assert check_database(str(ready_db)).ok
    assert ready_db.read_bytes() == before
