"""Loguru as the single log sink, one JSON object per line on stdout; stdlib logging (Kopf's
included) is routed into it so every line has the same shape."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message


class InterceptHandler(logging.Handler):
    """Forward stdlib records to loguru, keeping level, origin and Kopf's object reference."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        extra: dict[str, Any] = {"logger": record.name}
        k8s = getattr(record, "k8s_ref", None)  # set by Kopf's per-object loggers
        if isinstance(k8s, dict):
            extra["object"] = f"{k8s.get('namespace', '')}/{k8s.get('name', '')}"
        logger.opt(exception=record.exc_info).bind(**extra).log(level, record.getMessage())


def _json_line(message: Message) -> None:
    record = message.record
    entry: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["extra"].get("logger", record["name"]),
        "message": record["message"],
    }
    entry.update({k: v for k, v in record["extra"].items() if k != "logger"})
    if record["exception"] is not None:
        error = record["exception"]
        entry["exception"] = "".join(
            traceback.format_exception(error.type, error.value, error.traceback)
        )
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    logger.remove()
    if json_lines:
        logger.add(_json_line, level=level, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    # The HTTP clients log every request at INFO; keep that for debug runs only.
    quiet = max(logging.WARNING, logging.getLevelNamesMapping().get(level.upper(), logging.INFO))
    for noisy in ("httpx", "httpx2", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(quiet)
