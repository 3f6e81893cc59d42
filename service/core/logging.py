"""The service's log policy on the shared JSON lines (items_logging): which libraries log
through them, how loudly, and the line per request.

Uvicorn, Gunicorn, SQLAlchemy and Alembic log through the standard library; items_logging
routes their records into Loguru, so every line has the same shape as the operator's.
"""

from __future__ import annotations

import logging

import items_logging

# The access line keeps the name of the module that used to log it through Loguru.
ACCESS_LOGGER = "service.api.middleware"
# Loggers that bring their own handlers or stop propagating: routed into the sink explicitly.
_STDLIB_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "gunicorn",
    "gunicorn.error",
    "sqlalchemy",
    "alembic",
    "asyncio",
    "kopf",
)


def access_line(
    *, request_id: str, method: str, route: str, path: str, status: int, duration_ms: float
) -> None:
    """One line per request (items_logging.info_line: the Loguru line's fields, written
    straight to the sink's stream)."""
    items_logging.info_line(
        ACCESS_LOGGER,
        "request",
        {
            "request_id": request_id,
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


def configure_logging(level: str = "INFO", *, sql: bool = False) -> None:
    items_logging.configure_logging(level, routed=_STDLIB_LOGGERS)
    # We log each request ourselves, with its route and request id.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if sql else logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
