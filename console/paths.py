"""Where this installation keeps its things: data and log folders, the database URL, the
checkpoint key, the workstation id.

Every location can be overridden by an environment variable (tests, kiosk set-ups, a clinic
server): ``THERAPY_CONSOLE_DATA_DIR``, ``THERAPY_CONSOLE_LOG_DIR``, ``THERAPY_CONSOLE_DB`` (a
database URL), ``THERAPY_CONSOLE_SIGNING_KEY`` (the private key file),
``THERAPY_CONSOLE_WORKSTATION`` (this console's id). Without them the per-user folders of the
operating system are used (platformdirs).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

import platformdirs

APP_NAME = "therapy-console"
ENV_DB = "THERAPY_CONSOLE_DB"
ENV_DATA_DIR = "THERAPY_CONSOLE_DATA_DIR"
ENV_LOG_DIR = "THERAPY_CONSOLE_LOG_DIR"
ENV_SIGNING_KEY = "THERAPY_CONSOLE_SIGNING_KEY"
ENV_WORKSTATION = "THERAPY_CONSOLE_WORKSTATION"
DB_FILE_NAME = "therapy-console.sqlite3"
_WORKSTATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def data_dir() -> Path:
    """The user's data folder for the console (database, key, workstation id)."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    override = os.environ.get(ENV_LOG_DIR)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_log_path(APP_NAME, appauthor=False)


def default_db_url() -> str:
    return f"sqlite:///{data_dir() / DB_FILE_NAME}"


def resolve_db_url(cli_value: str | None = None) -> str:
    """The database to use: ``--db`` if given, else ``THERAPY_CONSOLE_DB``, else the SQLite
    file in the data folder."""
    for candidate in (cli_value, os.environ.get(ENV_DB)):
        if candidate and candidate.strip():
            return candidate.strip()
    return default_db_url()


def signing_key_path() -> Path:
    override = os.environ.get(ENV_SIGNING_KEY)
    if override:
        return Path(override).expanduser()
    return data_dir() / "audit-signing-key.pem"


def witness_path() -> Path:
    """Where the checkpoints this console signed are remembered, outside the database."""
    return data_dir() / "audit-witness.json"


def workstation_id() -> str:
    """This installation's id, stamped on every audit event: from the environment, or made
    once (host name + random suffix) and kept in the data folder."""
    override = os.environ.get(ENV_WORKSTATION)
    if override:
        if not _WORKSTATION.fullmatch(override):
            raise ValueError(
                f"{ENV_WORKSTATION}={override!r} must be letters, digits or . _ : @ - (at most 128)"
            )
        return override
    path = data_dir() / "workstation-id"
    try:
        stored = path.read_text(encoding="ascii").strip()
        if _WORKSTATION.fullmatch(stored):
            return stored
    except (OSError, UnicodeDecodeError):
        pass
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:100].strip("-.") or "console"
    made = f"{host}-{secrets.token_hex(3)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".workstation-id.{os.getpid()}")
    tmp.write_text(made + "\n", encoding="ascii")
    try:
        os.link(tmp, path)  # first writer wins; a concurrent start reads the winner's id
    except FileExistsError:
        made = path.read_text(encoding="ascii").strip()
    finally:
        tmp.unlink()
    return made
