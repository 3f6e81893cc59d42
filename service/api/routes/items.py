"""/items: create, read, replace, patch, delete and list items."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import Field as Constraint
from pydantic import WithJsonSchema
from sqlalchemy.engine import RowMapping

from service import crud, idempotency, pagination
from service.api import conditions, replay
from service.api.deps import engines_of, settings_of
from service.api.etags import etag_for
from service.api.json_body import JSONRoute
from service.api.problems import ProblemError, problem_responses
from service.core.db import Engines
from service.models import (
    PRICE_DIGITS,
    PRICE_MAX,
    ItemCreate,
    ItemPublic,
    ItemReplace,
    ItemsPublic,
    ItemUpdate,
)

router = APIRouter(prefix="/items", tags=["items"], route_class=JSONRoute)

QueryPrice = Annotated[
    Decimal,
    Constraint(ge=0, max_digits=PRICE_DIGITS, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(
        {"type": "number", "minimum": 0, "maximum": float(PRICE_MAX), "multipleOf": 0.01}
    ),
]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The item's id.")]
IfMatch = Annotated[
    str | None,
    Header(description='ETag from a previous response (e.g. "v3"), or *; a stale one gets 412.'),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        description="Entity tags, or *: on GET a match gets 304; on a write a match (or *, "
        "since the item exists) gets 412."
    ),
]
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
JSON = "application/json"
CREATE_RESPONSES = problem_responses(400, 401, 409, 413, 415, 422, 503)
LIST_RESPONSES = problem_responses(400, 401, 422, 503)
READ_RESPONSES = {
    304: {"description": "If-None-Match names the current version"},
    **problem_responses(400, 401, 404, 412, 422, 503),
}
WRITE_RESPONSES = problem_responses(400, 401, 404, 409, 412, 413, 415, 422, 428, 503)
DELETE_RESPONSES = problem_responses(400, 401, 404, 412, 422, 428, 503)


def to_public(row: Mapping[str, Any] | RowMapping) -> ItemPublic:
    # Built without re-validation: the row was validated on the way in. MySQL returns
    # BOOLEAN as 0/1 and DATETIME without a zone; normalise both.
    created_at: datetime = row["created_at"]
    updated_at: datetime = row["updated_at"]
    return ItemPublic.model_construct(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        in_stock=bool(row["in_stock"]),
        sku=row["sku"],
        version=row["version"],
        created_at=created_at.replace(tzinfo=UTC),
        updated_at=updated_at.replace(tzinfo=UTC),
    )


def item_response(
    item: ItemPublic, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        item.model_dump_json(),
        status_code=status_code,
        media_type=JSON,
        headers={"ETag": etag_for(item.version), **(headers or {})},
    )


def _not_found(item_id: int) -> ProblemError:
    return ProblemError(404, f"item {item_id} does not exist", problem="not-found")


def _stale(item_id: int) -> ProblemError:
    return ProblemError(
        412,
        f"item {item_id} does not meet If-Match / If-None-Match (it "
        "changed since that ETag); fetch it and retry",
        problem="stale-version",
    )


def _sku_conflict() -> ProblemError:
    return ProblemError(409, "another item already has this sku", problem="sku-conflict")


@router.post("/", status_code=201, response_model=ItemPublic, responses=CREATE_RESPONSES)
async def create_item(
    request: Request,
    item_in: ItemCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Makes retries safe: a repeat with the same key and body returns the "
            "original response instead of creating another item.",
        ),
    ] = None,
) -> Response:
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ProblemError(
            400,
            "Idempotency-Key must be 1..255 visible ASCII characters",
            problem="bad-idempotency-key",
        )
    engines = engines_of(request)

    async def insert(store: replay.Store | None) -> ItemPublic:
        try:
            async with engines.write.begin() as conn:
                item = to_public(await crud.create_item(conn=conn, item_in=item_in))
                if store is not None:
                    await store(conn, item)
        except crud.SkuConflictError:
            raise _sku_conflict() from None
        return item

    if idempotency_key is None:
        item = await insert(None)
    else:
        result = await replay.create_once(
            request,
            engines,
            key=idempotency_key,
            fingerprint=idempotency.request_fingerprint(item_in.model_dump_json().encode()),
            ttl_seconds=settings_of(request).idempotency_key_ttl_seconds,
            insert=insert,
            respond=item_response,
        )
        if isinstance(result, Response):
            return result
        item = result
    return item_response(item, 201, {"Location": f"/items/{item.id}"})


async def _cursor_key(request: Request, engines: Engines) -> bytes:
    key: bytes | None = request.app.state.cursor_key
    if key is None:  # fetched once per process, on first use (start-up needs no database)
        key = request.app.state.cursor_key = await crud.shared_secret(
            engines.write, crud.CURSOR_KEY
        )
    return key


@router.get("/", response_model=ItemsPublic, responses=LIST_RESPONSES)
async def list_items(
    request: Request,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=1000,
            description="Page size: default ITEMS_PAGE_SIZE_DEFAULT (50); values above "
            "ITEMS_PAGE_SIZE_MAX (200) are reduced to it.",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page, unchanged; anything else is a 400.",
            json_schema_extra={"maxLength": pagination.CURSOR_MAX_CHARS},
        ),
    ] = None,
    sort: Annotated[pagination.SortOrder, Query(description="Sort key; - for descending.")] = (
        pagination.SortOrder.ID
    ),
    in_stock: Annotated[bool | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$", description="Name contains (any case)."
        ),
    ] = None,
    min_price: Annotated[QueryPrice | None, Query(description="Lowest price, inclusive.")] = None,
    max_price: Annotated[QueryPrice | None, Query(description="Highest price, inclusive.")] = None,
) -> Response:
    engines, settings = engines_of(request), settings_of(request)
    page_size = min(limit or settings.page_size_default, settings.page_size_max)
    key = await _cursor_key(request, engines)
    try:
        after = pagination.Cursor.decode(cursor, sort, key) if cursor else None
    except pagination.InvalidCursorError as exc:
        raise ProblemError(400, str(exc), problem="bad-cursor") from None
    filters = crud.ListFilters(
        in_stock=in_stock, name_contains=q, min_price=min_price, max_price=max_price
    )
    rows, next_cursor = await crud.read_retrying(
        engines.read,
        lambda conn: crud.list_items(
            conn, filters=filters, sort=sort, cursor=after, limit=page_size
        ),
    )
    page = ItemsPublic.model_construct(
        data=[to_public(row._mapping) for row in rows],
        count=len(rows),
        next_cursor=next_cursor.encode(key) if next_cursor else None,
    )
    headers: dict[str, str] = {}
    if page.next_cursor:
        next_url = request.url.include_query_params(cursor=page.next_cursor, limit=page_size)
        headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return Response(page.model_dump_json(), media_type=JSON, headers=headers)


@router.get("/{item_id}", response_model=ItemPublic, responses=READ_RESPONSES)
async def read_item(
    request: Request,
    item_id: ItemId,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    preconditions = conditions.for_read(if_match, if_none_match)
    row = await crud.read_retrying(
        engines_of(request).read, lambda conn: crud.find_item(conn, item_id)
    )
    if row is None:
        raise _not_found(item_id)
    item = to_public(row._mapping)
    outcome = preconditions.outcome(item.version)
    if outcome == 412:
        raise _stale(item_id)
    if outcome == 304:
        return Response(status_code=304, headers={"ETag": etag_for(item.version)})
    return item_response(item)


async def _write(
    engines: Engines, item_id: int, changes: dict[str, Any], preconditions: conditions.Conditions
) -> Response:
    try:
        async with engines.write.begin() as conn:
            if not changes or preconditions.refuses_any_version:
                # Nothing to write (or nothing may be): answer from the current row.
                row = await crud.get_item(conn=conn, item_id=item_id)
                if row is None:
                    raise _not_found(item_id)
                if not preconditions.write_allowed(row.version) or (
                    preconditions.refuses_any_version
                ):
                    raise _stale(item_id)
                return item_response(to_public(row._mapping))
            result = await crud.update_item(
                conn=conn,
                item_id=item_id,
                changes=changes,
                expected_versions=preconditions.expected_versions,
                excluded_versions=preconditions.excluded_versions,
            )
    except crud.SkuConflictError:
        raise _sku_conflict() from None
    if result.outcome is crud.WriteOutcome.NOT_FOUND:
        raise _not_found(item_id)
    if result.outcome is crud.WriteOutcome.VERSION_MISMATCH:
        raise _stale(item_id)
    assert result.row is not None
    return item_response(to_public(result.row._mapping))


def _write_conditions(
    request: Request, if_match: str | None, if_none_match: str | None
) -> conditions.Conditions:
    return conditions.for_write(
        if_match, if_none_match, require_if_match=settings_of(request).require_if_match
    )


@router.put("/{item_id}", response_model=ItemPublic, responses=WRITE_RESPONSES)
async def replace_item(
    request: Request,
    item_id: ItemId,
    item_in: ItemReplace,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    preconditions = _write_conditions(request, if_match, if_none_match)
    return await _write(engines_of(request), item_id, item_in.model_dump(), preconditions)


@router.patch("/{item_id}", response_model=ItemPublic, responses=WRITE_RESPONSES)
async def update_item(
    request: Request,
    item_id: ItemId,
    item_in: ItemUpdate,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    preconditions = _write_conditions(request, if_match, if_none_match)
    return await _write(engines_of(request), item_id, crud.patch_changes(item_in), preconditions)


@router.delete("/{item_id}", status_code=204, responses=DELETE_RESPONSES)
async def delete_item(
    request: Request,
    item_id: ItemId,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    preconditions = _write_conditions(request, if_match, if_none_match)
    async with engines_of(request).write.begin() as conn:
        if preconditions.refuses_any_version:
            row = await crud.get_item(conn=conn, item_id=item_id)
            raise _not_found(item_id) if row is None else _stale(item_id)
        result = await crud.delete_item(
            conn=conn,
            item_id=item_id,
            expected_versions=preconditions.expected_versions,
            excluded_versions=preconditions.excluded_versions,
        )
    if result.outcome is crud.WriteOutcome.NOT_FOUND:
        raise _not_found(item_id)
    if result.outcome is crud.WriteOutcome.VERSION_MISMATCH:
        raise _stale(item_id)
    return Response(status_code=204)
