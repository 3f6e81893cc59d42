"""The item model chain: field rules live once, in ItemBase; the table and the API views
derive from it (create, full replace, partial update, public, page)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)
from pydantic import Field as Constraint
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

from service import text_keys

NAME_MAX = 255
DESCRIPTION_MAX = 2000
SKU_MAX = 64
# 12 digits keep every price exact through a JSON number: doubles carry 15 significant digits.
PRICE_DIGITS = 12
PRICE_PLACES = 2

_LINE_CONTROLS_ALLOWED = {"\t", "\n", "\r"}


def _check_text(value: str, *, multiline: bool) -> str:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc" and not (multiline and char in _LINE_CONTROLS_ALLOWED):
            raise ValueError(f"control character U+{ord(char):04X} is not allowed")
        if category == "Cs":
            raise ValueError("lone surrogate code points are not valid text")
    return value


# Bidirectional embeddings, overrides and isolates reorder the text around them ("Trojan
# Source"): a name is shown to people, so they are refused. LRM/RLM marks are allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that render as blank space although their category says otherwise.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp", "Mn", "Me"})


def _visible(char: str) -> bool:
    return char not in _BLANK_GLYPHS and unicodedata.category(char) not in _INVISIBLE_CATEGORIES


def _strip(value: object) -> object:
    # Before the length check: "  name  " is a 4-character name.
    return value.strip() if isinstance(value, str) else value


def _check_label(value: str) -> str:
    """A short label shown to people: no controls, no bidi controls, something visible."""
    value = _check_text(value, multiline=False)
    if any(char in _BIDI_CONTROLS for char in value):
        raise ValueError("bidirectional override and isolate characters are not allowed")
    if not any(_visible(char) for char in value):
        raise ValueError("must contain a visible character")
    return value


def _clean_name(value: str) -> str:
    if not value:
        raise ValueError("must not be empty or only whitespace")
    return _check_label(value)


def _clean_description(value: str) -> str:
    return _check_text(value, multiline=True)


def _clean_sku(value: str | None) -> str | None:
    if value is None:
        return None
    if not value:
        raise ValueError("must not be empty; omit it or send null for no SKU")
    return _check_label(value)


# The patterns mirror the validators for clients and the OpenAPI document: no control
# characters, and at least one visible character where the value is trimmed.
_NO_CONTROLS = r"[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
_LINE_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_VISIBLE = r"[^\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
_TRIMMED_TEXT = rf"^{_NO_CONTROLS}*{_VISIBLE}{_NO_CONTROLS}*$"

# The documented patterns approximate the rules: a regex cannot say "a visible character" by
# Unicode category, so a name of only, say, U+2800 matches the pattern and still gets a 422.
Name = Annotated[
    str,
    BeforeValidator(_strip),
    Constraint(min_length=1, max_length=NAME_MAX, pattern=_TRIMMED_TEXT),
    AfterValidator(_clean_name),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": _TRIMMED_TEXT}
    ),
]
Description = Annotated[
    str,
    Constraint(max_length=DESCRIPTION_MAX, pattern=_LINE_TEXT),
    AfterValidator(_clean_description),
]
# The constraints sit on the str arm: on the union they would be applied to None too.
_SkuText = Annotated[
    str,
    BeforeValidator(_strip),
    Constraint(max_length=SKU_MAX, pattern=_TRIMMED_TEXT),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": SKU_MAX, "pattern": _TRIMMED_TEXT}
    ),
]
Sku = Annotated[_SkuText | None, AfterValidator(_clean_sku)]
# A JSON number on the way out: exact, because PRICE_DIGITS stays under a double's precision.
PRICE_MAX = Decimal("9999999999.99")


def _number_only(value: object) -> object:
    # JSON numbers only: a string or a boolean is a client bug, not a price.
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, e.g. 19.99")
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_number_only),
    Constraint(ge=0, max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(PRICE_MAX),
            "multipleOf": 0.01,
            "examples": [19.99],
        }
    ),
]
InStock = Annotated[bool, Constraint(strict=True)]


class ItemBase(SQLModel):
    name: Name = Field(description="Display name, 1..255 characters after trimming.")
    description: Description = Field(default="", description="Free text, at most 2000 characters.")
    price: Price = Field(description="Price, >= 0, at most two decimal places; stored exactly.")
    in_stock: InStock = Field(default=True)
    sku: Sku = Field(default=None, description="Optional stock-keeping unit, unique when set.")


class ItemCreate(ItemBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class ItemReplace(ItemCreate):
    """PUT body: the whole item; omitted optional fields return to their defaults."""


class ItemUpdate(SQLModel):
    """PATCH body: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    # Omitted means "unchanged"; null is refused, and the schema says so (SkipJsonSchema).
    name: Name | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    price: Price | SkipJsonSchema[None] = None
    in_stock: InStock | SkipJsonSchema[None] = None
    sku: Sku = None

    @field_validator("name", "description", "price", "in_stock", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be omitted but not null")
        return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def _binary(length: int) -> String:
    return String(length).with_variant(
        mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb"
    )


class Item(ItemBase, table=True):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_in_stock_id", "in_stock", "id"),
        Index("ix_items_price_id", "price", "id"),
        Index("ix_items_name_id", "name", "id"),
        Index("ix_items_created_at_id", "created_at", "id"),
        Index("ix_items_name_key_id", "name_key", "id"),
        UniqueConstraint("sku", name="uq_items_sku"),
        Index("uq_items_sku_key", "sku_key", unique=True),
        # AUTOINCREMENT: SQLite otherwise hands a deleted newest id out again, and an ETag
        # ("v1") of the deleted item would then match a different item (migration 0003).
        {
            "mysql_engine": "InnoDB",
            "mysql_charset": "utf8mb4",
            "mysql_collate": "utf8mb4_unicode_ci",
            "sqlite_autoincrement": True,
        },
    )

    id: int | None = Field(
        default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True)
    )
    name: str = Field(sa_column=Column(String(NAME_MAX), nullable=False))
    description: str = Field(default="", sa_column=Column(String(DESCRIPTION_MAX), nullable=False))
    price: Decimal = Field(sa_column=Column(Numeric(PRICE_DIGITS, PRICE_PLACES), nullable=False))
    in_stock: bool = Field(default=True, nullable=False)
    # Binary on MySQL too, as on SQLite: sku_key carries the case-insensitive uniqueness.
    sku: str | None = Field(default=None, sa_column=Column(_binary(SKU_MAX), nullable=True))
    # Folded keys the service writes with every change (service.text_keys): q, sort=name and
    # SKU uniqueness compare these, as code points, on every backend.
    name_key: str = Field(
        default="",
        sa_column=Column(
            _binary(text_keys.NAME_KEY_MAX), nullable=False, server_default=text("''")
        ),
    )
    sku_key: str | None = Field(
        default=None, sa_column=Column(_binary(text_keys.SKU_KEY_MAX), nullable=True)
    )
    created_at: datetime = Field(
        sa_column=Column(
            _DATETIME6 := DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
            nullable=False,
        )
    )
    updated_at: datetime = Field(sa_column=Column(_DATETIME6, nullable=False))
    version: int = Field(default=1, nullable=False)


class ItemPublic(ItemBase):
    id: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int = Field(description="Increases by one on every change; the ETag carries it.")


class ItemsPublic(SQLModel):
    data: list[ItemPublic]
    count: int = Field(description="Number of items in this page.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class IdempotencyRecord(SQLModel, table=True):
    """The stored outcome of a POST made with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"},
    )

    key: str = Field(sa_column=Column(String(255), primary_key=True))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    status_code: int = Field(nullable=False)
    item_id: int = Field(nullable=False)
    response_body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        sa_column=Column(
            DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False
        )
    )


class ServiceSecret(SQLModel, table=True):
    """Keys the service generates once per database and shares across its processes."""

    __tablename__ = "service_secrets"
    __table_args__ = (
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"},
    )

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    secret: str = Field(sa_column=Column(String(128), nullable=False))
