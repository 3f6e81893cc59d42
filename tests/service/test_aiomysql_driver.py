"""ITEMS_DB_ASYNC_DRIVER=aiomysql (docs/configuration.md): installed by the `aiomysql` extra (in
the dev group), and the request path works on it against MariaDB, reads and writes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app

pytestmark = pytest.mark.mysql


def test_the_request_path_serves_on_aiomysql(mysql_url: str) -> None:
    settings = Settings(DATABASE_URL=mysql_url, db_async_driver="aiomysql")
    with TestClient(create_app(settings, install_signal_hooks=False)) as client:
        assert client.get("/readyz").status_code == 200
        created = client.post("/items/", json={"name": "on aiomysql", "price": 3.25})
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        fetched = client.get(f"/items/{item_id}")
        assert fetched.status_code == 200
        assert fetched.json()["price"] == 3.25
        listed = client.get("/items/", params={"q": "aiomysql"})
        assert item_id in [item["id"] for item in listed.json()["data"]]
        assert (
            client.delete(
                f"/items/{item_id}", headers={"If-Match": fetched.headers["ETag"]}
            ).status_code
            == 204
        )
