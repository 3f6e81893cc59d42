"""Bodies: prices parsed exactly from the JSON text, JSON media types only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tests.service.test_items_api import assert_problem

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "price",
    [
        "19.999",
        "1.0000000000000001",
        "19.999999999999999",
        "0.001",
        "1e-7",
        "12345678901.5",
        "99999999999.99",
        "1e999999",
    ],
)
def test_excess_digits_are_refused_not_rounded(client: TestClient, price: str) -> None:
    response = client.post("/items/", content=f'{{"name":"p","price":{price}}}', headers=JSON)
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "body.price"
    patched = client.post("/items/", json={"name": "p", "price": 1}).json()
    response = client.patch(f"/items/{patched['id']}", content=f'{{"price":{price}}}', headers=JSON)
    assert_problem(response, 422)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("19.990", "19.99"),
        ("1E+2", "100"),
        ("0.10", "0.1"),
        ("7", "7"),
        ("0e5", "0"),
    ],
)
def test_exact_forms_of_two_places_are_accepted(client: TestClient, sent: str, stored: str) -> None:
    response = client.post("/items/", content=f'{{"name":"p","price":{sent}}}', headers=JSON)
    assert response.status_code == 201, response.text
    assert Decimal(str(response.json()["price"])) == Decimal(stored)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(client: TestClient, constant: str) -> None:
    response = client.post("/items/", content=f'{{"name":"p","price":{constant}}}', headers=JSON)
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
    ],
)
def test_non_json_bodies_get_415(client: TestClient, content_type: str) -> None:
    body = b'{"name":"p","price":1}'
    response = client.post("/items/", content=body, headers={"content-type": content_type})
    assert_problem(response, 415)
    assert response.headers["accept"] == "application/json"
    item = client.post("/items/", json={"name": "p", "price": 1}).json()
    for method in ("PUT", "PATCH"):
        response = client.request(
            method, f"/items/{item['id']}", content=body, headers={"content-type": content_type}
        )
        assert_problem(response, 415)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/items/", content=b'{"name":"p","price":1.5}', headers={"content-type": content_type}
    )
    assert response.status_code == 201, response.text
