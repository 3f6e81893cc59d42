"""Add an optional, unique SKU to items (expand: nullable, so older images keep working).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Checked by `items-service migrate --check`; a contract revision also sets contract_reason.
classification = "expand"


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        # SQLite cannot add a constraint in place: batch mode rebuilds the table.
        with op.batch_alter_table("items") as batch:
            batch.add_column(sa.Column("sku", sa.String(64), nullable=True))
            batch.create_unique_constraint("uq_items_sku", ["sku"])
        return
    # Two online statements, each skipped when already applied (migrations/online.py).
    op.add_column("items", sa.Column("sku", sa.String(64), nullable=True))
    op.create_unique_constraint("uq_items_sku", "items", ["sku"])


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("items") as batch:
            batch.drop_constraint("uq_items_sku", type_="unique")
            batch.drop_column("sku")
        return
    # Dropping the column drops its unique index with it, in one online statement.
    op.drop_column("items", "sku")
