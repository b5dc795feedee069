"""The PyInstaller bundle, built once per test session (``installer/build.py`` into a temporary
folder; about a minute), then run as a clinic would run it: version, database creation and
migration, users and the audit trail (FHIR export, parallel verification), the simulators over
TCP and a pseudo-terminal with the service commands, the clinic server through the bundled
libpq, and the tarball installed into a temporary prefix and uninstalled again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from audit import migrate
from tests.installer.installer_helpers import tree_snapshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "installer" / "build.py"
INSTALLED = Path(sys.executable).parent / "therapy-console"  # the pip-installed console


@dataclass(frozen=True)
class Built:
    bundle: Path
    program: Path
    archive: Path
    info: dict


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("bundle-build")
    result = subprocess.run(
        [sys.executable, str(BUILD), "--dist", str(work / "dist"), "--work", str(work / "work")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, f"the build failed:\n{result.stdout}\n{result.stderr}"
    info = json.loads((work / "dist" / "build-info.json").read_text())
    bundle = Path(info["bundle"])
    print(  # the figures, for the log (-s): size and build time
        f"\nbundle {info['bundle_bytes'] / 2**20:.0f} MiB in {info['bundle_files']} files, "
        f"archive {info['archive_bytes'] / 2**20:.0f} MiB, built in {info['build_seconds']} s"
    )
    return Built(bundle, bundle / "therapy-console", Path(info["archive"]), info)


def run(
    program: Path, *args: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(program), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------- what is inside
@pytest.mark.req("INST-BUNDLE-1")
def test_the_bundle_says_its_version_and_has_the_same_commands(built: Built) -> None:
    from console import __version__

    assert run(built.program, "--version").stdout.strip() == f"therapy-console {__version__}"
    bundled, installed = run(built.program, "--help"), run(INSTALLED, "--help")
    assert bundled.returncode == installed.returncode == 0
    assert bundled.stdout == installed.stdout  # every discovered subcommand made it in
    for command in ("db", "simulate", "device", "audit", "user", "screen"):
        assert re.search(rf"^\s+{command}\s", bundled.stdout, re.M), command


@pytest.mark.req("INST-BUNDLE-2")
def test_the_bundle_carries_its_data_and_only_the_qt_it_uses(built: Built) -> None:
    inside = built.bundle / "_internal"
    migrations = {p.name for p in (inside / "audit" / "migrations" / "versions").glob("*.py")}
    shipped = {p.name for p in (REPO / "audit" / "migrations" / "versions").glob("*.py")}
    assert migrations == shipped and (inside / "audit" / "alembic.ini").is_file()
    data = {p.relative_to(inside / "protocols").as_posix() for p in inside.rglob("*.toml")}
    repo_data = {
        p.relative_to(REPO / "protocols").as_posix() for p in REPO.rglob("protocols/data/**/*.toml")
    }
    assert data == repo_data and data
    names = {p.name for p in inside.rglob("*")}
    for unused in ("libQt6Network", "libQt6Qml", "libQt6Quick", "libQt6OpenGL.", "libQt6Pdf"):
        assert not any(n.startswith(unused) for n in names), unused
    assert not (inside / "PySide6" / "Qt" / "translations").exists()
    platforms = {p.name for p in (inside / "PySide6" / "Qt" / "plugins" / "platforms").iterdir()}
    assert {"libqxcb.so", "libqwayland.so", "libqoffscreen.so"} <= platforms
    assert "libqvnc.so" not in platforms and "libqlinuxfb.so" not in platforms
    assert built.info["bundle_bytes"] < 260 * 2**20  # a regression guard, not a goal


# --------------------------------------------------------------------------- the database
@pytest.mark.req("INST-BUNDLE-1")
def test_db_upgrade_on_a_fresh_sqlite_file(built: Built, tmp_path: Path) -> None:
    head = migrate.head_revision()
    bundled = run(built.program, "db", "upgrade", "--db", str(tmp_path / "a.sqlite3"))
    installed = run(INSTALLED, "db", "upgrade", "--db", str(tmp_path / "b.sqlite3"))
    assert bundled.returncode == installed.returncode == 0, bundled.stderr
    assert bundled.stdout.replace("a.sqlite3", "X") == installed.stdout.replace("b.sqlite3", "X")
    assert f"schema {head} (latest {head})" in bundled.stdout
    current = run(built.program, "db", "current", "--db", str(tmp_path / "a.sqlite3"))
    assert current.returncode == 0 and "up to date" in current.stdout
    older = tmp_path / "older.sqlite3"
    migrate.upgrade(f"sqlite:///{older}", "0001")
    assert run(built.program, "db", "current", "--db", str(older)).returncode == 1
    assert run(built.program, "db", "upgrade", "--db", str(older)).returncode == 0
    assert run(built.program, "db", "current", "--db", str(older)).returncode == 0


@pytest.mark.req("INST-BUNDLE-1")
def test_users_audit_trail_and_fhir_export_in_the_bundle(built: Built, tmp_path: Path) -> None:
    db = str(tmp_path / "record.sqlite3")
    assert run(built.program, "db", "upgrade", "--db", db).returncode == 0
    added = run(
        built.program,
        *("user", "add", "ada", "--full-name", "Ada Admin", "--role", "admin"),
        *("--password-stdin", "--db", db),
        stdin="knee-clinic-2026!\nknee-clinic-2026!\n",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added admin ada (Ada Admin)"
    # two worker processes: the frozen program must start them (multiprocessing spawn)
    verified = run(built.program, "audit", "verify", "--db", db, "--workers", "2")
    assert verified.returncode == 0, verified.stderr
    assert "VERIFIED" in verified.stdout
    out = tmp_path / "bundle.json"
    exported = run(
        built.program, "audit", "export", "--format", "fhir", "--out", str(out), "--db", db
    )
    assert exported.returncode == 0, exported.stderr
    fhir = json.loads(out.read_text())
    assert fhir["resourceType"] == "Bundle"
    assert {e["resource"]["resourceType"] for e in fhir["entry"]} == {"AuditEvent"}


@pytest.mark.postgres
@pytest.mark.req("INST-BUNDLE-1")
def test_the_bundled_libpq_reaches_the_clinic_server(built: Built, pg_url: str) -> None:
    env = {**os.environ, "PSYCOPG_IMPL": "binary"}  # psycopg's C build and its own libpq only
    result = subprocess.run(
        [str(built.program), "db", "upgrade", "--db", pg_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"schema {migrate.head_revision()}" in result.stdout and "postgresql" in result.stdout


# --------------------------------------------------------------------------- the simulators
@contextmanager
def simulator(program: Path, *args: str) -> Iterator[str]:
    """A bundled simulator serving until the block ends; yields its printed link."""
    process = subprocess.Popen(
        [str(program), "simulate", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"serving on (\S+)", banner)
        assert match, f"no banner: {banner!r} {process.stderr.read() if process.stderr else ''}"
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.req("INST-BUNDLE-3")
def test_the_bundled_simulators_and_service_commands(built: Built, tmp_path: Path) -> None:
    db = str(tmp_path / "record.sqlite3")
    admin_pw, service_pw = "knee-clinic-2026!", "service-visit-2026!"
    assert run(built.program, "db", "upgrade", "--db", db).returncode == 0
    for user, role, stdin, signed in (
        ("ada", "admin", f"{admin_pw}\n{admin_pw}\n", []),
        ("sam", "service", f"{admin_pw}\n{service_pw}\n{service_pw}\n", ["--as", "ada"]),
    ):
        added = run(
            built.program,
            *("user", "add", user, "--full-name", user.title(), "--role", role, *signed),
            *("--password-stdin", "--db", db),
            stdin=stdin,
        )
        assert added.returncode == 0, added.stderr
    service = ("--user", "sam", "--db", db)  # the service user signs in (CLI-DEV-4)

    def device(*args: str) -> subprocess.CompletedProcess:
        return run(built.program, "device", *args, *service, stdin=service_pw + "\n")

    with simulator(built.program, "epat", "--port", "0", "--speed", "20") as url:
        assert url.startswith("socket://127.0.0.1:")
        info = device("info", "--epat", url, "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["identity"]["model"] == "RPW-200"
        watch = device("watch", "--epat", url, "--count", "2", "--period", "0.05")
        assert watch.returncode == 0 and watch.stdout.count("IDLE") == 2
        selftest = device("selftest", "--epat", url)
        assert selftest.stdout.strip() == "Self-test passed."
        unsigned = run(built.program, "device", "info", "--epat", url, *service, stdin="x\n")
        assert unsigned.returncode == 3 and unsigned.stdout == ""
    with simulator(built.program, "epat", "--pty", "--speed", "20") as pty:
        assert pty.startswith("/dev/")
        info = device("info", "--epat", pty)
        assert info.returncode == 0 and "RPW-200" in info.stdout
    with simulator(built.program, "emtt", "--port", "0", "--speed", "20") as resource:
        assert resource.startswith("TCPIP0::127.0.0.1::")
        info = device("info", "--emtt", resource, "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["identity"]["model"] == "EMT-100"
    verified = run(built.program, "audit", "verify", "--db", db)
    assert verified.returncode == 0 and "VERIFIED" in verified.stdout


@pytest.mark.req("INST-BUNDLE-3")
def test_a_short_simulated_session_headless_in_the_bundle(
    built: Built, isolated_console: Path, tmp_path: Path
) -> None:
    """The record made by the installed code; the unit and the session run by the bundle."""
    from argon2 import PasswordHasher

    from console.services import ConsoleConfig, ConsoleServices
    from tests.console.session_helpers import CLEAN_ANSWERS, SHORT_DOSE_REASON

    password = "correct horse battery"
    services = ConsoleServices.open(
        ConsoleConfig.from_environment(create_schema=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    try:
        services.auth.add_user(None, "ada", "Ada Admin", "admin", password)
        admin = services.login("ada", password)
        services.auth.add_user(admin, "thera", "Theo Therapist", "therapist", password)
        therapist = services.login("thera", password)
        patient = services.create_patient(therapist, "KNEE-0001", date(1980, 5, 17))
        services.assign_programme(
            therapist, patient.patient_id, "knee-load-sharing", date(2026, 10, 1)
        )
    finally:
        services.close()
    screening = tmp_path / "screening.json"
    screening.write_text(json.dumps({"screening": CLEAN_ANSWERS}))
    speed = "10"
    with simulator(
        built.program, "epat", "--port", "0", "--speed", speed, "--applicator", "D20-S"
    ) as url:
        result = run(
            built.program,
            *("session", "run", "--user", "thera", "--patient", patient.patient_id),
            *("--protocol", "knee-pt-epat", "--screening", str(screening)),
            *("--epat", url, "--speed", speed, "--set", "pulses=300", "--date", "2026-11-24"),
            *("--override-reason", SHORT_DOSE_REASON, "--pain-before", "5", "--pain-after", "2"),
            stdin=password + "\n",
            timeout=300,
        )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["state"] == "signed" and record["delivered"] == 300, (record, result.stderr)
    assert record["signatures"][0]["meaning"] == "performed"
    assert "delivered 300 of 300" in result.stderr
    verified = run(built.program, "audit", "verify")
    assert verified.returncode == 0 and "VERIFIED" in verified.stdout, verified.stdout


@pytest.mark.req("INST-BUNDLE-1")
def test_demo_opens_its_window_like_the_installed_one(built: Built, tmp_path: Path) -> None:
    from tests.installer.installer_helpers import time_to_first_window

    env = {**os.environ, "THERAPY_CONSOLE_DATA_DIR": str(tmp_path / "d1")}
    bundled = time_to_first_window([str(built.program), "--demo", "--exit-after", "30"], env)
    env["THERAPY_CONSOLE_DATA_DIR"] = str(tmp_path / "d2")
    installed = time_to_first_window([str(INSTALLED), "--demo", "--exit-after", "30"], env)
    assert installed.first_window_s is not None, installed.output
    assert bundled.first_window_s is not None, bundled.output
    assert "therapist" in bundled.output and "admin" in bundled.output  # the demo's users


@pytest.mark.req("INST-FIRST-5")
def test_a_fresh_installation_opens_on_the_first_admin_screen(built: Built, tmp_path: Path) -> None:
    from tests.installer.installer_helpers import time_to_first_window

    data = tmp_path / "fresh"
    env = {**os.environ, "THERAPY_CONSOLE_DATA_DIR": str(data)}
    env.pop("THERAPY_CONSOLE_DB", None)
    started = time_to_first_window([str(built.program)], env)
    assert started.first_window_s is not None, started.output
    assert (data / "therapy-console.sqlite3").is_file()  # made before the first window
    assert (data / "audit-signing-key.pem").is_file()


# --------------------------------------------------------------------------- the tarball
@pytest.mark.req("INST-LINUX-1")
@pytest.mark.req("INST-LINUX-2")
@pytest.mark.req("INST-LINUX-3")
def test_the_tarball_installs_runs_and_uninstalls_in_a_prefix(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.archive) as archive:
        top = {name.split("/")[0] for name in archive.getnames()}
        assert top == {f"therapy-console-{built.info['version']}"}
        archive.extractall(tmp_path / "unpacked", filter="tar")
    unpacked = tmp_path / "unpacked" / top.pop()
    for name in ("install.sh", "uninstall.sh", "clinic-server/prepare.sh", "docs/installing.md"):
        assert (unpacked / name).is_file(), name
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    install = ["bash", str(unpacked / "install.sh"), "--prefix", str(prefix)]
    first = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    launcher = prefix / "usr" / "local" / "bin" / "therapy-console"
    assert run(launcher, "--version").stdout.strip() == f"therapy-console {built.info['version']}"
    before = tree_snapshot(prefix)
    second = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0 and tree_snapshot(prefix) == before
    db = tmp_path / "home" / "therapy-console.sqlite3"
    assert run(launcher, "db", "upgrade", "--db", str(db)).returncode == 0
    removed = subprocess.run(
        ["bash", str(prefix / "opt" / "therapy-console" / "uninstall.sh"), "--prefix", str(prefix)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert not (prefix / "opt" / "therapy-console").exists() and not launcher.is_symlink()
    assert db.is_file()
