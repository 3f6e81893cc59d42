"""Where the database schema stands against the migrations this image carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@dataclass(frozen=True)
class KnownRevisions:
    head: str
    all: frozenset[str]


@lru_cache
def known_revisions() -> KnownRevisions:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return KnownRevisions(head=head, all=frozenset(rev.revision for rev in script.walk_revisions()))


class SchemaState(StrEnum):
    AT_HEAD = "at_head"
    AHEAD = "ahead"  # a newer image migrated it: still compatible by the expand/contract rule
    BEHIND = "behind"
    UNMIGRATED = "unmigrated"


def classify(current: str | None, known: KnownRevisions) -> SchemaState:
    if current is None:
        return SchemaState.UNMIGRATED
    if current == known.head:
        return SchemaState.AT_HEAD
    if current in known.all:
        return SchemaState.BEHIND
    return SchemaState.AHEAD


async def current_revision(conn: AsyncConnection) -> str | None:
    try:
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        # A missing table means nothing was migrated yet; anything else is a real failure.
        if _is_missing_table(exc):
            return None
        raise
    revisions = [row[0] for row in result]
    if len(revisions) != 1:
        return None if not revisions else ",".join(sorted(revisions))
    return str(revisions[0])


def _is_missing_table(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    code = getattr(exc.orig, "args", (None,))[0]
    return code == 1146 or "no such table" in message or "doesn't exist" in message
