"""Cursors are opaque and signed: any string a client makes up is a 400, and every cursor the
service issued is accepted, on SQLite and MariaDB."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import pagination
from tests.service.test_items_api import assert_problem, create

LONG_NAME = "🚀" * 255  # the longest name, in four-byte characters


def walk(client: TestClient, **params: Any) -> list[int]:
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(100):
        page = client.get("/items/", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize("sort", ["name", "-name", "price", "-created_at", "id"])
def test_issued_cursors_are_accepted_after_long_non_ascii_names(
    client: TestClient, sort: str
) -> None:
    ids = [create(client, name=LONG_NAME[:254] + str(i), price=1000 + i)["id"] for i in range(5)]
    assert sorted(walk(client, sort=sort, limit=2)) == sorted(ids)


def _forge(payload: list[Any]) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + ".AAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "a",
        ".",
        "..",
        "a.b",
        "%%%",
        "x" * 5000,
        _forge(["id", None, 1]),
        _forge(["price", "1e999999", 1]),
        _forge(["created_at", "x", 1]),
    ],
)
def test_made_up_cursors_get_400(client: TestClient, cursor: str) -> None:
    sort = "price" if "price" in cursor else "id"
    body = assert_problem(client.get("/items/", params={"cursor": cursor, "sort": sort}), 400)
    assert body["type"].endswith("/bad-cursor")


def test_a_tampered_cursor_gets_400(client: TestClient) -> None:
    for i in range(3):
        create(client, name=f"t{i}")
    cursor = client.get("/items/", params={"limit": 1}).json()["next_cursor"]
    payload, mac = cursor.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).replace(b",", b",0", 1)
    forged = base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac
    assert_problem(client.get("/items/", params={"cursor": forged}), 400)


def test_cursors_from_one_key_are_refused_under_another(
    make_client: Callable[..., TestClient],
) -> None:
    first = make_client(cursor_secret="a" * 32)
    for i in range(3):
        create(first, name=f"k{i}")
    cursor = first.get("/items/", params={"limit": 1}).json()["next_cursor"]
    assert first.get("/items/", params={"cursor": cursor}).status_code == 200
    second = make_client(cursor_secret="b" * 32)
    assert_problem(second.get("/items/", params={"cursor": cursor}), 400)


def test_the_generated_key_is_shared_by_every_process(
    make_client: Callable[..., TestClient],
) -> None:
    first, second = make_client(), make_client()  # two apps: as two workers or pods would be
    for i in range(3):
        create(first, name=f"s{i}")
    cursor = first.get("/items/", params={"limit": 1}).json()["next_cursor"]
    assert second.get("/items/", params={"cursor": cursor}).status_code == 200


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    sort=st.sampled_from(list(pagination.SortOrder)),
)
def test_any_byte_string_is_a_400_or_a_page(
    client: TestClient, raw: bytes, sort: pagination.SortOrder
) -> None:
    # The bytes go into the query string percent-encoded, exactly as a client could send them.
    response = client.get("/items/", params={"cursor": raw.decode("latin-1"), "sort": sort.value})
    assert response.status_code in {200, 400, 422}, response.text
    if response.status_code == 422:  # only an empty cursor is "absent"; no other 422
        assert raw == b""


def test_cursor_shape_is_checked_even_when_signed() -> None:
    key = b"k" * 32
    bad = pagination.Cursor(sort=pagination.SortOrder.PRICE, last_value="-5", last_id=1)
    with pytest.raises(pagination.InvalidCursorError):
        pagination.Cursor.decode(bad.encode(key), pagination.SortOrder.PRICE, key)
    good = pagination.Cursor(sort=pagination.SortOrder.NAME, last_value=LONG_NAME, last_id=7)
    assert pagination.Cursor.decode(good.encode(key), pagination.SortOrder.NAME, key) == good
    assert len(good.encode(key)) <= pagination.CURSOR_MAX_CHARS
