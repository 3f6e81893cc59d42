"""Database URLs and engines.

One configured URL, two uses: the request path runs on an asyncio driver (asyncmy by default,
aiomysql — PyMySQL underneath — on request), migrations and tooling run on PyMySQL. Reads use
an autocommit pool so a GET costs one round trip, not BEGIN/SELECT/ROLLBACK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from service.core.config import Settings

# A pooled connection unused for longer than this is pinged before it is handed out.
PING_IF_IDLE_SECONDS = 1.0
# SQLite: one file, one writer; ITEMS_DB_POOL_SIZE / ITEMS_DB_MAX_OVERFLOW do not apply.
SQLITE_POOL_SIZE = 4
_LAST_USED = "items_last_used"


def is_embedded(settings: Settings) -> bool:
    return settings.resolved_database_url() is None


def _server_url(settings: Settings) -> URL | None:
    url = settings.resolved_database_url()
    if url is None or url.get_backend_name() == "sqlite":
        return url
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    return url.set(query=query)


def sync_url(settings: Settings) -> URL:
    """URL for Alembic and other blocking tools (PyMySQL or sqlite3)."""
    url = _server_url(settings)
    if url is None:
        return make_url(f"sqlite:///{settings.sqlite_path}")
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite")
    return url.set(drivername="mysql+pymysql")


def async_url(settings: Settings) -> URL:
    """URL for the request path."""
    url = _server_url(settings)
    if url is None:
        return make_url(f"sqlite+aiosqlite:///{settings.sqlite_path}")
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername=f"mysql+{settings.db_async_driver}")


@dataclass(frozen=True)
class Engines:
    """The two pools of one process: autocommit reads and transactional writes."""

    read: AsyncEngine
    write: AsyncEngine
    capacity: int  # pool size plus overflow, of each pool

    async def dispose(self) -> None:
        await self.read.dispose()
        await self.write.dispose()


def _enable_sqlite_foreign_keys_and_wal(dbapi_connection: object, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets readers proceed during a write; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def ping_idle_connections(engine: AsyncEngine, idle_seconds: float = PING_IF_IDLE_SECONDS) -> None:
    """Test a pooled connection on checkout only when it sat idle for ``idle_seconds``.

    ``pool_pre_ping`` pays a round trip on every checkout: about a tenth of a worker's CPU on
    GET by id, and as much again in MariaDB. Under load connections come back within
    milliseconds and are used as they are; after a quiet spell (when a database restart goes
    unnoticed) they are pinged first. A failed ping invalidates every pooled connection, like
    pre-ping does, and the checkout is retried on a new one. A connection that dies while in
    busy use fails its statement instead: SQLAlchemy then invalidates the pool, the request
    gets a 503 and the reads retry once (``read_retrying`` in service.crud).
    """
    dialect = engine.dialect

    def on_checkin(_: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        last_used = record.info.get(_LAST_USED)
        if last_used is None or time.monotonic() - last_used <= idle_seconds:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError(f"ping failed: {type(error).__name__}") from error

    event.listen(engine.sync_engine.pool, "checkin", on_checkin)
    event.listen(engine.sync_engine.pool, "checkout", on_checkout)


def create_engines(settings: Settings) -> Engines:
    url = async_url(settings)
    if url.get_backend_name() == "sqlite":
        # One file, one writer: a small pool avoids pointless lock contention.
        common: dict[str, object] = {
            "pool_pre_ping": True,
            "pool_size": SQLITE_POOL_SIZE,
            "max_overflow": SQLITE_POOL_SIZE,
        }
        read = create_async_engine(url, isolation_level="AUTOCOMMIT", **common)
        write = create_async_engine(url, **common)
        for engine in (read, write):
            event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys_and_wal)
        return Engines(read=read, write=write, capacity=2 * SQLITE_POOL_SIZE)

    # asyncmy takes whole seconds; aiomysql takes a float.
    timeout: float = settings.db_connect_timeout_seconds
    if settings.db_async_driver == "asyncmy":
        timeout = int(max(1, timeout))
    connect_args: dict[str, object] = {"connect_timeout": timeout}
    pool: dict[str, object] = {
        # No pre-ping on every checkout: ping_idle_connections tests only idle connections.
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
        "pool_recycle": settings.db_pool_recycle_seconds,
        "echo": settings.log_sql,
        "hide_parameters": True,  # item data stays out of logs and error messages
        "connect_args": connect_args,
    }
    read = create_async_engine(
        url, isolation_level="AUTOCOMMIT", skip_autocommit_rollback=True, **pool
    )
    write = create_async_engine(url, isolation_level="READ COMMITTED", **pool)
    for engine in (read, write):
        ping_idle_connections(engine)
    return Engines(
        read=read, write=write, capacity=settings.db_pool_size + settings.db_max_overflow
    )
