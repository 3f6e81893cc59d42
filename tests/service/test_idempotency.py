"""Idempotency-Key, after the IETF draft: scoped to the caller, TTL checked on lookup, 409
while in flight, refusals replayed, expired records purged in bounded batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, update

from service import crud, idempotency
from service.core.config import Settings
from service.core.db import create_engines, sync_url
from tests.service.test_items_api import assert_problem

keys = idempotency.keys_table


def _sql(settings: Settings, statement: Any) -> Any:
    engine = create_engine(sync_url(settings))
    with engine.begin() as conn:
        result = conn.execute(statement)
        value = result.scalar() if result.returns_rows else result.rowcount
    engine.dispose()
    return value


def _post(client: TestClient, key: str, token: str | None = None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/items/", json={"name": "k", "price": 1, **body}, headers=headers)


def test_keys_belong_to_their_caller(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_tokens=["alice-token", "bob-token"])
    alice = _post(client, "order-1", "alice-token")
    bob = _post(client, "order-1", "bob-token")
    assert alice.status_code == bob.status_code == 201
    assert alice.json()["id"] != bob.json()["id"]
    again = _post(client, "order-1", "alice-token")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == alice.json()["id"]


def test_an_expired_key_is_not_replayed(
    make_settings: Callable[..., Settings], make_client: Callable[..., TestClient]
) -> None:
    client = make_client(idempotency_key_ttl_seconds=60)
    first = _post(client, "late")
    assert first.status_code == 201
    _sql(make_settings(), update(keys).values(created_at=crud.utcnow() - timedelta(seconds=61)))
    second = _post(client, "late")  # before any purge ran: the lookup itself checks the TTL
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]


def test_a_retry_while_in_flight_gets_409(
    make_settings: Callable[..., Settings], make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    settings = make_settings()

    async def claim(age_seconds: float) -> bool:
        engines = create_engines(settings)
        try:
            return await idempotency.claim(
                engines.write,
                key=idempotency.scoped_key("", "busy"),
                request_hash="h",
                now=crud.utcnow() - timedelta(seconds=age_seconds),
                ttl_seconds=86400,
            )
        finally:
            await engines.dispose()

    assert asyncio.run(claim(0))  # as if another worker were running the first request now
    response = _post(client, "busy")
    body = assert_problem(response, 409)
    assert body["type"].endswith("/idempotency-key-in-use")
    assert response.headers["retry-after"] == "1"
    # A claim past its lease (the worker died) is taken over.
    _sql(
        settings,
        update(keys).values(
            created_at=crud.utcnow() - timedelta(seconds=idempotency.LEASE_SECONDS + 1)
        ),
    )
    assert _post(client, "busy").status_code == 201


def test_a_refusal_is_stored_and_replayed(client: TestClient) -> None:
    holder = client.post("/items/", json={"name": "h", "price": 1, "sku": "TAKEN"}).json()
    refused = _post(client, "sku-clash", sku="TAKEN")
    assert_problem(refused, 409)
    assert client.delete(f"/items/{holder['id']}").status_code == 204
    retry = _post(client, "sku-clash", sku="TAKEN")  # the sku is free now, but the key is used
    assert_problem(retry, 409)
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == refused.json()
    assert client.get("/items/").json()["count"] == 0


def test_purge_runs_in_bounded_batches(
    make_settings: Callable[..., Settings], client: TestClient
) -> None:
    for i in range(7):
        assert _post(client, f"old-{i}").status_code == 201
    settings = make_settings()
    _sql(settings, update(keys).values(created_at=crud.utcnow() - timedelta(days=2)))
    assert _post(client, "fresh").status_code == 201

    async def purge(**bounds: int) -> int:
        engines = create_engines(settings)
        try:
            return await idempotency.purge(
                engines.write, older_than=crud.utcnow() - timedelta(days=1), **bounds
            )
        finally:
            await engines.dispose()

    assert asyncio.run(purge(batch=2, max_batches=2)) == 4  # the bound stops the round
    assert asyncio.run(purge(batch=2, max_batches=10)) == 3
    assert _sql(settings, select(func.count()).select_from(keys)) == 1  # the fresh one stays
