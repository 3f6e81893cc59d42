"""The service and the operator write the same JSON lines (items_logging), tracebacks included.

Each program is configured through its own entry point (service.core.logging,
items_operator.main), then logs an error with a chained exception twice: through the standard
library (how Uvicorn, Gunicorn, SQLAlchemy and Kopf log) and through Loguru (how our code logs).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from items_operator.main import configure_logging as configure_operator
from loguru import logger

import items_logging
from service.core.logging import access_line
from service.core.logging import configure_logging as configure_service

PROGRAMS: dict[str, Callable[[], None]] = {
    "service": lambda: configure_service("INFO"),
    "operator": lambda: configure_operator("INFO"),
}


class DiskOnFireError(RuntimeError):
    pass


def _fail() -> None:
    try:
        raise OSError("no space left")
    except OSError as exc:
        raise DiskOnFireError("the disk is on fire") from exc


def _error_lines(program: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    PROGRAMS[program]()
    try:
        _fail()
    except DiskOnFireError:
        logging.getLogger("kopf.objects").exception("handler failed")
        logger.bind(request_id="r-1").exception("unhandled error")
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_errors_are_json_lines_with_the_whole_traceback(
    program: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stdlib, ours = _error_lines(program, capsys)
    assert list(stdlib)[:4] == list(items_logging.FIELDS)
    assert stdlib["logger"] == "kopf.objects"
    assert stdlib["message"] == "handler failed"
    assert stdlib["level"] == "ERROR"
    assert ours["request_id"] == "r-1"
    for line in (stdlib, ours):
        assert line["exception"] == "DiskOnFireError: the disk is on fire"
        trace = line["traceback"]
        assert trace.startswith("Traceback (most recent call last):")
        assert 'raise OSError("no space left")' in trace  # the cause, with its own frames
        assert "direct cause of the following exception" in trace
        assert trace.rstrip().endswith("DiskOnFireError: the disk is on fire")


@pytest.mark.usefixtures("restore_logging")
def test_service_and_operator_lines_have_the_same_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = _error_lines("service", capsys)
    operator = _error_lines("operator", capsys)
    assert [list(line) for line in service] == [list(line) for line in operator]
    assert list(service[0]) == [*items_logging.FIELDS, "exception", "traceback"]
    for a, b in zip(service, operator, strict=True):
        assert {k: v for k, v in a.items() if k != "time"} == {
            k: v for k, v in b.items() if k != "time"
        }


@pytest.mark.usefixtures("restore_logging")
def test_the_request_line_is_the_loguru_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The service's fast request line has the fields a Loguru line with the same context has."""
    fields: dict[str, Any] = {
        "request_id": "r-2",
        "method": "GET",
        "route": "/items/{item_id}",
        "path": "/items/7",
        "status": 200,
        "duration_ms": 1.25,
    }
    configure_service("INFO")
    access_line(**fields)
    logger.bind(logger="service.api.middleware", **fields).info("request")
    fast, slow = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert list(fast) == list(slow)
    assert fast | {"time": ""} == slow | {"time": ""}
