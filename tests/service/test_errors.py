"""A server error: a 500 problem with X-Request-ID, and one log line with the request id and the
traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from loguru import logger

from items_logging import serialize
from tests.service.test_items_api import assert_problem


class BoomError(RuntimeError):
    pass


@pytest.fixture
def lines() -> Iterator[list[dict[str, object]]]:
    captured: list[dict[str, object]] = []
    sink = logger.add(
        lambda message: captured.append(json.loads(serialize(message.record))), level="ERROR"
    )
    yield captured
    logger.remove(sink)


def test_a_server_error_is_traceable(client: TestClient, lines: list[dict[str, object]]) -> None:
    async def explode() -> None:
        raise BoomError("the disk is on fire")

    client.app.add_api_route("/boom", explode)  # type: ignore[attr-defined]
    response = client.get("/boom", headers={"X-Request-ID": "req-500-a"})
    body = assert_problem(response, 500)
    assert response.headers["x-request-id"] == "req-500-a"
    assert "fire" not in json.dumps(body)  # no internals for the client
    [line] = [line for line in lines if line["message"] == "unhandled error"]
    assert line["request_id"] == "req-500-a"
    assert line["exception"] == "BoomError: the disk is on fire"
    assert "Traceback (most recent call last)" in str(line["traceback"])
    assert "in explode" in str(line["traceback"])
