"""The command line: ``db``, ``audit`` and ``user`` with exit codes 0 (ok), 1 (failure), 2 (bad
input) and one-line errors."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from audit import open_store
from audit.migrate import head_revision
from console.cli import main
from tests.audit import independent_verifier
from tests.audit.helpers import attacker_sql

pytestmark = pytest.mark.req("AUD-CLI-1")
ADMIN_PW = "admin passphrase 1"
TH_PW = "therapist passphrase"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh installation: its own data and log folders, no database yet."""
    monkeypatch.setenv("THERAPY_CONSOLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("THERAPY_CONSOLE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("THERAPY_CONSOLE_WORKSTATION", "room-1")
    monkeypatch.delenv("THERAPY_CONSOLE_DB", raising=False)
    monkeypatch.delenv("THERAPY_CONSOLE_SIGNING_KEY", raising=False)
    return tmp_path


def run(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clinic(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Database created, first admin bootstrapped, one therapist added."""
    assert run(["db", "upgrade"], capsys, monkeypatch)[0] == 0
    code, _, err = run(
        [
            "user",
            "add",
            "admin1",
            "--full-name",
            "Ada Admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        capsys,
        monkeypatch,
        f"{ADMIN_PW}\n",
    )
    assert code == 0, err
    code, _out, err = run(
        [
            "user",
            "add",
            "th1",
            "--full-name",
            "Theo Therapist",
            "--role",
            "therapist",
            "--as",
            "admin1",
            "--password-stdin",
        ],
        capsys,
        monkeypatch,
        f"{ADMIN_PW}\n{TH_PW}\n",
    )
    assert code == 0, err
    return home / "data"


def test_db_upgrade_and_current_on_the_default_sqlite_file(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["db", "current"], capsys, monkeypatch)
    assert code == 7  # EXIT_DATABASE: there is no database yet
    code, out, _ = run(["db", "upgrade"], capsys, monkeypatch)
    head = head_revision()
    assert code == 0 and f"therapy-console.sqlite3: schema {head} (latest {head})" in out
    assert (home / "data" / "therapy-console.sqlite3").exists()
    code, out, _ = run(["db", "current"], capsys, monkeypatch)
    assert code == 0 and "up to date" in out


@pytest.mark.postgres
def test_db_upgrade_and_verify_on_postgresql_by_url_and_environment(
    home: Path,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(["db", "upgrade", "--db", pg_url], capsys, monkeypatch)
    assert code == 0, err
    monkeypatch.setenv("THERAPY_CONSOLE_DB", pg_url)
    code, out, err = run(["audit", "verify"], capsys, monkeypatch)
    assert code == 0 and "VERIFIED" in out and "postgresql" in out


def test_first_admin_then_admins_only(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(
        ["user", "add", "th2", "--full-name", "T", "--role", "therapist", "--password-stdin"],
        capsys,
        monkeypatch,
        f"{TH_PW}\n",
    )
    assert code == 2 and "run this as an admin with --as ADMIN" in err
    code, _, err = run(
        [
            "user",
            "add",
            "th2",
            "--full-name",
            "T",
            "--role",
            "therapist",
            "--as",
            "th1",
            "--password-stdin",
        ],
        capsys,
        monkeypatch,
        f"{TH_PW}\n{TH_PW}x\n",
    )
    assert code == 3 and "a therapist may not" in err
    code, _, err = run(
        [
            "user",
            "add",
            "th2",
            "--full-name",
            "T",
            "--role",
            "therapist",
            "--as",
            "admin1",
            "--password-stdin",
        ],
        capsys,
        monkeypatch,
        f"{ADMIN_PW}\nshort\n",
    )
    assert code == 2 and "at least 12 characters" in err
    code, out, _ = run(
        ["user", "list", "--as", "admin1", "--password-stdin"],
        capsys,
        monkeypatch,
        f"{ADMIN_PW}\n",
    )
    assert code == 0 and "admin1" in out and "th1" in out and "Theo Therapist" in out


def test_wrong_password_is_a_one_line_failure(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(
        ["user", "list", "--as", "admin1", "--password-stdin"],
        capsys,
        monkeypatch,
        "not the password\n",
    )
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith("therapy-console: error: Wrong user name")


def test_disable_passwd_and_unlock(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = ["--as", "admin1", "--password-stdin"]
    assert run(["user", "disable", "th1", *admin], capsys, monkeypatch, f"{ADMIN_PW}\n")[0] == 0
    code, out, _ = run(["user", "list", *admin], capsys, monkeypatch, f"{ADMIN_PW}\n")
    assert "disabled" in out
    assert run(["user", "enable", "th1", *admin], capsys, monkeypatch, f"{ADMIN_PW}\n")[0] == 0
    code, out, err = run(
        ["user", "passwd", "th1", *admin], capsys, monkeypatch, f"{ADMIN_PW}\nnew therapist pw\n"
    )
    assert code == 0, err
    code, _, err = run(
        ["user", "passwd", "th1", "--as", "th1", "--password-stdin"],
        capsys,
        monkeypatch,
        "new therapist pw\nanother therapist pw\n",
    )
    assert code == 0, err
    assert run(["user", "unlock", "th1", *admin], capsys, monkeypatch, f"{ADMIN_PW}\n")[0] == 0


@pytest.mark.req("AUD-CKPT-1")
def test_key_made_on_first_run_owner_only_and_exported(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = clinic / "audit-signing-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pem = clinic.parent / "public.pem"
    code, out, _ = run(["audit", "public-key", "--out", str(pem)], capsys, monkeypatch)
    assert code == 0 and "wrote 1 public key(s)" in out
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    store = open_store(str(clinic / "therapy-console.sqlite3"))
    with store.connection() as conn:
        actions = [r[0] for r in conn.exec_driver_sql("SELECT action FROM audit_events")]
    store.dispose()
    assert actions.count("key.created") == 1 and actions.count("key.registered") == 0


@pytest.mark.req("AUD-VERIFY-1")
@pytest.mark.req("AUD-EXPORT-1")
def test_verify_export_and_an_auditors_check(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["audit", "verify"], capsys, monkeypatch)
    assert code == 0 and "VERIFIED" in out
    pem, jsonl = clinic.parent / "public.pem", clinic.parent / "trail.jsonl"
    run(["audit", "public-key", "--out", str(pem)], capsys, monkeypatch)
    for fmt in ("jsonl", "csv", "fhir"):
        out_path = jsonl if fmt == "jsonl" else clinic.parent / f"trail.{fmt}"
        code, out, err = run(
            [
                "audit",
                "export",
                "--format",
                fmt,
                "--out",
                str(out_path),
                "--as",
                "admin1",
                "--password-stdin",
            ],
            capsys,
            monkeypatch,
            f"{ADMIN_PW}\n",
        )
        assert code == 0, err
        assert "ending with a signed checkpoint" in out and out_path.stat().st_size > 0
    code, out, _ = run(
        ["audit", "verify", "--file", str(jsonl), "--public-key", str(pem)], capsys, monkeypatch
    )
    assert code == 0 and "VERIFIED" in out
    assert independent_verifier.verify_file(jsonl, pem) == []
    result = subprocess.run(
        [sys.executable, independent_verifier.__file__, str(jsonl), str(pem)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    verified = [e for e in events if e["action"] == "audit.verified"]
    assert verified and verified[0]["data"]["ok"] is True and "os_user" in verified[0]["data"]


@pytest.mark.req("AUD-VERIFY-1")
def test_verify_fails_with_every_problem_named(
    clinic: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(str(clinic / "therapy-console.sqlite3"))
    attacker_sql(store, [("UPDATE audit_events SET actor = %s WHERE seq = %s", ("mallory", 3))])
    store.dispose()
    code, out, _ = run(["audit", "verify"], capsys, monkeypatch)
    assert code == 1
    assert "seq 3: hash does not match" in out and "FAILED" in out and "first at seq 3" in out
    other = clinic.parent / "other.pem"
    from audit import CheckpointSigner

    other.write_text(CheckpointSigner.generate().public.pem)
    jsonl = clinic.parent / "t.jsonl"
    run(["audit", "export", "--format", "jsonl", "--out", str(jsonl)], capsys, monkeypatch)
    code, out, _ = run(
        ["audit", "verify", "--file", str(jsonl), "--public-key", str(other)],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "not a trusted key" in out


def test_bad_databases_and_arguments_get_one_line_errors(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = home / "corrupt.sqlite3"
    bad.write_bytes(b"garbage" * 1000)
    cases = [
        (["audit", "verify", "--db", str(bad)], 7, "is not a readable SQLite database"),
        (["audit", "verify", "--db", str(home / "none.db")], 7, "there is no database at"),
        (
            ["audit", "verify", "--db", "postgresql://postgres@127.0.0.1:5999/x"],
            7,
            "check that the server is running",
        ),
        (["audit", "verify", "--file", str(home / "x.jsonl")], 2, "needs the trusted --public-key"),
        (
            ["audit", "export", "--format", "jsonl", "--out", str(home / "no" / "x.jsonl")],
            2,
            "does not exist",
        ),
    ]
    for args, expected, message in cases:
        code, _, err = run(args, capsys, monkeypatch)
        assert code == expected, (args, err)
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as info:
        main(["audit", "export", "--format", "xml", "--out", "x"])
    assert info.value.code == 2
