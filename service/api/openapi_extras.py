"""What FastAPI does not put in the OpenAPI document by itself: the bearer scheme and the
response headers clients rely on (ETag, Location, Link, Idempotent-Replayed, Retry-After,
WWW-Authenticate, Allow, X-Request-ID)."""

from __future__ import annotations

from typing import Any

_STRING = {"schema": {"type": "string"}}
_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {"description": 'The item\'s version as a strong entity tag, e.g. "v3".', **_STRING},
    "Location": {"description": "The created item's path.", **_STRING},
    "Link": {"description": 'The next page: <...>; rel="next".', **_STRING},
    "Idempotent-Replayed": {
        "description": "true when this answer replays an earlier request "
        "with the same Idempotency-Key.",
        **_STRING,
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", **_STRING},
    "WWW-Authenticate": {"description": "The bearer challenge (RFC 6750).", **_STRING},
    "Allow": {"description": "The methods the resource supports.", **_STRING},
    "X-Request-ID": {
        "description": "The request's id, as sent or generated; logs carry it.",
        **_STRING,
    },
}
# Which headers each answer carries, by (method, status); X-Request-ID is on every answer.
_BY_STATUS: dict[str, list[str]] = {
    "200": ["ETag"],
    "201": ["ETag", "Location", "Idempotent-Replayed"],
    "304": ["ETag"],
    "401": ["WWW-Authenticate"],
    "400": ["WWW-Authenticate"],
    "405": ["Allow"],
    "409": ["Retry-After", "Idempotent-Replayed"],
    "503": ["Retry-After"],
}
_READS = {"get", "head"}


def _links(schema: dict[str, Any]) -> None:
    """OpenAPI links from every answer that carries an item to what can be done with it next,
    so clients (and schemathesis' stateful mode) can follow create -> read -> change -> delete."""
    by_item = schema.get("paths", {}).get("/items/{item_id}", {})
    targets = {method: operation.get("operationId") for method, operation in by_item.items()}
    links = {
        f"{method.capitalize()}Item": {
            "operationId": operation_id,
            "parameters": {"item_id": "$response.body#/id"},
        }
        for method, operation_id in targets.items()
        if operation_id
    }
    sources = [
        ("/items/", "post", "201"),
        ("/items/{item_id}", "get", "200"),
        ("/items/{item_id}", "put", "200"),
        ("/items/{item_id}", "patch", "200"),
    ]
    for path, method, status in sources:
        response = schema.get("paths", {}).get(path, {}).get(method, {}).get("responses", {})
        if status in response:
            response[status]["links"] = links


def document(schema: dict[str, Any], *, protected: bool, protect_reads: bool) -> None:
    _links(schema)
    if protected:
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith("/items") and protected and (method not in _READS or protect_reads):
                operation["security"] = [{"bearerAuth": []}]
            for status, response in operation.get("responses", {}).items():
                names = ["X-Request-ID", *_BY_STATUS.get(status, [])]
                if status == "200" and path == "/items/" and method == "get":
                    names = ["X-Request-ID", "Link"]
                response.setdefault("headers", {}).update({name: _HEADERS[name] for name in names})
