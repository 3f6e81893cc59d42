"""The /items API end to end through the app, on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Widget", "price": 19.99, **fields}
    response = client.post("/items/", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"]
    return body


class TestCreateAndRead:
    def test_create_returns_201_location_etag_and_the_item(self, client: TestClient) -> None:
        response = client.post(
            "/items/", json={"name": "  Lamp  ", "price": 19.99, "description": "desk lamp"}
        )
        assert response.status_code == 201
        item = response.json()
        assert response.headers["location"] == f"/items/{item['id']}"
        assert response.headers["etag"] == '"v1"'
        assert item["name"] == "Lamp"  # trimmed
        assert item["price"] == 19.99
        assert '"price":19.99' in response.text  # exact text, never 19.989999
        assert item["in_stock"] is True
        assert item["version"] == 1
        assert item["sku"] is None
        assert item["created_at"].endswith("Z")
        assert item["created_at"] == item["updated_at"]

    def test_read_returns_the_same_representation(self, client: TestClient) -> None:
        item = create(client, description="d", in_stock=False, sku="SKU-1")
        response = client.get(f"/items/{item['id']}")
        assert response.status_code == 200
        assert response.json() == item
        assert response.headers["etag"] == '"v1"'

    @pytest.mark.parametrize("price", ["0", "0.01", "19.99", "1234567890.12", "9999999999.99"])
    def test_prices_round_trip_exactly(self, client: TestClient, price: str) -> None:
        response = client.post(
            "/items/",
            content=f'{{"name":"p","price":{price}}}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        fetched = client.get(response.headers["location"]).json()
        assert Decimal(str(fetched["price"])) == Decimal(price)

    def test_price_must_be_a_json_number(self, client: TestClient) -> None:
        problem = assert_problem(client.post("/items/", json={"name": "a", "price": "5.10"}), 422)
        assert "JSON number" in problem["errors"][0]["message"]

    def test_unicode_round_trips(self, client: TestClient) -> None:
        name = "Ça marche — 日本語 🚀 ﷽"
        item = create(client, name=name, description="multi\nline\ttext 💡")
        fetched = client.get(f"/items/{item['id']}").json()
        assert fetched["name"] == name
        assert fetched["description"] == "multi\nline\ttext 💡"

    def test_missing_item_is_404_problem(self, client: TestClient) -> None:
        body = assert_problem(client.get("/items/999999"), 404)
        assert "999999" in body["detail"]

    def test_if_none_match_gives_304(self, client: TestClient) -> None:
        item = create(client)
        response = client.get(f"/items/{item['id']}", headers={"If-None-Match": '"v1"'})
        assert response.status_code == 304
        assert response.headers["etag"] == '"v1"'

    def test_request_id_is_echoed_or_generated(self, client: TestClient) -> None:
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )
        generated = client.get("/healthz", headers={"X-Request-ID": "bad id"})
        assert generated.headers["x-request-id"] not in {"", "bad id"}


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"price": 1}, "body.name"),
            ({"name": "", "price": 1}, "body.name"),
            ({"name": "   ", "price": 1}, "body.name"),
            ({"name": "x" * 256, "price": 1}, "body.name"),
            ({"name": "a\u0000b", "price": 1}, "body.name"),
            ({"name": "a\u0007b", "price": 1}, "body.name"),
            ({"name": "ok", "price": -1}, "body.price"),
            ({"name": "ok", "price": 1.999}, "body.price"),
            ({"name": "ok", "price": 10**12}, "body.price"),
            ({"name": "ok", "price": "abc"}, "body.price"),
            ({"name": "ok", "price": True}, "body.price"),
            ({"name": "ok", "price": [1]}, "body.price"),
            ({"name": "ok", "price": 1, "in_stock": "yes"}, "body.in_stock"),
            ({"name": "ok", "price": 1, "in_stock": 1}, "body.in_stock"),
            ({"name": 5, "price": 1}, "body.name"),
            ({"name": "ok", "price": 1, "description": "x" * 2001}, "body.description"),
            ({"name": "ok", "price": 1, "unknown": 1}, "body.unknown"),
            ({"name": "ok", "price": 1, "sku": ""}, "body.sku"),
            ({"name": "ok", "price": 1, "id": 5}, "body.id"),
        ],
    )
    def test_invalid_fields_get_422_with_field_details(
        self, client: TestClient, body: dict[str, Any], field: str
    ) -> None:
        problem = assert_problem(client.post("/items/", json=body), 422)
        assert field in {error["field"] for error in problem["errors"]}, problem

    @pytest.mark.parametrize(
        "raw",
        [
            b"{",
            b"not json",
            b'{"name": "a", "price": NaN}',
            b'{"name": "a", "price": Infinity}',
            b'{"name": "a", "price": 1e400}',
            b'{"name": "a", "price": -1e400}',
            b'{"name": "a", "price": 1' + b"0" * 5000 + b"}",
            b'{"name": "\\ud800", "price": 1}',
            b"[1, 2, 3]",
            b'"just a string"',
            b"null",
            b"\xff\xfe\x00",
            b'{"name": "a", "price": 1}' * 2,
        ],
    )
    def test_malformed_bodies_get_4xx_never_5xx(self, client: TestClient, raw: bytes) -> None:
        response = client.post("/items/", content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (raw[:40], response.status_code, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)

    def test_body_over_the_limit_gets_413(self, make_client: Callable[..., TestClient]) -> None:
        client = make_client(max_body_bytes=4096)
        body = b'{"name":"a","price":1,"description":"' + b"x" * 5000 + b'"}'
        assert_problem(
            client.post("/items/", content=body, headers={"content-type": "application/json"}), 413
        )

    @pytest.mark.parametrize(
        "path", ["/items/0", "/items/-1", "/items/abc", "/items/99999999999999999999", "/items/1.5"]
    )
    def test_bad_ids_get_4xx(self, client: TestClient, path: str) -> None:
        response = client.get(path)
        assert response.status_code in {404, 422}, response.text
        assert response.headers["content-type"].startswith(PROBLEM)

    def test_unknown_route_and_method_are_problems(self, client: TestClient) -> None:
        assert_problem(client.get("/nope"), 404)
        assert_problem(client.request("TRACE", "/items/"), 405)


class TestUpdates:
    def test_put_replaces_the_whole_item(self, client: TestClient) -> None:
        item = create(client, description="old", sku="A1", in_stock=False)
        response = client.put(f"/items/{item['id']}", json={"name": "New", "price": 3.50})
        assert response.status_code == 200, response.text
        updated = response.json()
        assert updated["name"] == "New"
        assert updated["price"] == 3.5
        assert updated["description"] == ""
        assert updated["sku"] is None
        assert updated["in_stock"] is True
        assert updated["version"] == 2
        assert response.headers["etag"] == '"v2"'
        assert updated["created_at"] == item["created_at"]
        assert updated["updated_at"] >= item["updated_at"]

    def test_patch_changes_only_the_fields_sent(self, client: TestClient) -> None:
        item = create(client, description="keep me")
        response = client.patch(f"/items/{item['id']}", json={"price": 7})
        assert response.status_code == 200
        assert (
            response.json() | {"price": 19.99, "version": 1, "updated_at": item["updated_at"]}
            == item
        )
        assert response.json()["price"] == 7
        assert response.json()["version"] == 2

    def test_patch_may_clear_sku_but_not_null_a_required_field(self, client: TestClient) -> None:
        item = create(client, sku="S-9")
        assert client.patch(f"/items/{item['id']}", json={"sku": None}).json()["sku"] is None
        assert_problem(client.patch(f"/items/{item['id']}", json={"name": None}), 422)

    def test_empty_patch_changes_nothing(self, client: TestClient) -> None:
        item = create(client)
        response = client.patch(f"/items/{item['id']}", json={})
        assert response.status_code == 200
        assert response.json() == item

    def test_updates_of_missing_items_are_404(self, client: TestClient) -> None:
        assert_problem(client.put("/items/424242", json={"name": "a", "price": 1}), 404)
        assert_problem(client.patch("/items/424242", json={"name": "a"}), 404)
        assert_problem(client.delete("/items/424242"), 404)

    def test_if_match_guards_against_lost_updates(self, client: TestClient) -> None:
        item = create(client)
        url = f"/items/{item['id']}"
        first = client.patch(url, json={"name": "first"}, headers={"If-Match": '"v1"'})
        assert first.status_code == 200
        assert first.headers["etag"] == '"v2"'
        stale = client.patch(url, json={"name": "second"}, headers={"If-Match": '"v1"'})
        assert_problem(stale, 412)
        assert client.get(url).json()["name"] == "first"
        assert (
            client.put(
                url, json={"name": "third", "price": 1}, headers={"If-Match": '"v2"'}
            ).status_code
            == 200
        )

    @pytest.mark.parametrize(
        ("header", "status"),
        [
            ('"v1"', 200),
            ("*", 200),
            ('"v9", "v1"', 200),
            ('W/"v1"', 412),
            ('"v2"', 412),
            ("garbage", 400),
            ('"x1"', 412),
        ],
    )
    def test_if_match_forms(self, client: TestClient, header: str, status: int) -> None:
        item = create(client)
        response = client.patch(
            f"/items/{item['id']}", json={"price": 1}, headers={"If-Match": header}
        )
        assert response.status_code == status, response.text

    def test_if_match_can_be_required(self, make_client: Callable[..., TestClient]) -> None:
        client = make_client(require_if_match=True)
        item = create(client)
        url = f"/items/{item['id']}"
        assert_problem(client.patch(url, json={"price": 2}), 428)
        assert_problem(client.put(url, json={"name": "a", "price": 2}), 428)
        assert_problem(client.delete(url), 428)
        assert client.patch(url, json={"price": 2}, headers={"If-Match": '"v1"'}).status_code == 200

    def test_sku_must_be_unique(self, client: TestClient) -> None:
        create(client, sku="DUP-1")
        assert_problem(client.post("/items/", json={"name": "b", "price": 1, "sku": "DUP-1"}), 409)
        other = create(client, sku="DUP-2")
        assert_problem(client.patch(f"/items/{other['id']}", json={"sku": "DUP-1"}), 409)

    def test_delete_then_404(self, client: TestClient) -> None:
        item = create(client)
        url = f"/items/{item['id']}"
        assert_problem(client.delete(url, headers={"If-Match": '"v7"'}), 412)
        response = client.delete(url, headers={"If-Match": '"v1"'})
        assert response.status_code == 204
        assert response.content == b""
        assert_problem(client.get(url), 404)


class TestIdempotency:
    def test_retry_returns_the_original_result(self, client: TestClient) -> None:
        headers = {"Idempotency-Key": "order-42"}
        first = client.post("/items/", json={"name": "once", "price": 1}, headers=headers)
        again = client.post("/items/", json={"name": "once", "price": 1}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        assert client.get("/items/").json()["count"] == 1

    def test_same_key_other_body_is_rejected(self, client: TestClient) -> None:
        headers = {"Idempotency-Key": "k-1"}
        client.post("/items/", json={"name": "a", "price": 1}, headers=headers)
        problem = assert_problem(
            client.post("/items/", json={"name": "b", "price": 1}, headers=headers), 422
        )
        assert "Idempotency-Key" in problem["detail"]

    @pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\there"])
    def test_bad_key_is_rejected(self, client: TestClient, key: str) -> None:
        assert_problem(
            client.post(
                "/items/", json={"name": "a", "price": 1}, headers={"Idempotency-Key": key}
            ),
            422,
        )


class TestListing:
    def test_pages_walk_every_row_once(self, client: TestClient) -> None:
        created = [create(client, name=f"item {i:02d}", price=i)["id"] for i in range(23)]
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 5}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/items/", params=params)
            assert response.status_code == 200
            page = response.json()
            seen += [item["id"] for item in page["data"]]
            assert page["count"] == len(page["data"])
            cursor = page["next_cursor"]
            pages += 1
            if cursor is None:
                assert "link" not in response.headers
                break
            assert 'rel="next"' in response.headers["link"]
        assert seen == created
        assert pages == 5

    @pytest.mark.parametrize(
        "sort", ["name", "-name", "price", "-price", "created_at", "-created_at", "-id"]
    )
    def test_every_sort_order_pages_consistently(self, client: TestClient, sort: str) -> None:
        for i in range(9):
            create(client, name=f"n{i % 3}", price=i % 4)
        everything = client.get("/items/", params={"sort": sort, "limit": 100}).json()["data"]
        paged: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/items/", params=params).json()
            paged += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [item["id"] for item in paged] == [item["id"] for item in everything]
        key = sort.removeprefix("-")
        values = [item[key] for item in everything]
        assert values == sorted(values, reverse=sort.startswith("-"))

    def test_filters(self, client: TestClient) -> None:
        create(client, name="Red Apple", price=1, in_stock=True)
        create(client, name="Green apple", price=5, in_stock=False)
        create(client, name="Pear", price=10, in_stock=True)
        create(client, name="100% juice_box", price=3)

        def names(**params: Any) -> list[str]:
            response = client.get("/items/", params=params)
            assert response.status_code == 200, response.text
            return sorted(item["name"] for item in response.json()["data"])

        assert names(q="apple") == ["Green apple", "Red Apple"]
        assert names(in_stock="false") == ["Green apple"]
        assert names(min_price="3", max_price="5") == ["100% juice_box", "Green apple"]
        assert names(q="%") == ["100% juice_box"]  # wildcards are literal
        assert names(q="_") == ["100% juice_box"]
        assert names(q="apple", in_stock="true", max_price="2") == ["Red Apple"]
        assert names(min_price="5", max_price="1") == []  # an empty range, not an error

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0},
            {"limit": 1001},
            {"limit": "x"},
            {"sort": "color"},
            {"min_price": "-1"},
            {"min_price": "1.001"},
            {"in_stock": "maybe"},
            {"q": "x" * 256},
            {"q": "a\x01"},
            {"max_price": "NaN"},
        ],
    )
    def test_bad_list_parameters_get_422(self, client: TestClient, params: dict[str, Any]) -> None:
        assert_problem(client.get("/items/", params=params), 422)

    @pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "WyJpZCIsbnVsbCwieCJd", "a"])
    def test_foreign_cursor_gets_400(self, client: TestClient, cursor: str) -> None:
        assert_problem(client.get("/items/", params={"cursor": cursor}), 400)

    def test_cursor_with_bad_characters_gets_400(self, client: TestClient) -> None:
        assert_problem(client.get("/items/", params={"cursor": "%%%"}), 400)

    def test_cursor_is_tied_to_its_sort_order(self, client: TestClient) -> None:
        for i in range(3):
            create(client, name=f"x{i}")
        cursor = client.get("/items/", params={"limit": 1}).json()["next_cursor"]
        assert_problem(client.get("/items/", params={"cursor": cursor, "sort": "name"}), 400)

    def test_limit_above_the_maximum_is_reduced(
        self, make_client: Callable[..., TestClient]
    ) -> None:
        client = make_client(page_size_max=3, page_size_default=2)
        for i in range(5):
            create(client, name=f"c{i}")
        page = client.get("/items/", params={"limit": 500}).json()
        assert page["count"] == 3
        assert page["next_cursor"]

    def test_default_page_size_is_50(self, client: TestClient) -> None:
        for i in range(55):
            client.post("/items/", json={"name": f"i{i}", "price": 1})
        page = client.get("/items/").json()
        assert page["count"] == 50
        assert page["next_cursor"]


class TestAuth:
    @pytest.fixture
    def secured(self, make_client: Callable[..., TestClient]) -> TestClient:
        return make_client(api_tokens=["token-one", "token-two"])

    def test_writes_need_a_token(self, secured: TestClient) -> None:
        body = {"name": "a", "price": 1}
        missing = assert_problem(secured.post("/items/", json=body), 401)
        assert "bearer" in missing["detail"].lower()
        assert secured.post("/items/", json=body).headers["www-authenticate"].startswith("Bearer")
        assert_problem(
            secured.post("/items/", json=body, headers={"Authorization": "Basic abc"}), 401
        )
        unknown = secured.post("/items/", json=body, headers={"Authorization": "Bearer nope"})
        assert_problem(unknown, 401)
        assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
        ok = secured.post("/items/", json=body, headers={"Authorization": "Bearer token-two"})
        assert ok.status_code == 201

    def test_reads_are_open_unless_protected(
        self, secured: TestClient, make_client: Callable[..., TestClient]
    ) -> None:
        assert secured.get("/items/").status_code == 200
        locked = make_client(api_tokens=["t"], protect_reads=True)
        assert_problem(locked.get("/items/"), 401)
        assert locked.get("/items/", headers={"Authorization": "Bearer t"}).status_code == 200
        assert locked.get("/healthz").status_code == 200  # probes stay open

    def test_tokens_from_a_mounted_file(
        self, make_client: Callable[..., TestClient], tmp_path: Any
    ) -> None:
        token_file = tmp_path / "tokens"
        token_file.write_text("from-file\n\n")
        client = make_client(api_tokens_file=token_file)
        assert (
            client.post(
                "/items/",
                json={"name": "a", "price": 1},
                headers={"Authorization": "Bearer from-file"},
            ).status_code
            == 201
        )
        assert "from-file" not in client.post("/items/", json={"name": "a", "price": 1}).text


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/items/", "/items/{item_id}", "/healthz", "/readyz"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_streamed_body_over_the_limit_gets_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096)

    def chunks() -> Any:
        yield b'{"name":"a","price":1,"description":"'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/items/", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)
