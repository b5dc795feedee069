"""Schema migrations run from code: ``upgrade`` creates or migrates SQLite and PostgreSQL alike.

Alembic is driven programmatically with the store's own connection (so the SQLite pragmas
apply), never through a repository-root ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from audit.errors import SchemaNotCurrent
from audit.keys import CheckpointSigner
from audit.store import RecordStore, describe, open_store

_HERE = Path(__file__).resolve().parent


def _config(connection: Connection | None = None) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has no head revision"
    return head


def current_revision(store: RecordStore) -> str | None:
    with store.connection() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(
    store_or_url: RecordStore | str,
    revision: str = "head",
    *,
    signer: CheckpointSigner | None = None,
    workstation: str | None = None,
) -> str:
    """Create or migrate the schema to ``revision``; returns the revision now current.

    ``signer``/``workstation``: this installation's, for migrations that append audit events
    (0004 signs a checkpoint after the events it appends when it has the signer)."""
    store = (
        store_or_url
        if isinstance(store_or_url, RecordStore)
        else open_store(store_or_url, create=True, check_schema=False)
    )
    try:
        with store.engine.begin() as conn:
            config = _config(conn)
            config.attributes["signer"] = signer
            config.attributes["workstation"] = workstation
            command.upgrade(config, revision)
        now = current_revision(store)
        assert now is not None
        return now
    finally:
        if store is not store_or_url:
            store.dispose()


def is_known_revision(revision: str) -> bool:
    """Whether this version of the code has the migration ``revision`` (a newer console's
    database has revisions this one does not know)."""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def require_current_schema(store: RecordStore) -> None:
    current, head = current_revision(store), head_revision()
    if current == head:
        return
    where = describe(store.url)
    if current is not None and not is_known_revision(current):
        raise SchemaNotCurrent(
            f"the database {where} has schema {current}, made by a newer version of the console "
            f"than this one (latest known {head}); use that version, do not downgrade the record"
        )
    state = "has no schema" if current is None else f"is at schema {current}, not {head}"
    raise SchemaNotCurrent(
        f"the database {where} {state}; run `therapy-console db upgrade` (with the same --db) first"
    )
