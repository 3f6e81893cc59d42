"""Validators: ids are never reused, ETags compare as strings, every precondition header is
evaluated (If-Match on GET, If-None-Match on writes), and no header value gets a 5xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api import etags
from tests.service.test_items_api import assert_problem, create


def test_a_deleted_newest_id_is_never_reused(client: TestClient) -> None:
    create(client, name="older")
    newest = create(client, name="newest")
    assert client.delete(f"/items/{newest['id']}").status_code == 204
    again = create(client, name="another")
    assert again["id"] > newest["id"]
    # The deleted item's validator does not match the new item.
    stale = client.put(
        f"/items/{newest['id']}", json={"name": "x", "price": 1}, headers={"If-Match": '"v1"'}
    )
    assert_problem(stale, 404)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ('"v1"', 200),
        ("*", 200),
        ('"v9", "v1"', 200),
        ('"v9","v1"', 200),
        (' "v1" ', 200),
        ('W/"v1"', 412),
        ('"v2"', 412),
        ('"x1"', 412),
        ('"v01"', 412),
        ('"V1"', 412),
        ('"v\u0661"', 412),
        ('"v1 "', 400),
        ('"a,b", "v1"', 200),
        ('""', 412),
        ("", 200),
        ("garbage", 400),
        ('"v1" "v2"', 400),
        ('"v1', 400),
        ("v1", 400),
        ("**", 400),
        ('*, "v1"', 400),
        ('"v1"garbage', 400),
    ],
)
def test_if_match_is_a_strong_string_comparison(
    client: TestClient, header: str, status: int
) -> None:
    item = create(client)
    response = client.patch(
        f"/items/{item['id']}", json={"price": 1}, headers={b"If-Match": header.encode("utf-8")}
    )
    assert response.status_code == status, response.text


def test_if_match_on_get(client: TestClient) -> None:
    item = create(client)
    url = f"/items/{item['id']}"
    assert client.get(url, headers={"If-Match": '"v1"'}).status_code == 200
    assert client.get(url, headers={"If-Match": "*"}).status_code == 200
    assert_problem(client.get(url, headers={"If-Match": '"v2"'}), 412)
    assert_problem(client.get(url, headers={"If-Match": 'W/"v1"'}), 412)
    assert_problem(client.get("/items/999999", headers={"If-Match": '"v1"'}), 404)
    # If-Match is evaluated before If-None-Match (RFC 9110 13.2.2).
    assert_problem(client.get(url, headers={"If-Match": '"v2"', "If-None-Match": '"v1"'}), 412)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ('"v1"', 304),
        ('W/"v1"', 304),
        ("*", 304),
        ('"v2", W/"v1"', 304),
        ('"v2"', 200),
        ('"v01"', 200),
        ("nonsense", 400),
    ],
)
def test_if_none_match_on_get(client: TestClient, header: str, status: int) -> None:
    item = create(client)
    response = client.get(f"/items/{item['id']}", headers={"If-None-Match": header})
    assert response.status_code == status, response.text
    if status == 304:
        assert response.headers["etag"] == '"v1"'
        assert response.content == b""


def test_if_none_match_on_writes(client: TestClient) -> None:
    item = create(client)
    url = f"/items/{item['id']}"
    body = {"name": "n", "price": 1}
    # PUT with If-None-Match: * means "only if there is none"; the item exists.
    assert_problem(client.put(url, json=body, headers={"If-None-Match": "*"}), 412)
    assert_problem(client.patch(url, json={}, headers={"If-None-Match": "*"}), 412)
    assert_problem(client.delete(url, headers={"If-None-Match": "*"}), 412)
    assert_problem(client.put("/items/999999", json=body, headers={"If-None-Match": "*"}), 404)
    assert_problem(client.put(url, json=body, headers={"If-None-Match": 'W/"v1"'}), 412)
    assert client.get(url).json()["version"] == 1  # none of those wrote
    assert client.put(url, json=body, headers={"If-None-Match": '"v7"'}).status_code == 200
    assert_problem(client.delete(url, headers={"If-None-Match": '"v2"'}), 412)
    assert client.delete(url, headers={"If-None-Match": '"v1"'}).status_code == 204


# Any value a client can put in a header: visible ASCII, space, tab and obs-text.
HEADER_VALUES = st.binary(max_size=80).map(
    lambda raw: bytes(b for b in raw if b == 9 or 32 <= b != 127).strip(b" \t")
) | st.lists(
    st.sampled_from(['"v1"', 'W/"v1"', '"v2"', "*", ",", " ", '"', "W/", "v1", "\x80"]), max_size=6
).map(lambda parts: "".join(parts).encode("latin-1").strip(b" \t"))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(value=HEADER_VALUES)
def test_any_precondition_header_never_gets_a_server_error(
    client: TestClient, value: bytes
) -> None:
    item_id = create(client)["id"]
    for method, name in (
        ("GET", "If-Match"),
        ("GET", "If-None-Match"),
        ("PATCH", "If-Match"),
        ("PATCH", "If-None-Match"),
    ):
        response = client.request(
            method,
            f"/items/{item_id}",
            headers={name.encode(): value},
            json={} if method == "PATCH" else None,
        )
        allowed = {200, 304, 400, 412}
        assert response.status_code in allowed, (method, name, value, response.text)


@given(version=st.integers(min_value=1, max_value=10**17))
def test_an_issued_etag_always_names_its_version(version: int) -> None:
    parsed = etags.parse(etags.etag_for(version))
    assert parsed.strong == {version}
    assert parsed.matches_strongly(version)
    assert not parsed.matches_strongly(version + 1)
