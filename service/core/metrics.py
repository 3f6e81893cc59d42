"""Prometheus metrics, correct across Gunicorn workers.

``items-service serve`` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers
start; each worker writes its samples there and /metrics aggregates them. Run without it (tests,
a bare ``uvicorn``) the same metrics live in this process's registry.
"""

from __future__ import annotations

import os
import platform

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service import __version__

REQUESTS = Counter(
    "items_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "items_http_request_duration_seconds",
    "Time to answer, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "items_http_requests_in_flight", "Requests being served now.", multiprocess_mode="livesum"
)
POOL_CHECKED_OUT = Gauge(
    "items_db_pool_checked_out",
    "Database connections in use.",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_OPEN = Gauge(
    "items_db_pool_connections",
    "Database connections open (idle and in use).",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "items_db_pool_capacity",
    "Configured pool size plus overflow, per process.",
    ["pool"],
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "items_build_info",
    "Version of this service; the value is always 1.",
    ["version", "python"],
    multiprocess_mode="max",
)
SCHEMA_INFO = Gauge(
    "items_schema_revision_info",
    "Alembic revision of the database schema as last seen by readiness (1 = current).",
    ["revision", "image_head"],
    multiprocess_mode="mostrecent",
)
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)

# labels() takes a lock and builds its key on every call, which costs more than the update:
# the children of the request metrics are looked up once per label combination.
_request_counts: dict[tuple[str, str, int], Counter] = {}
_request_latencies: dict[tuple[str, str], Histogram] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    count = _request_counts.get((route, method, status))
    if count is None:
        count = REQUESTS.labels(route=route, method=method, status=str(status))
        _request_counts[route, method, status] = count
    count.inc()
    latency = _request_latencies.get((route, method))
    if latency is None:
        latency = _request_latencies[route, method] = LATENCY.labels(route=route, method=method)
    latency.observe(seconds)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
