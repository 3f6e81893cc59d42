"""Test-only revision (tests/operator/cluster/images): a contract step, drops e2e_legacy.

The rollback floor refuses it while the rollback target (or a serving image) still reads the
table, e.g. items-service:e2e-floor-v1; once e2e-floor-v2 (which no longer reads it) is the last
good release, it runs.

Revision ID: e2efloor2
Revises: e2efloor1
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e2efloor2"
down_revision: str | None = "e2efloor1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
classification = "contract"
contract_reason = (
    "drops table e2e_legacy: only images up to e2e-floor-v1 read it; release e2e-floor-v2 first"
)


def upgrade() -> None:
    op.drop_table("e2e_legacy")


def downgrade() -> None:
    op.create_table(
        "e2e_legacy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.String(64), nullable=True),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
