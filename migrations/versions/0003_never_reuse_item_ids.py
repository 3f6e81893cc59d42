"""Never reuse item ids: AUTOINCREMENT on SQLite (a no-op on MySQL/MariaDB).

SQLite's default rowid allocation hands out max(id) + 1, so deleting the newest item and
creating another gave the new item the old id, and a stale ETag could match it. AUTOINCREMENT
keeps the high-water mark in sqlite_sequence. InnoDB's counter is never lowered by deletes
and is persisted across restarts since MariaDB 10.2.4 and MySQL 8.0, so nothing changes there.

Re-runnable: the table is rebuilt only when its DDL lacks AUTOINCREMENT.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Checked by `items-service migrate --check`; a contract revision also sets contract_reason.
classification = "expand"


def _sqlite_autoincrement() -> bool | None:
    """None off SQLite; else whether the items table already uses AUTOINCREMENT."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    ddl = bind.scalar(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'")
    )
    return "AUTOINCREMENT" in str(ddl or "").upper()


def upgrade() -> None:
    if _sqlite_autoincrement() is False:
        # The copy keeps every id; SQLite then starts sqlite_sequence at max(id).
        with op.batch_alter_table(
            "items", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    if _sqlite_autoincrement() is True:
        with op.batch_alter_table(
            "items", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
