"""First run and start-up of an installation: make the database ready before any screen opens.

- No database yet (SQLite): create it at this program's schema, create this console's checkpoint
  signing key and register it in the trail; the caller then asks for the first admin account
  (``FirstRunReport.needs_first_admin``).
- A database at an older schema (SQLite): make a consistent backup next to it first (SQLite's
  online backup API, checked with ``PRAGMA integrity_check``), then migrate it forward in one
  transaction.
- A database whose schema this program does not know (written by a newer version): refuse with a
  clear message before anything is opened for writing, so nothing is touched, not even the key.
- PostgreSQL (the clinic server): a console never creates the shared schema, and migrates it only
  when the caller confirms that the server was backed up (``pg_dump`` is the server's job) and the
  URL's role may change the schema; the normal path is the service engineer's
  ``therapy-console db upgrade`` with the owner role (``docs/clinic-server.md``).

Plain Python (no Qt) so the GUI's start path, the command line and the tests share it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

import audit.migrate as migrate
from audit.errors import AuditError
from audit.keys import load_or_create_signer
from audit.store import describe, normalise_url, open_store
from audit.trail import AuditTrail
from audit.users import UserDirectory
from console import __version__, paths


class FirstRunError(Exception):
    """The database cannot be made ready; the message says why and what to do."""


class DatabaseTooNew(FirstRunError):
    """The database was written by a newer version of the program (nothing was touched)."""


class ServerNotReady(FirstRunError):
    """The clinic server's database has no schema, or an older one, and this console will not
    change it on its own (nothing was touched)."""


class ServerMigrationNeeded(ServerNotReady):
    """The clinic server's database is at an older schema: the caller may ask the user to
    confirm that it was backed up, then call again with ``server_backup_confirmed``."""


class NotAConsoleDatabase(FirstRunError):
    """The file is a SQLite database but not one of this program's (nothing was touched)."""


class BackupFailed(FirstRunError):
    """The backup before a migration could not be made or checked (nothing was migrated)."""


class DatabaseState(Enum):
    MISSING = "missing"  # no file (SQLite) or no schema (an empty file, an empty server database)
    OLDER = "older"  # a schema of this program's history, before its head
    CURRENT = "current"
    NEWER = "newer"  # a schema revision this program does not know
    FOREIGN = "foreign"  # SQLite file with tables but no schema version: not ours


@dataclass(frozen=True, slots=True)
class Inspection:
    """What is at the database URL, found without writing anything."""

    database: str  # the URL for messages, password hidden
    is_sqlite: bool
    state: DatabaseState
    revision: str | None
    head: str


@dataclass(frozen=True, slots=True)
class FirstRunReport:
    """What ``prepare_database`` did."""

    database: str
    action: str  # "created" | "migrated" | "current"
    from_revision: str | None
    revision: str
    backup: Path | None
    key_id: str
    key_created: bool
    needs_first_admin: bool

    def lines(self) -> list[str]:
        """The report in words, for a start-up notice or the command line."""
        said = {
            "created": f"Created a new database at {self.database} (schema {self.revision}).",
            "migrated": (
                f"Migrated the database {self.database} from schema {self.from_revision} to "
                f"{self.revision}."
            ),
            "current": f"The database {self.database} is at schema {self.revision}.",
        }
        lines = [said[self.action]]
        if self.backup is not None:
            lines.append(f"A backup of the database as it was is at {self.backup}.")
        if self.key_created:
            lines.append(f"Created this console's audit signing key (key id {self.key_id}).")
        if self.needs_first_admin:
            lines.append("The database has no users yet: create the first admin account.")
        return lines


# --------------------------------------------------------------------------- inspection
def known_revisions() -> frozenset[str]:
    """Every schema revision of this program's migration history."""
    script = ScriptDirectory.from_config(migrate._config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def inspect_database(url_or_path: str) -> Inspection:
    """Find the state of the database without changing it (SQLite: opened read-only)."""
    url = normalise_url(url_or_path)
    head = migrate.head_revision()
    shown = describe(url)
    if url.get_backend_name() == "sqlite":
        return _inspect_sqlite(url, shown, head)
    try:
        store = open_store(url.render_as_string(hide_password=False), check_schema=False)
    except AuditError as exc:
        raise FirstRunError(str(exc)) from exc
    try:
        revision = migrate.current_revision(store)
        with store.connection() as conn:
            tables = conn.exec_driver_sql(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name <> 'alembic_version'"
            ).scalar_one()
    finally:
        store.dispose()
    if revision is None and tables:
        return Inspection(shown, False, DatabaseState.FOREIGN, None, head)
    return Inspection(shown, False, _classify(revision, head), revision, head)


def _inspect_sqlite(url: URL, shown: str, head: str) -> Inspection:
    path = Path(url.database or "")
    if not path.exists():
        return Inspection(shown, True, DatabaseState.MISSING, None, head)
    try:
        with contextlib.closing(_read_only(path)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            revision = None
            if "alembic_version" in tables:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                revision = row[0] if row else None
    except sqlite3.DatabaseError as exc:
        raise FirstRunError(
            f"{path} is not a readable SQLite database ({exc}); restore it from a backup or "
            "point the console at the right file"
        ) from exc
    if revision is None and tables - {"alembic_version"}:
        return Inspection(shown, True, DatabaseState.FOREIGN, None, head)
    return Inspection(shown, True, _classify(revision, head), revision, head)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. Without a ``-wal`` file the database is fully
    checkpointed, so it is opened ``immutable`` (no ``-shm``/``-wal`` files are made either)."""
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)


def _classify(revision: str | None, head: str) -> DatabaseState:
    if revision is None:
        return DatabaseState.MISSING
    if revision == head:
        return DatabaseState.CURRENT
    if revision in known_revisions():
        return DatabaseState.OLDER
    return DatabaseState.NEWER


# --------------------------------------------------------------------------- preparation
def prepare_database(
    url_or_path: str | None = None,
    *,
    key_path: Path | None = None,
    witness_path: Path | None = None,
    workstation: str | None = None,
    server_backup_confirmed: bool = False,
    now: dt.datetime | None = None,
) -> FirstRunReport:
    """Make the database ready for this program: create, back up and migrate, or refuse.

    Defaults come from ``console.paths`` (``--db``/``THERAPY_CONSOLE_DB``, the data folder).
    ``server_backup_confirmed``: the user confirmed that the clinic server's database was backed
    up and may be migrated with this URL's role (PostgreSQL at an older schema only).
    """
    url = paths.resolve_db_url(url_or_path)
    found = inspect_database(url)
    _refuse_if_unusable(found, server_backup_confirmed)
    backup: Path | None = None
    if found.state is DatabaseState.OLDER and found.is_sqlite:
        backup = backup_sqlite(_sqlite_path(url), found.revision or "none", now=now)
    key_path = key_path or paths.signing_key_path()
    workstation = workstation or paths.workstation_id()
    if found.state is not DatabaseState.CURRENT:
        try:
            # a migration that appends audit events (0004) signs them with this console's key
            signer = load_or_create_signer(key_path)[0] if key_path.exists() else None
            revision = migrate.upgrade(url, signer=signer, workstation=workstation)
        except Exception as exc:  # whatever a migration raises, say where the backup is
            kept = f"; the backup made before is at {backup}" if backup else ""
            raise FirstRunError(f"the migration of {found.database} failed: {exc}{kept}") from exc
    else:
        revision = found.head
    key_id, key_created, users = _register_signing_key(
        url, key_path, witness_path or paths.witness_path(), workstation
    )
    action = {DatabaseState.MISSING: "created", DatabaseState.OLDER: "migrated"}.get(
        found.state, "current"
    )
    return FirstRunReport(
        database=found.database,
        action=action,
        from_revision=found.revision,
        revision=revision,
        backup=backup,
        key_id=key_id,
        key_created=key_created,
        needs_first_admin=users == 0,
    )


def _refuse_if_unusable(found: Inspection, server_backup_confirmed: bool) -> None:
    untouched = "Nothing was changed."
    if found.state is DatabaseState.NEWER:
        raise DatabaseTooNew(
            f"The database {found.database} is at schema {found.revision}, which this program "
            f"(therapy-console {__version__}, schema up to {found.head}) does not know: it was "
            "written by a newer version. Install that version (or a newer one) on this PC, or "
            f"point the console at the right database. {untouched}"
        )
    if found.state is DatabaseState.FOREIGN:
        raise NotAConsoleDatabase(
            f"{found.database} is not one of therapy-console's databases (it has tables but no "
            f"schema version). Point the console at the right database. {untouched}"
        )
    if found.is_sqlite:
        return
    if found.state is DatabaseState.MISSING:
        raise ServerNotReady(
            f"The clinic server's database {found.database} has no tables yet. The service "
            "engineer prepares it once with installer/clinic-server/prepare.sh "
            f"(docs/clinic-server.md); a console does not create the shared schema. {untouched}"
        )
    if found.state is DatabaseState.OLDER and not server_backup_confirmed:
        raise ServerMigrationNeeded(
            f"The clinic server's database {found.database} is at schema {found.revision}; this "
            f"program needs {found.head}. Migrating changes it for every treatment room: the "
            "service engineer backs it up (pg_dump -Fc), stops the other consoles and runs "
            "`therapy-console db upgrade --db <owner URL>`, then the grants script "
            f"(docs/clinic-server.md). {untouched}"
        )


def _sqlite_path(url: str) -> Path:
    return Path(normalise_url(url).database or "")


def _register_signing_key(
    url: str, key_path: Path, witness_path: Path, workstation: str
) -> tuple[str, bool, int]:
    """Create this console's key if it has none and make sure the trail knows it."""
    try:
        signer, created = load_or_create_signer(key_path)
        store = open_store(url)
    except AuditError as exc:
        raise FirstRunError(str(exc)) from exc
    try:
        trail = AuditTrail(store, signer, workstation, witness_path=witness_path)
        trail.register_signer(created)
        users = UserDirectory(trail).count()
    except AuditError as exc:
        raise FirstRunError(str(exc)) from exc
    finally:
        store.dispose()
    return signer.key_id, created, users


# --------------------------------------------------------------------------- SQLite backup
def backup_path_for(database: Path, revision: str, now: dt.datetime | None = None) -> Path:
    """``NAME.backup-<schema>-<UTC time>.sqlite3`` next to the database."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return database.with_name(f"{database.stem}.backup-{revision}-{stamp}{database.suffix}")


def backup_sqlite(database: Path, revision: str, *, now: dt.datetime | None = None) -> Path:
    """A consistent copy of ``database`` next to it, readable by its owner only, checked.

    The online backup API copies a transaction-consistent snapshot even while another
    connection has the database open (a raw file copy could catch a half-written page or miss
    what is still in the ``-wal`` file)."""
    target = backup_path_for(database, revision, now)
    if target.exists():
        raise BackupFailed(f"a backup {target} already exists; nothing was migrated")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with (
            contextlib.closing(
                sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
            ) as source,
            contextlib.closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            integrity = copy.execute("PRAGMA integrity_check").fetchone()[0]
            copied = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        raise BackupFailed(
            f"could not back up {database} to {target} ({exc}); nothing was migrated. Check the "
            "free space and the folder's permissions."
        ) from exc
    if integrity != "ok" or copied is None or copied[0] != revision:
        raise BackupFailed(
            f"the backup {target} did not check out (integrity: {integrity}, schema: "
            f"{copied[0] if copied else 'none'}); nothing was migrated. Keep it for the service "
            "engineer."
        )
    return target
