"""Keyset pagination: an opaque cursor holds the sort key and id of the last row served, so a
page never skips or repeats a row while others insert (unlike OFFSET).

Cursors are signed (HMAC-SHA256, truncated to 128 bits) with the key from
ITEMS_CURSOR_SECRET, else one generated once per database (service.crud.cursor_key): a
cursor that was not issued by a server sharing that key is refused before it is decoded, and
what a signed cursor holds is still checked against the sort order's type and range.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.sql.expression import UnaryExpression

from service.models import PRICE_MAX, Item
from service.text_keys import NAME_KEY_MAX

# A name key of NAME_KEY_MAX four-byte characters makes a cursor of about 3,800 characters.
CURSOR_MAX_CHARS = 4096
_MAC_BYTES = 16
_ID_MAX = 2**63 - 1
_MALFORMED = "cursor is malformed or was not issued by this service; pass next_cursor unchanged"


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

    @property
    def column_name(self) -> str:
        # Names sort by their folded key, the same way on every backend (service.text_keys).
        return "name_key" if self.field == "name" else self.field


class InvalidCursorError(ValueError):
    """The cursor was not issued by this service, or not for this sort order."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    if not text or not text.isascii():
        raise InvalidCursorError(_MALFORMED)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursorError(_MALFORMED) from None


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


@dataclass(frozen=True)
class Cursor:
    sort: SortOrder
    last_value: str | None  # the sort key of the last row, as text; None when sorting by id
    last_id: int

    def encode(self, key: bytes) -> str:
        payload = json.dumps(
            [self.sort.value, self.last_value, self.last_id],
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(_mac(key, payload))}"

    @classmethod
    def decode(cls, token: str, expected_sort: SortOrder, key: bytes) -> Cursor:
        if len(token) > CURSOR_MAX_CHARS or token.count(".") != 1:
            raise InvalidCursorError(_MALFORMED)
        encoded_payload, encoded_mac = token.split(".")
        payload, mac = _b64decode(encoded_payload), _b64decode(encoded_mac)
        if not hmac.compare_digest(mac, _mac(key, payload)):
            raise InvalidCursorError(_MALFORMED)
        try:
            sort_value, last_value, last_id = json.loads(payload)
            sort = SortOrder(sort_value)
        except (ValueError, TypeError):  # also UnicodeDecodeError and JSONDecodeError
            raise InvalidCursorError(_MALFORMED) from None
        if sort is not expected_sort:
            raise InvalidCursorError(
                f"cursor was issued for sort={sort.value}, not sort={expected_sort.value}"
            )
        cursor = cls(sort=sort, last_value=last_value, last_id=last_id)
        cursor.check()
        return cursor

    def check(self) -> None:
        """The cursor's values have the sort key's type and range (defence in depth)."""
        if (
            not isinstance(self.last_id, int)
            or isinstance(self.last_id, bool)
            or not (0 <= self.last_id <= _ID_MAX)
        ):
            raise InvalidCursorError(_MALFORMED)
        if self.sort.field == "id":
            if self.last_value is not None:
                raise InvalidCursorError(_MALFORMED)
            return
        if not isinstance(self.last_value, str) or len(self.last_value) > NAME_KEY_MAX:
            raise InvalidCursorError(_MALFORMED)
        typed_value(self.sort, self.last_value)


def _column(sort: SortOrder) -> Any:
    return Item.__table__.c[sort.column_name]  # type: ignore[attr-defined]


def typed_value(sort: SortOrder, text: str) -> object:
    try:
        if sort.field == "price":
            price = Decimal(text)
            if not (price.is_finite() and 0 <= price <= PRICE_MAX):
                raise InvalidCursorError(_MALFORMED)
            return price
        if sort.field == "created_at":
            return datetime.fromisoformat(text)
    except (InvalidOperation, ValueError):
        raise InvalidCursorError(_MALFORMED) from None
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
    value = typed_value(cursor.sort, cursor.last_value or "")
    condition: ColumnElement[bool]
    if cursor.sort.descending:
        condition = or_(column < value, and_(column == value, id_column < cursor.last_id))
    else:
        condition = or_(column > value, and_(column == value, id_column > cursor.last_id))
    return condition


def cursor_for(sort: SortOrder, row: Any) -> Cursor:
    if sort.field == "id":
        return Cursor(sort=sort, last_value=None, last_id=row.id)
    value = getattr(row, sort.column_name)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return Cursor(sort=sort, last_value=text, last_id=row.id)
