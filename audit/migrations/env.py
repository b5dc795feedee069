"""Alembic environment: migrations always run on a connection handed over by audit.migrate."""

from __future__ import annotations

from alembic import context

from audit.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `therapy-console db upgrade` (audit.migrate.upgrade), "
        "not the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
