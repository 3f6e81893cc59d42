"""Database URLs and engines.

One configured URL, two uses: the request path runs on an asyncio driver (asyncmy by default,
aiomysql — PyMySQL underneath — on request), migrations and tooling run on PyMySQL. Reads use
an autocommit pool so a GET costs one round trip, not BEGIN/SELECT/ROLLBACK.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from service.core.config import Settings


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


def create_engines(settings: Settings) -> Engines:
    url = async_url(settings)
    if url.get_backend_name() == "sqlite":
        # One file, one writer: a small pool avoids pointless lock contention.
        common: dict[str, object] = {"pool_pre_ping": True, "pool_size": 4, "max_overflow": 4}
        read = create_async_engine(url, isolation_level="AUTOCOMMIT", **common)
        write = create_async_engine(url, **common)
        for engine in (read, write):
            event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys_and_wal)
        return Engines(read=read, write=write)

    # asyncmy takes whole seconds; aiomysql takes a float.
    timeout: float = settings.db_connect_timeout_seconds
    if settings.db_async_driver == "asyncmy":
        timeout = int(max(1, timeout))
    connect_args: dict[str, object] = {"connect_timeout": timeout}
    pool: dict[str, object] = {
        # A database restart must not surface as errors: test each connection on checkout.
        "pool_pre_ping": True,
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
    return Engines(read=read, write=write)
