"""A table for keys generated once per database (the cursor signing key).

Re-runnable: the table is created only when it is missing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Checked by `items-service migrate --check`; a contract revision also sets contract_reason.
classification = "expand"


def _exists() -> bool:
    if op.get_context().as_sql:  # offline (the lint records the operations): assume nothing
        return False
    return "service_secrets" in sa.inspect(op.get_bind()).get_table_names()


def upgrade() -> None:
    if not _exists():
        op.create_table(
            "service_secrets",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("secret", sa.String(128), nullable=False),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_bin",
        )


def downgrade() -> None:
    if _exists():
        op.drop_table("service_secrets")
