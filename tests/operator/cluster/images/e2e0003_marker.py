"""Test-only revision (tests/operator/cluster/images): a marker table, so "v2" has a real migration.

Revision ID: e2e0003
Revises: 0005 (the head of migrations/versions; tests/service/test_migrations.py checks)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2e0003"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("e2e_marker", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("e2e_marker")
