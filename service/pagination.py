"""Keyset pagination: an opaque cursor holds the sort key and id of the last row served, so a
page never skips or repeats a row while others insert (unlike OFFSET)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.sql.expression import UnaryExpression

from service.models import Item


class SortOrder(StrEnum):
    ID = "id"
    ID_DESC = "-id"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    NAME = "name"
    NAME_DESC = "-name"
    PRICE = "price"
    PRICE_DESC = "-price"

    @property
    def field(self) -> str:
        return self.value.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


class InvalidCursorError(ValueError):
    """The cursor was not issued by this service, or not for this sort order."""


@dataclass(frozen=True)
class Cursor:
    sort: SortOrder
    last_value: str | None  # the sort key of the last row, as text; None when sorting by id
    last_id: int

    def encode(self) -> str:
        payload = json.dumps([self.sort.value, self.last_value, self.last_id],
                             separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, expected_sort: SortOrder) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            sort_value, last_value, last_id = json.loads(raw)
            sort = SortOrder(sort_value)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise InvalidCursorError("cursor is malformed; pass next_cursor unchanged") from None
        if sort is not expected_sort:
            raise InvalidCursorError(
                f"cursor was issued for sort={sort.value}, not sort={expected_sort.value}"
            )
        if not isinstance(last_id, int) or isinstance(last_id, bool):
            raise InvalidCursorError("cursor is malformed; pass next_cursor unchanged")
        if (last_value is None) != (sort.field == "id") or not (
            last_value is None or isinstance(last_value, str)
        ):
            raise InvalidCursorError("cursor is malformed; pass next_cursor unchanged")
        return cls(sort=sort, last_value=last_value, last_id=last_id)


def _column(sort: SortOrder) -> Any:
    return Item.__table__.c[sort.field]  # type: ignore[attr-defined]


def _typed_value(sort: SortOrder, text: str) -> object:
    try:
        if sort.field == "price":
            return Decimal(text)
        if sort.field == "created_at":
            return datetime.fromisoformat(text)
    except (InvalidOperation, ValueError):
        raise InvalidCursorError("cursor is malformed; pass next_cursor unchanged") from None
    return text


def order_by(sort: SortOrder) -> list[UnaryExpression[Any]]:
    id_column = Item.__table__.c.id  # type: ignore[attr-defined]
    if sort.field == "id":
        return [id_column.desc() if sort.descending else id_column.asc()]
    column = _column(sort)
    if sort.descending:
        return [column.desc(), id_column.desc()]
    return [column.asc(), id_column.asc()]


def after(cursor: Cursor) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the cursor's sort order."""
    id_column = Item.__table__.c.id  # type: ignore[attr-defined]
    if cursor.sort.field == "id":
        by_id: ColumnElement[bool] = (
            id_column < cursor.last_id if cursor.sort.descending else id_column > cursor.last_id
        )
        return by_id
    column = _column(cursor.sort)
    value = _typed_value(cursor.sort, cursor.last_value or "")
    condition: ColumnElement[bool]
    if cursor.sort.descending:
        condition = or_(column < value, and_(column == value, id_column < cursor.last_id))
    else:
        condition = or_(column > value, and_(column == value, id_column > cursor.last_id))
    return condition


def cursor_for(sort: SortOrder, row: Any) -> Cursor:
    if sort.field == "id":
        return Cursor(sort=sort, last_value=None, last_id=row.id)
    value = getattr(row, sort.field)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return Cursor(sort=sort, last_value=text, last_id=row.id)
