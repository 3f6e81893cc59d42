"""Keep the pool gauges current from the pool's own events, so any worker's scrape is exact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from service.core import metrics


def track_pool(engine: AsyncEngine, name: str, capacity: int) -> None:
    checked_out = metrics.POOL_CHECKED_OUT.labels(pool=name)
    open_connections = metrics.POOL_OPEN.labels(pool=name)
    metrics.POOL_CAPACITY.labels(pool=name).set(capacity)
    pool = engine.sync_engine.pool

    def on_connect(*_: Any) -> None:
        open_connections.inc()

    def on_close(*_: Any) -> None:
        open_connections.dec()

    def on_checkout(*_: Any) -> None:
        checked_out.inc()

    def on_checkin(*_: Any) -> None:
        checked_out.dec()

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "close", on_close)
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)
