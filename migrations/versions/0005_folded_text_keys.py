"""Folded keys for one collation rule on every backend (service.text_keys).

Adds items.name_key (NOT NULL, default '') and items.sku_key, fills them, indexes
(name_key, id) and makes sku_key unique; on MySQL/MariaDB the sku column becomes utf8mb4_bin
so its old unique index is no stricter than sku_key's. Expand-only: an older image keeps
working (its rows get an empty name_key until `items-service migrate` runs again, which
refills empty keys).

Rows that already hold SKUs equal under the new rule (possible on SQLite, whose uniqueness
was by bytes) keep their SKU; the later ones get no sku_key and a warning is logged.

Re-runnable: every step checks the schema first (SQLite's ALTER TABLE is used only for
ADD COLUMN and CREATE INDEX, so the table keeps AUTOINCREMENT).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from service.text_keys import NAME_KEY_MAX, SKU_KEY_MAX, backfill

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Checked by `items-service migrate --check`.
classification = "contract"
contract_reason = (
    "sku becomes utf8mb4_bin on MySQL/MariaDB: an older image's case-insensitive SKU "
    "uniqueness moves to sku_key, which it does not write, so it could store SKUs the new rule "
    "calls equal; roll back only to images that know sku_key"
)
# The rollback floor refuses this revision while an image that must keep working lacks these.
contract_needs = ("items.sku_key",)


def _binary(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in {"mysql", "mariadb"}


def _offline() -> bool:
    """The lint records the operations without a database: assume nothing is there yet."""
    return bool(op.get_context().as_sql)


def _sku_collation() -> str | None:
    if _offline():
        return None
    collation: str | None = op.get_bind().scalar(
        sa.text(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'items' AND COLUMN_NAME = 'sku'"
        )
    )
    return collation


def upgrade() -> None:
    offline = _offline()
    columns = (
        set()
        if offline
        else {column["name"] for column in sa.inspect(op.get_bind()).get_columns("items")}
    )
    if "name_key" not in columns:
        op.add_column(
            "items",
            sa.Column(
                "name_key", _binary(NAME_KEY_MAX), nullable=False, server_default=sa.text("''")
            ),
        )
    if "sku_key" not in columns:
        op.add_column("items", sa.Column("sku_key", _binary(SKU_KEY_MAX), nullable=True))
    if _is_mysql() and _sku_collation() != "utf8mb4_bin":
        op.alter_column(
            "items", "sku", type_=mysql.VARCHAR(64, collation="utf8mb4_bin"), existing_nullable=True
        )
    if not offline:
        backfill(op.get_bind())
    indexes = (
        set()
        if offline
        else {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("items")}
    )
    if "ix_items_name_key_id" not in indexes:
        op.create_index("ix_items_name_key_id", "items", ["name_key", "id"])
    if "uq_items_sku_key" not in indexes:
        op.create_index("uq_items_sku_key", "items", ["sku_key"], unique=True)


def downgrade() -> None:
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("items")}
    for name in ("uq_items_sku_key", "ix_items_name_key_id"):
        if name in indexes:
            op.drop_index(name, table_name="items")
    if _is_mysql() and _sku_collation() == "utf8mb4_bin":
        op.alter_column(
            "items",
            "sku",
            type_=mysql.VARCHAR(64, collation="utf8mb4_unicode_ci"),
            existing_nullable=True,
        )
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("items")}
    drop = [name for name in ("sku_key", "name_key") if name in columns]
    if drop:
        with op.batch_alter_table("items", table_kwargs={"sqlite_autoincrement": True}) as batch:
            for name in drop:
                batch.drop_column(name)
