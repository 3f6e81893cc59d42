# ruff: noqa: RUF001  (confusable characters are what this test is about)
"""The same requests on SQLite and on MariaDB give the same answers: search, name order and
SKU uniqueness follow one collation rule (service.text_keys), not each database's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from service.migrate import run_migrations
from tests.conftest import _empty_tables

pytestmark = pytest.mark.mysql

NAMES = [
    "Crème Brûlée",
    "creme brulee",
    "CREME BRULEE",
    "ｃｒｅｍｅ",
    "Zebra",
    "zebra",
    "Äpfel",
    "apfel",
    "Apfel",
    "ß-Straße",
    "SS-STRASSE",
    "Éclair",
    "eclair",
    "Ωmega",
    "ωmega",
    "naïve",
    "naive",
    "a b",
    "a",
    "a!",
    "ab",
    "日本語",
    "🚀 rocket",
    "İstanbul",
    "istanbul",
    "ﬁsh",
    "fish",
    "Ǆ",
    "ǆ",
    "Ⅻ",
    "12",
    "١٢",
]
SKUS = ["ab-1", "AB-1", "é-1", "e-1", "ǅ-2", "Ǆ-2", "ＡＢ-１", "x"]
QUERIES = [
    "creme",
    "CRÈME",
    "brûlée",
    "ｃｒｅｍｅ",
    "apfel",
    "äpfel",
    "strasse",
    "ß",
    "ss",
    "omega",
    "Ω",
    "naive",
    "ï",
    "a ",
    "a",
    "本",
    "🚀",
    "istanbul",
    "i̇",
    "fi",
    "ǆ",
    "xii",
    "%",
    "_",
    "12",
]


@pytest.fixture
def clients(mysql_url: str, tmp_path: Path) -> Iterator[dict[str, TestClient]]:
    sqlite = Settings(sqlite_path=tmp_path / "parity.db")
    run_migrations(sqlite)
    mysql = Settings(DATABASE_URL=mysql_url)
    _empty_tables(mysql)
    opened = {
        name: TestClient(create_app(settings, install_signal_hooks=False))
        for name, settings in (("sqlite", sqlite), ("mysql", mysql))
    }
    for client in opened.values():
        client.__enter__()
    yield opened
    for client in opened.values():
        client.__exit__(None, None, None)


def _both(clients: dict[str, TestClient], method: str, path: str, **kwargs: Any) -> list[Any]:
    return [clients[name].request(method, path, **kwargs) for name in ("sqlite", "mysql")]


def _walk(client: TestClient, **params: Any) -> list[str]:
    names: list[str] = []
    cursor = None
    for _ in range(100):
        page = client.get("/items/", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        names += [item["name"] for item in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return names
    raise AssertionError("the walk did not end")


def test_the_same_answers_on_both_backends(clients: dict[str, TestClient]) -> None:
    for name in NAMES:
        sqlite, mysql = _both(clients, "POST", "/items/", json={"name": name, "price": 1})
        assert sqlite.status_code == mysql.status_code == 201, (name, sqlite.text, mysql.text)
        assert sqlite.json()["name"] == mysql.json()["name"] == name
    sku_outcomes = {}
    for sku in SKUS:
        sqlite, mysql = _both(
            clients, "POST", "/items/", json={"name": f"sku {sku}", "price": 2, "sku": sku}
        )
        assert sqlite.status_code == mysql.status_code, (sku, sqlite.text, mysql.text)
        sku_outcomes[sku] = sqlite.status_code
    # Case folds (with NFKC); accents do not.
    assert sku_outcomes == {
        "ab-1": 201,
        "AB-1": 409,
        "é-1": 201,
        "e-1": 201,
        "ǅ-2": 201,
        "Ǆ-2": 409,
        "ＡＢ-１": 409,
        "x": 201,
    }
    for query in QUERIES:
        sqlite, mysql = (
            _walk(clients[name], q=query, sort="name", limit=7) for name in ("sqlite", "mysql")
        )
        assert sqlite == mysql, query
    for sort in ("name", "-name"):
        sqlite, mysql = (_walk(clients[name], sort=sort, limit=5) for name in ("sqlite", "mysql"))
        assert sqlite == mysql, sort
        assert len(sqlite) == len(NAMES) + 5
    # The rule itself, so "the same" is also "as documented".
    assert set(_walk(clients["mysql"], q="creme")) == {
        "Crème Brûlée",
        "creme brulee",
        "CREME BRULEE",
        "ｃｒｅｍｅ",
    }
    assert set(_walk(clients["sqlite"], q="strasse")) == {"ß-Straße", "SS-STRASSE"}
