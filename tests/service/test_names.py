"""Names and SKUs are labels people read: trimmed before the length check, something visible,
no bidirectional overrides."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.service.test_items_api import assert_problem, create


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",
        "\u200b\u200c\u200d",
        "\ufeff",
        "\u2060",
        "\u3164",
        "\u2800\u2800",
        "\u00a0\u200b",
        "\u0301",
        "\u180e",
    ],
)
def test_invisible_only_names_are_refused(client: TestClient, name: str) -> None:
    body = assert_problem(client.post("/items/", json={"name": name, "price": 1}), 422)
    assert body["errors"][0]["field"] == "body.name"
    assert_problem(client.post("/items/", json={"name": "n", "price": 1, "sku": name}), 422)


@pytest.mark.parametrize("name", ["abc\u202eexe.txt", "\u2066x\u2069", "a\u202ab", "x\u2068y"])
def test_bidi_overrides_are_refused(client: TestClient, name: str) -> None:
    assert_problem(client.post("/items/", json={"name": name, "price": 1}), 422)
    item = create(client)
    assert_problem(client.patch(f"/items/{item['id']}", json={"name": name}), 422)
    assert_problem(client.patch(f"/items/{item['id']}", json={"sku": name}), 422)


@pytest.mark.parametrize("name", ["שלום", "مرحبا", "a\u200fb", "e\u0301", "👩\u200d💻", "١٢٣"])
def test_right_to_left_and_joined_text_is_fine(client: TestClient, name: str) -> None:
    assert create(client, name=name)["name"] == name


def test_length_is_checked_after_trimming(client: TestClient) -> None:
    padded = "  " + "n" * 255 + "  "
    assert create(client, name=padded)["name"] == "n" * 255
    assert create(client, sku=" " + "S" * 64 + " ")["sku"] == "S" * 64
    assert_problem(client.post("/items/", json={"name": "n" * 256, "price": 1}), 422)
