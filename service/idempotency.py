"""Idempotency-Key on POST, after the IETF draft (draft-ietf-httpapi-idempotency-key-header).

- A key belongs to its caller: stored as sha256(caller id, key), so one client's key never
  replays another's item (the caller id comes from the bearer token; without auth it is "").
- A key is claimed (a pending record, committed) before the item is created; a retry while
  the first request is in flight gets 409, and a claim abandoned by a crashed worker is taken
  over after LEASE_SECONDS.
- The outcome is stored with the item in one transaction (201), or on its own for a refusal
  that depends only on the request and the data (409 sku conflict): a retry replays either.
  Other failures (database down, a bug) release the key, so a retry runs again.
- Records older than ITEMS_IDEMPOTENCY_KEY_TTL_SECONDS are ignored on lookup and purged in
  bounded batches by a periodic task (service.main).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, insert, not_, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.models import IdempotencyRecord

keys_table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
PENDING = 0  # the status of a claimed key whose request is still running
LEASE_SECONDS = 60
PURGE_BATCH = 1000
PURGE_MAX_BATCHES = 100


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    item_id: int
    body: str
    request_hash: str


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def scoped_key(caller: str, key: str) -> str:
    return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()


def _stale(now: datetime, ttl_seconds: int) -> ColumnElement[bool]:
    """Expired, or claimed by a request that has run past its lease (its worker died)."""
    return or_(
        keys_table.c.created_at < now - timedelta(seconds=ttl_seconds),
        and_(
            keys_table.c.status_code == PENDING,
            keys_table.c.created_at < now - timedelta(seconds=LEASE_SECONDS),
        ),
    )


def find(conn: Connection, key: str, *, now: datetime, ttl_seconds: int) -> StoredResponse | None:
    """The live record of ``key``, for read_retrying; stale ones are not seen."""
    row = conn.execute(
        select(
            keys_table.c.status_code,
            keys_table.c.item_id,
            keys_table.c.response_body,
            keys_table.c.request_hash,
        ).where(keys_table.c.key == key, not_(_stale(now, ttl_seconds)))
    ).first()
    if row is None:
        return None
    return StoredResponse(
        status_code=row.status_code,
        item_id=row.item_id,
        body=row.response_body,
        request_hash=row.request_hash,
    )


async def claim(
    engine: AsyncEngine, *, key: str, request_hash: str, now: datetime, ttl_seconds: int
) -> bool:
    """Claim ``key`` for this request; False when a live record (done or in flight) exists."""
    try:
        async with engine.begin() as conn:
            await conn.execute(
                delete(keys_table).where(keys_table.c.key == key, _stale(now, ttl_seconds))
            )
            await conn.execute(
                insert(keys_table).values(
                    key=key,
                    request_hash=request_hash,
                    status_code=PENDING,
                    item_id=0,
                    response_body="",
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def complete(conn: AsyncConnection, *, key: str, response: StoredResponse) -> None:
    """Store the outcome in the caller's transaction (the one that created the item)."""
    await conn.execute(
        update(keys_table)
        .where(keys_table.c.key == key, keys_table.c.status_code == PENDING)
        .values(
            status_code=response.status_code, item_id=response.item_id, response_body=response.body
        )
    )


async def complete_alone(engine: AsyncEngine, *, key: str, response: StoredResponse) -> None:
    async with engine.begin() as conn:
        await complete(conn, key=key, response=response)


async def release(engine: AsyncEngine, *, key: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            delete(keys_table).where(keys_table.c.key == key, keys_table.c.status_code == PENDING)
        )


async def purge(
    engine: AsyncEngine,
    *,
    older_than: datetime,
    batch: int = PURGE_BATCH,
    max_batches: int = PURGE_MAX_BATCHES,
) -> int:
    """Delete expired records, ``batch`` rows per short transaction, at most ``max_batches``.

    Short transactions keep row locks brief; the bound keeps one round from running long
    (what is left goes in the next round). Keys are selected first because neither MariaDB
    nor SQLite (by default) accept LIMIT on a DELETE with an IN subquery.
    """
    purged = 0
    for _ in range(max_batches):
        async with engine.begin() as conn:
            expired = list(
                (
                    await conn.execute(
                        select(keys_table.c.key)
                        .where(keys_table.c.created_at < older_than)
                        .order_by(keys_table.c.created_at)
                        .limit(batch)
                    )
                ).scalars()
            )
            if expired:
                await conn.execute(delete(keys_table).where(keys_table.c.key.in_(expired)))
        purged += len(expired)
        if len(expired) < batch:
            break
    return purged
