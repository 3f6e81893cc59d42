"""Test-only revision (tests/operator/cluster/images): an expand step, table e2e_legacy.

items-service:e2e-floor-v1 reads the table (e2e_floor_legacy.py adds it to its models);
e2e-floor-v2 carries the same revision but no longer reads it; e2e-floor-v3 drops it.

Revision ID: e2efloor1
Revises: 0005 (the head of migrations/versions; tests/service/test_migrations.py checks)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2efloor1"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
classification = "expand"


def upgrade() -> None:
    op.create_table(
        "e2e_legacy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.String(64), nullable=True),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("e2e_legacy")
