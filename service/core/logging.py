"""Loguru as the only log sink: one JSON object per line on stdout.

Uvicorn, Gunicorn, SQLAlchemy and Alembic log through the standard library; an intercept
handler forwards their records here so every line has the same shape.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

# Fields a request adds with logger.contextualize(); copied to the top level of each line.
CONTEXT_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms", "client")
_STDLIB_LOGGERS = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error", "sqlalchemy",
                   "alembic", "asyncio", "kopf")


def _serialize(record: Record) -> str:
    line: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["extra"].get("logger", record["name"]),
    }
    for key, value in record["extra"].items():
        if key != "logger" and not key.startswith("_"):
            line[key] = value
    if record["exception"] is not None:
        exc_type, exc_value, _ = record["exception"]
        line["exception"] = f"{exc_type.__name__ if exc_type else 'Exception'}: {exc_value}"
    return json.dumps(line, default=str, ensure_ascii=False)


def _format(record: Record) -> str:
    record["extra"]["_json"] = _serialize(record)
    return "{extra[_json]}\n"


class InterceptHandler(logging.Handler):
    """Forward standard-library records to Loguru, keeping the original logger's name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(logger=record.name).opt(depth=0, exception=record.exc_info).log(
            level, record.getMessage()
        )


def configure_logging(level: str = "INFO", *, sql: bool = False) -> None:
    logger.remove()
    logger.add(sys.stdout, level=level, format=_format, backtrace=False, diagnose=False,
               enqueue=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name in _STDLIB_LOGGERS:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers = [InterceptHandler()]
        stdlib_logger.propagate = False
    # We log each request ourselves, with its route and request id.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if sql else logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
