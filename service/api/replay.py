"""The HTTP side of Idempotency-Key (service.idempotency stores the records)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service import crud, idempotency
from service.api.problems import PROBLEM_JSON, ProblemError, problem_response
from service.core.db import Engines
from service.models import ItemPublic

Respond = Callable[[ItemPublic, int, dict[str, str]], Response]
Store = Callable[[AsyncConnection, ItemPublic], Awaitable[None]]


def _in_flight() -> ProblemError:
    return ProblemError(
        409,
        "a request with this Idempotency-Key is still being processed; retry shortly",
        problem="idempotency-key-in-use",
        headers={"Retry-After": "1"},
    )


def replay(stored: idempotency.StoredResponse, fingerprint: str, respond: Respond) -> Response:
    if stored.status_code == idempotency.PENDING:
        raise _in_flight()
    if stored.request_hash != fingerprint:
        raise ProblemError(
            422,
            "this Idempotency-Key was already used with a different request body",
            problem="idempotency-key-reused",
        )
    if stored.status_code >= 400:  # a stored refusal is replayed as it was sent
        return Response(
            stored.body,
            status_code=stored.status_code,
            media_type=PROBLEM_JSON,
            headers={"Idempotent-Replayed": "true"},
        )
    item = ItemPublic.model_validate_json(stored.body)
    return respond(
        item,
        stored.status_code,
        {
            "Location": f"/items/{stored.item_id}",
            "Idempotent-Replayed": "true",
        },
    )


async def create_once(
    request: Request,
    engines: Engines,
    *,
    key: str,
    fingerprint: str,
    ttl_seconds: int,
    insert: Callable[[Store], Awaitable[ItemPublic]],
    respond: Respond,
) -> ItemPublic | Response:
    """Run ``insert`` at most once per (caller, key) within the TTL; replay its outcome after.

    ``insert`` gets ``store``, to call inside the transaction that creates the item.
    """
    scoped = idempotency.scoped_key(getattr(request.state, "caller", ""), key)
    now = crud.utcnow()

    async def lookup() -> idempotency.StoredResponse | None:
        return await crud.read_retrying(
            engines.read,
            lambda conn: idempotency.find(conn, scoped, now=now, ttl_seconds=ttl_seconds),
        )

    stored = await lookup()
    if stored is None and not await idempotency.claim(
        engines.write, key=scoped, request_hash=fingerprint, now=now, ttl_seconds=ttl_seconds
    ):
        stored = await lookup()
        if stored is None:  # claimed and released in between: the other request failed
            raise _in_flight()
    if stored is not None:
        return replay(stored, fingerprint, respond)

    async def store(conn: AsyncConnection, item: ItemPublic) -> None:
        await idempotency.complete(
            conn,
            key=scoped,
            response=idempotency.StoredResponse(201, item.id, item.model_dump_json(), fingerprint),
        )

    try:
        return await insert(store)
    except ProblemError as problem:
        if problem.status != 409:
            await _release(engines.write, scoped)
            raise
        # Decided by the data alone (the sku is taken): a retry gets the same answer.
        body = bytes(
            problem_response(
                problem.status, problem.detail, instance=request.url.path, problem=problem.problem
            ).body
        ).decode()
        await idempotency.complete_alone(
            engines.write,
            key=scoped,
            response=idempotency.StoredResponse(409, 0, body, fingerprint),
        )
        raise
    except BaseException:
        await _release(engines.write, scoped)
        raise


async def _release(engine: AsyncEngine, key: str) -> None:
    with contextlib.suppress(Exception):  # else the claim is taken over after its lease
        await idempotency.release(engine, key=key)
