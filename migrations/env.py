"""Alembic environment: the same settings as the service; PyMySQL (or sqlite3) underneath."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text
from sqlmodel import SQLModel

import migrations.online  # noqa: F401  (re-runnable, online DDL for the MySQL family)
import service.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from migrations import testhooks
from service.core.config import get_settings
from service.core.db import sync_url

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    is_sqlite = (connection.dialect.name if connection is not None else (url or "")).startswith(
        "sqlite"
    )
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        render_as_batch=is_sqlite,
        literal_binds=connection is None,
    )


def _prepare(connection: Connection) -> None:
    if connection.dialect.name in {"mysql", "mariadb"}:
        # A DDL statement waits this long for its metadata lock (a long transaction holds it),
        # then fails; meanwhile every query on the table queues behind it, so keep it short.
        seconds = get_settings().migration_lock_wait_timeout_seconds
        connection.execute(text(f"SET SESSION lock_wait_timeout = {int(seconds)}"))
        # End the transaction the SET began, so Alembic's own transaction commits the stamp.
        connection.commit()
    testhooks.install(connection)


def run_offline() -> None:
    _configure(url=sync_url(get_settings()).render_as_string(hide_password=False))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # `items-service migrate` passes its own connection, the one holding the advisory lock.
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _prepare(given)
        _configure(connection=given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(sync_url(get_settings()), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _prepare(connection)
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
