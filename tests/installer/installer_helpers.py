"""Helpers shared by the installer's tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PG_HOST = "127.0.0.1:5432"
PG_USERS = ("postgres", "root")


def admin_dsn(user: str, database: str = "postgres") -> str:
    return f"postgresql://{user}@{PG_HOST}/{database}"


def pg_superuser() -> str:
    """The superuser this machine's PostgreSQL trusts on 127.0.0.1 (fails clearly if none)."""
    errors = []
    for user in PG_USERS:
        try:
            psycopg.connect(admin_dsn(user), connect_timeout=5).close()
            return user
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    pytest.fail(
        f"PostgreSQL is not reachable on {PG_HOST} ({'; '.join(errors)}). Start it "
        "(`.ci/run` does: pg_ctlcluster <version> main start) and run the tests again.",
        pytrace=False,
    )


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every file, folder and link under ``root`` with its content hash, mode and link target:
    equal snapshots mean nothing under ``root`` was created, removed or changed."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            if path.is_symlink():
                found[rel] = f"link->{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = f"dir {info.st_mode:o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = f"file {info.st_mode:o} {info.st_mtime_ns} {digest}"
    return found


# --------------------------------------------------------------------------- first window
#: Qt's own log line when a top-level window's first frame is flushed to it (offscreen too)
FIRST_FRAME = "qt.widgets.painting: Flushing"
QT_PAINT_LOG = "qt.widgets.painting=true"


@dataclass(frozen=True)
class StartOutcome:
    """How a GUI start went: seconds to the first painted window (None: no window), the exit
    code if the program ended by itself (None: it was stopped after the window), its output."""

    first_window_s: float | None
    exit_code: int | None
    output: str


def time_to_first_window(
    command: list[str], env: dict[str, str], timeout: float = 60.0
) -> StartOutcome:
    """Start ``command`` offscreen and time it to its first painted window, observed through
    Qt's painting log (no hook in the program), then stop it."""
    env = {**env, "QT_QPA_PLATFORM": "offscreen", "QT_LOGGING_RULES": QT_PAINT_LOG}
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    lines: list[str] = []
    found: list[float] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not found and line.startswith(FIRST_FRAME):
                found.append(time.perf_counter() - started)
                done.set()
            if not line.startswith("qt.widgets.painting"):
                lines.append(line)
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done.wait(timeout)
    exit_code: int | None = None
    if not found:  # its output ended (it is exiting by itself) or the time ran out
        try:
            exit_code = process.wait(10)
        except subprocess.TimeoutExpired:
            exit_code = None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    reader.join(10)
    return StartOutcome(found[0] if found else None, exit_code, "".join(lines))
