"""Opening the record store: one engine per database, SQLite or PostgreSQL, set up for safety.

SQLite: WAL journal, ``synchronous=FULL`` (a commit survives power loss), foreign keys on, a
30 s busy timeout, and every write transaction starts with ``BEGIN IMMEDIATE`` so two writers
never deadlock on a lock upgrade. PostgreSQL: every write transaction first takes one
transaction-scoped advisory lock, so writers are serialised (the trail has one writer at a time
across all consoles sharing the server); readers are never blocked.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from audit.errors import StoreError

#: the advisory-lock key of the (single) audit chain on PostgreSQL: "tcaudit1" as a bigint
CHAIN_LOCK_KEY = int.from_bytes(b"tcaudit1", "big") & 0x7FFF_FFFF_FFFF_FFFF
SQLITE_BUSY_TIMEOUT_S = 30.0
AFTER_COMMIT = "audit_after_commit"


def normalise_url(url_or_path: str) -> URL:
    """A SQLAlchemy URL from what a user typed: a URL, or a plain path to a SQLite file."""
    raw = url_or_path.strip()
    if not raw:
        raise StoreError("the database URL is empty; give --db sqlite:///PATH or postgresql://…")
    if "://" not in raw:
        return URL.create("sqlite", database=str(Path(raw).expanduser().resolve()))
    try:
        url = make_url(raw)
    except ArgumentError:
        raise StoreError(
            f"{raw!r} is not a database URL; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DBNAME"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise StoreError(
            f"database kind {url.drivername!r} is not supported; use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DBNAME"
        )
    return url


def describe(url: URL) -> str:
    """The URL for messages and logs, password hidden."""
    return url.render_as_string(hide_password=True)


class RecordStore:
    """An open database. Use ``write()`` for a transaction that changes anything (serialised
    with every other writer) and ``read()`` for queries; both yield an ORM session that never
    leaves ``audit/``."""

    def __init__(self, engine: Engine, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        self.engine = engine
        self.url = engine.url
        self.busy_timeout_s = busy_timeout_s  # SQLite: how long a writer waits for a lock
        self.dialect = engine.dialect.name
        self._writer = sessionmaker(
            bind=engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._append_local = threading.local()
        self._writing = threading.local()
        self._append_lock = threading.Lock()
        self._append_conns: list[Any] = []

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def __repr__(self) -> str:
        return f"RecordStore({describe(self.url)})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on an exception.

        Callbacks registered with ``after_commit`` run once the commit has succeeded."""
        with self._one_writer(), self._translate_errors(), self._writer() as session:
            with session.begin():
                if self.is_postgres:
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
                yield session
            for callback in session.info.pop(AFTER_COMMIT, []):
                callback()

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        """Refuse a write transaction opened inside another in the same thread: the inner one
        would wait for the outer one's lock for ever (use ``append_in`` with the outer one)."""
        if getattr(self._writing, "active", False):
            raise StoreError(
                "a write transaction is already open in this thread; append inside it "
                "(AuditTrail.append_in) instead of opening a second one"
            )
        self._writing.active = True
        try:
            yield
        finally:
            self._writing.active = False

    @contextmanager
    def raw_write(self) -> Iterator[Any]:
        """A write transaction on a bare DB-API cursor: the audit trail's fast append path.

        Same serialisation as ``write()``; committed when the block ends. Yields
        ``(cursor, after_commit)``: callbacks appended to the list run after the commit."""
        with self._one_writer():
            with self._raw_transaction() as (cursor, callbacks):
                yield cursor, callbacks
            for callback in callbacks:
                callback()

    @contextmanager
    def _raw_transaction(self) -> Iterator[Any]:
        dbapi_errors = self.engine.dialect.loaded_dbapi.Error
        raw = self._checkout_for_append()
        callbacks: list[Callable[[], None]] = []
        try:
            cursor = raw.cursor()
            try:
                if self.is_postgres:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
                else:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor, callbacks
                raw.commit()
            except BaseException as exc:
                self._discard_after_error(raw)
                if isinstance(exc, dbapi_errors) and not isinstance(
                    exc, self.engine.dialect.loaded_dbapi.IntegrityError
                ):
                    raise StoreError(_explain(self.url, exc, self.busy_timeout_s)) from exc
                raise
            finally:
                cursor.close()
        finally:
            self._checkin_after_append(raw)

    def _checkout_for_append(self) -> Any:
        """SQLite: this thread's own connection, kept open (a pool round trip per append costs
        a tenth of a durable commit). PostgreSQL: a pooled, pre-pinged connection."""
        if self.is_postgres:
            try:
                return self.engine.raw_connection()
            except OperationalError as exc:
                raise StoreError(_explain(self.url, exc, self.busy_timeout_s)) from exc
        local = self._append_local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            try:
                conn = self.engine.raw_connection()
            except OperationalError as exc:
                raise StoreError(_explain(self.url, exc, self.busy_timeout_s)) from exc
            local.conn, local.pid = conn, os.getpid()
            with self._append_lock:
                self._append_conns.append(conn)
        return conn

    def _checkin_after_append(self, raw: Any) -> None:
        if self.is_postgres:
            raw.close()

    def _discard_after_error(self, raw: Any) -> None:
        with contextlib.suppress(Exception):
            raw.rollback()
        if not self.is_postgres:
            self._append_local.conn = None
            with self._append_lock:
                if raw in self._append_conns:
                    self._append_conns.remove(raw)
            with contextlib.suppress(Exception):
                raw.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._translate_errors(), self._reader() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A plain connection (for streaming reads such as verification)."""
        with self._translate_errors(), self.engine.connect() as conn:
            yield conn

    @staticmethod
    def after_commit(session: Session, callback: Callable[[], None]) -> None:
        session.info.setdefault(AFTER_COMMIT, []).append(callback)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreError(_explain(self.url, exc, self.busy_timeout_s)) from exc

    def dispose(self) -> None:
        with self._append_lock:
            conns, self._append_conns = self._append_conns, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._append_local = threading.local()
        self.engine.dispose()


def _explain(
    url: URL, exc: DBAPIError | sqlite3.Error, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S
) -> str:
    detail = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    where = describe(url)
    if url.get_backend_name() == "sqlite":
        if "not a database" in first or "malformed" in first:
            return (
                f"{url.database} is not a readable SQLite database ({first}); restore it from a "
                "backup or point --db at the right file"
            )
        if "locked" in first:
            return f"{where} stayed locked by another writer for {busy_timeout_s:g} s"
        return f"cannot use the SQLite database {url.database}: {first}"
    return (
        f"cannot use the database {where}: {first}; check that the server is running and the URL "
        "(--db or THERAPY_CONSOLE_DB) is right"
    )


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    engine = create_engine(
        url.set(drivername="sqlite"),
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module; SQLAlchemy's "begin" hook below
        # issues BEGIN itself (IMMEDIATE for writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgres_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def open_store(
    url_or_path: str,
    *,
    create: bool = False,
    check_schema: bool = True,
    busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
) -> RecordStore:
    """Open the database at ``url_or_path``.

    ``create``: make a missing SQLite file (and its folder); otherwise a missing file is an
    error (a typo must not silently start an empty record). ``check_schema``: refuse a database
    whose schema is not the current one (run ``therapy-console db upgrade``).
    ``busy_timeout_s``: SQLite only, how long a write waits for another writer's lock before
    it fails (30 s; tests of a locked database shorten it).
    """
    if not busy_timeout_s > 0:
        raise StoreError(f"the busy timeout must be above 0 s, got {busy_timeout_s!r}")
    url = normalise_url(url_or_path)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreError("use a SQLite file path (sqlite:///PATH); in-memory is not durable")
        path = Path(database)
        if not path.exists():
            if not create:
                raise StoreError(
                    f"there is no database at {path}; run `therapy-console db upgrade` to create "
                    "it, or point --db at the right file"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = _sqlite_engine(url, busy_timeout_s)
    else:
        engine = _postgres_engine(url)
    store = RecordStore(engine, busy_timeout_s=busy_timeout_s)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master"
                if store.dialect == "sqlite"
                else "SELECT count(*) FROM pg_catalog.pg_tables"
            )
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(_explain(url, exc, busy_timeout_s)) from exc
    if check_schema:
        from audit.migrate import require_current_schema

        try:
            require_current_schema(store)
        except BaseException:
            engine.dispose()
            raise
    return store
