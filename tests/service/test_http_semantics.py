"""HTTP method and redirect semantics through the app: HEAD, Allow on 405, trailing slashes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.service.test_items_api import assert_problem, create


def test_head_on_every_get_route(client: TestClient) -> None:
    item = create(client)
    for path in (f"/items/{item['id']}", "/items/", "/healthz", "/metrics"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers.get("etag") == get.headers.get("etag")
        assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/items/999999").status_code == 404
    assert client.head(f"/items/{item['id']}", headers={"If-None-Match": '"v1"'}).status_code == 304


def test_405_names_every_method_of_the_resource(client: TestClient) -> None:
    item = create(client)
    response = client.post(f"/items/{item['id']}", json={})
    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"
    response = client.delete("/items/")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert client.request("OPTIONS", "/healthz").headers["allow"] == "GET, HEAD"


def test_unknown_methods_share_one_metrics_label(client: TestClient) -> None:
    for method in ("FOO", "BAR", "X" * 40):
        assert client.request(method, "/healthz").status_code == 405
    body = client.get("/metrics").text
    assert 'method="OTHER"' in body
    assert 'method="FOO"' not in body
    assert 'method="BAR"' not in body


def test_trailing_slash_redirect_is_relative(client: TestClient) -> None:
    response = client.get(
        "/items?limit=1", headers={"Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/items/?limit=1"
    item = create(client)
    response = client.get(f"/items/{item['id']}/", follow_redirects=False)
    assert response.headers["location"] == f"/items/{item['id']}"
    assert_problem(client.get("//evil.example/", follow_redirects=False), 404)
    assert_problem(client.get("/nowhere/", follow_redirects=False), 404)


def test_pool_capacity_is_what_the_pool_holds(client: TestClient, backend: str) -> None:
    body = client.get("/metrics").text
    line = next(
        line for line in body.splitlines() if line.startswith('items_db_pool_capacity{pool="read"}')
    )
    # SQLite pools are fixed at 4 + 4; a server database uses the pool settings (16 + 8).
    assert float(line.rsplit(" ", 1)[1]) == (8 if backend == "sqlite" else 24)


def test_openapi_documents_the_headers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    created = paths["/items/"]["post"]["responses"]["201"]["headers"]
    assert {"ETag", "Location", "Idempotent-Replayed", "X-Request-ID"} <= set(created)
    assert "Link" in paths["/items/"]["get"]["responses"]["200"]["headers"]
    assert "Retry-After" in paths["/items/{item_id}"]["get"]["responses"]["503"]["headers"]
    assert "ETag" in paths["/items/{item_id}"]["get"]["responses"]["304"]["headers"]
