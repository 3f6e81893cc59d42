"""Test-only revision (tests/operator/cluster/images): fails before changing anything.

Revision ID: e2e0004
Revises: e2e0003
"""

from collections.abc import Sequence

revision: str = "e2e0004"
down_revision: str | None = "e2e0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    raise RuntimeError("e2e: this migration fails on purpose")


def downgrade() -> None:
    pass
