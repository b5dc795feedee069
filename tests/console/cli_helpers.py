"""Running the real ``therapy-console`` program as a subprocess against a test installation.

The CLI tests judge what a user sees: exit code, standard error (one line per error, never a
traceback) and the SQLite record the process left behind.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from console.services import ConsoleServices


def cli_environment(services: ConsoleServices, tmp_path: Path) -> dict[str, str]:
    """The environment a console process on ``services``' installation runs with."""
    env = dict(os.environ)
    env.update(
        {
            "THERAPY_CONSOLE_DB": services.config.db_url,
            "THERAPY_CONSOLE_SIGNING_KEY": str(services.config.signing_key_path),
            "THERAPY_CONSOLE_WORKSTATION": services.config.workstation,
            "THERAPY_CONSOLE_DATA_DIR": str(tmp_path / "data"),
            "THERAPY_CONSOLE_LOG_DIR": str(tmp_path / "logs"),
        }
    )
    return env


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one error line: the last line of stderr, and the only one saying "error"."""
        lines = self.err.strip().splitlines()
        assert "Traceback" not in self.err, self.err
        errors = [line for line in lines if line.startswith("therapy-console: error:")]
        assert errors == lines[-1:], self.err
        return errors[0]


def run_cli(env: dict[str, str], *args: str, stdin: str = "", timeout: float = 120) -> Ran:
    result = subprocess.run(
        [sys.executable, "-m", "console", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return Ran(result.returncode, result.stdout, result.stderr)


def sessions_by_state(db_url: str) -> dict[str, int]:
    """Count the sessions in the SQLite record by state (read with plain sqlite3)."""
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT state, count(*) FROM treatment_sessions GROUP BY state")
        return dict(rows.fetchall())


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def junk_unit() -> Iterator[str]:
    """A TCP "unit" that answers everything with bytes no ICD defines; yields its socket URL."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            while not stop.is_set():
                try:
                    if not conn.recv(1024):
                        return
                    conn.sendall(b"\x55garbage\xaa\x00junk\r\n" * 3)
                except TimeoutError:
                    continue
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        server.close()
