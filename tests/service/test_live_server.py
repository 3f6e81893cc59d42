"""The service as it runs in production: a Gunicorn master with Uvicorn workers, on MariaDB."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service import schema
from tests.conftest import LiveServer
from tests.mariadb import APP_PASSWORD, MariaDB, wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.slow]


def _metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_aggregate_across_workers(mysql_live_server: LiveServer) -> None:
    base = mysql_live_server.base_url
    item = httpx.post(f"{base}/items/", json={"name": "m", "price": 1}).json()
    # Fresh connections, so the kernel spreads them over both workers.
    for _ in range(40):
        assert httpx.get(f"{base}/items/{item['id']}").status_code == 200
    for _ in range(3):
        httpx.get(f"{base}/items/999999")
    httpx.get(f"{base}/no/such/path/123")
    body = httpx.get(f"{base}/metrics").text
    assert (
        _metric_value(
            body, "items_http_requests_total", route="/items/{item_id}", method="GET", status="200"
        )
        == 40
    )
    assert (
        _metric_value(body, "items_http_requests_total", route="/items/{item_id}", status="404")
        == 3
    )
    assert _metric_value(body, "items_http_requests_total", route="<unmatched>") == 1
    assert "/items/999999" not in body
    assert "/no/such/path" not in body
    assert (
        _metric_value(body, "items_http_request_duration_seconds_count", route="/items/{item_id}")
        == 43
    )
    assert "items_http_requests_in_flight" in body
    assert _metric_value(body, "items_db_pool_capacity", pool="read") > 0
    assert "items_db_pool_checked_out" in body
    assert "items_db_pool_connections" in body
    assert _metric_value(body, "items_build_info") >= 1
    httpx.get(f"{base}/readyz")
    body = httpx.get(f"{base}/metrics").text
    head = schema.known_revisions().head
    assert _metric_value(body, "items_schema_revision_info", revision=head) >= 1


def test_logs_are_json_lines_with_request_context(mysql_live_server: LiveServer) -> None:
    base = mysql_live_server.base_url
    httpx.post(
        f"{base}/items/",
        json={"name": "log me", "price": 2},
        headers={"X-Request-ID": "trace-me-123"},
    )
    httpx.get(f"{base}/items/77777")
    mysql_live_server.stop()
    lines = [line for line in mysql_live_server.log_lines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "message", "logger"} <= record.keys() for record in records)
    requests = [record for record in records if record["message"] == "request"]
    traced = [record for record in requests if record.get("request_id") == "trace-me-123"]
    assert len(traced) == 1
    assert traced[0] | {"duration_ms": 0, "time": ""} == traced[0] | {
        "method": "POST",
        "route": "/items/",
        "status": 201,
        "duration_ms": 0,
        "time": "",
    }
    assert any(r.get("status") == 404 and r["route"] == "/items/{item_id}" for r in requests)
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "uvicorn.error"} <= loggers
    assert APP_PASSWORD not in "\n".join(lines)


def _load(
    base: str, stop: threading.Event, outcomes: Counter[str], item_id: int, max_requests: int
) -> None:
    # New connection per request: a closed keep-alive connection is not an in-flight failure.
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
        for _ in range(max_requests):
            if stop.is_set():
                return
            try:
                response = client.get(f"{base}/items/{item_id}")
                outcomes[str(response.status_code)] += 1
            except httpx.ConnectError:
                outcomes["refused"] += 1  # the listener is closed: never accepted, not failed
                time.sleep(0.01)
            except httpx.HTTPError as exc:
                outcomes[f"failed:{type(exc).__name__}"] += 1


LoadHandle = tuple[threading.Event, Counter[str], list[threading.Thread]]


def _run_load(base: str, item_id: int, threads: int = 8, max_requests: int = 5000) -> LoadHandle:
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    workers = [
        threading.Thread(target=_load, args=(base, stop, outcomes, item_id, max_requests))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    return stop, outcomes, workers


def test_sigterm_drains_without_failing_in_flight_requests(
    mysql_url: str, live_server_factory: Callable[..., LiveServer]
) -> None:
    """Like a pod behind a Service: readiness turns false first, the load balancer (simulated
    by a readiness poller) stops routing, and nothing sent before that fails."""
    server = live_server_factory({"DATABASE_URL": mysql_url, "ITEMS_SHUTDOWN_DELAY_SECONDS": "3"})
    base = server.base_url
    item = httpx.post(f"{base}/items/", json={"name": "drain", "price": 1}).json()
    routed = threading.Event()
    routed.set()

    def balancer() -> None:
        with httpx.Client(timeout=5) as client:
            for _ in range(600):
                if client.get(f"{base}/readyz").status_code != 200:
                    routed.clear()
                    return
                time.sleep(0.05)

    poller = threading.Thread(target=balancer)
    poller.start()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(20_000):
                if not routed.is_set():
                    return
                try:
                    status = str(client.get(f"{base}/items/{item['id']}").status_code)
                except httpx.HTTPError as exc:
                    status = f"failed:{type(exc).__name__}"
                with lock:
                    outcomes[status] += 1

    clients = [threading.Thread(target=client_loop) for _ in range(8)]
    for thread in clients:
        thread.start()
    wait_until(lambda: outcomes["200"] >= 200, timeout=60, what="load to get going")
    server.process.send_signal(signal.SIGTERM)
    poller.join(timeout=30)
    assert not routed.is_set(), "readiness never turned false"
    for thread in clients:
        thread.join(timeout=60)
    assert server.process.wait(timeout=60) == 0
    assert set(outcomes) == {"200"}, outcomes
    messages = [json.loads(line)["message"] for line in server.log_lines() if line.strip()]
    assert "shutdown requested: readiness is now false" in messages


def test_database_outage_then_recovery(mariadb: MariaDB, mysql_live_server: LiveServer) -> None:
    if not mariadb.controllable:
        pytest.skip("needs a MariaDB server owned by the tests (ITEMS_TEST_MYSQL_URL unset)")
    base = mysql_live_server.base_url
    item = httpx.post(f"{base}/items/", json={"name": "outage", "price": 1}).json()
    stop, outcomes, threads = _run_load(base, item["id"], threads=4, max_requests=100_000)
    try:
        wait_until(lambda: outcomes["200"] >= 100, timeout=60, what="load to get going")
        mariadb.stop()
        wait_until(
            lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 503,
            timeout=30,
            what="readiness to report the outage",
        )
        assert httpx.get(f"{base}/healthz").status_code == 200
        during = httpx.get(f"{base}/items/{item['id']}", timeout=30)
        assert during.status_code == 503, during.text
        assert during.headers["content-type"].startswith("application/problem+json")
        assert during.headers["retry-after"]
    finally:
        if mariadb.process is None:
            mariadb.start()
    wait_until(
        lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200,
        timeout=60,
        what="readiness to recover by itself",
    )
    served = outcomes["200"]
    wait_until(lambda: outcomes["200"] > served + 100, timeout=30, what="traffic to recover")
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert "500" not in outcomes, outcomes  # an outage is a 503, never a 500
    assert set(outcomes) <= {"200", "503"}, outcomes


def test_concurrent_patches_lose_no_update(mysql_live_server: LiveServer) -> None:
    base = mysql_live_server.base_url
    item = httpx.post(f"{base}/items/", json={"name": "counter", "price": 1}).json()
    results: list[int] = []
    lock = threading.Lock()

    def patch(guarded: bool, value: int) -> None:
        headers = {"If-Match": '"v1"'} if guarded else {}
        response = httpx.patch(
            f"{base}/items/{item['id']}",
            json={"description": str(value)},
            headers=headers,
            timeout=30,
        )
        with lock:
            results.append(response.status_code)

    guarded = [threading.Thread(target=patch, args=(True, i)) for i in range(16)]
    for thread in guarded:
        thread.start()
    for thread in guarded:
        thread.join()
    assert sorted(results) == [200] + [412] * 15  # exactly one writer wins on a version
    results.clear()
    unguarded = [threading.Thread(target=patch, args=(False, i)) for i in range(16)]
    for thread in unguarded:
        thread.start()
    for thread in unguarded:
        thread.join()
    assert results == [200] * 16
    # Every write applied atomically: the version counts all of them.
    assert httpx.get(f"{base}/items/{item['id']}").json()["version"] == 18


def test_concurrent_idempotent_retries_create_one_item(mysql_live_server: LiveServer) -> None:
    base = mysql_live_server.base_url
    responses: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(12)

    def post() -> None:
        barrier.wait()
        response = httpx.post(
            f"{base}/items/",
            json={"name": "once", "price": 9.99},
            headers={"Idempotency-Key": "retry-storm-1"},
            timeout=30,
        )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=post) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Retries that overlap the first request get 409 (in flight); the rest replay its 201.
    assert {response.status_code for response in responses} <= {201, 409}
    created = [response for response in responses if response.status_code == 201]
    assert created
    assert len({response.json()["id"] for response in created}) == 1
    retry = httpx.post(
        f"{base}/items/",
        json={"name": "once", "price": 9.99},
        headers={"Idempotency-Key": "retry-storm-1"},
        timeout=30,
    )
    assert retry.status_code == 201
    assert retry.json()["id"] == created[0].json()["id"]
    listing = httpx.get(f"{base}/items/", params={"q": "once"}).json()
    assert listing["count"] == 1


def test_pagination_under_concurrent_inserts(mysql_live_server: LiveServer) -> None:
    base = mysql_live_server.base_url
    existing = [
        httpx.post(f"{base}/items/", json={"name": f"pre {i}", "price": i}).json()["id"]
        for i in range(60)
    ]
    stop = threading.Event()
    inserted: list[int] = []

    def writer() -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(2000):
                if stop.is_set():
                    return
                response = client.post(f"{base}/items/", json={"name": f"new {i}", "price": 1})
                inserted.append(response.json()["id"])

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    cursor: str | None = None
    with httpx.Client(timeout=30) as client:
        for _ in range(1000):
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"{base}/items/", params=params).json()
            seen += [item["id"] for item in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None or len(seen) > 300:
                break
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen == sorted(seen)
    assert set(existing) <= set(seen), "a row that existed throughout was skipped"
