"""`items-service migrate`: alembic upgrade head, serialised across concurrent runs.

MySQL commits each DDL statement on its own, so two runs interleaving would leave a half-built
schema. A named advisory lock (GET_LOCK) held on the migrating connection prevents that; the
second run waits, then finds nothing left to do.
"""

from __future__ import annotations

from alembic import command
from alembic.runtime.migration import MigrationContext
from loguru import logger
from sqlalchemy import Connection, create_engine, pool, text

from service import schema, text_keys
from service.core.config import Settings
from service.core.db import sync_url

LOCK_NAME = "items-platform.migrate"


class MigrationError(RuntimeError):
    pass


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def run_migrations(settings: Settings, *, lock_timeout_seconds: int = 600) -> str:
    """Upgrade to this image's head; return the revision the database ends at."""
    url = sync_url(settings)
    engine = create_engine(url, poolclass=pool.NullPool)
    known = schema.known_revisions()
    is_mysql = url.get_backend_name() in {"mysql", "mariadb"}
    try:
        with engine.connect() as conn:
            if is_mysql:
                logger.info("waiting for the migration lock", lock=LOCK_NAME)
                acquired = conn.scalar(text("SELECT GET_LOCK(:name, :timeout)"),
                                       {"name": LOCK_NAME, "timeout": lock_timeout_seconds})
                if acquired != 1:
                    raise MigrationError(
                        f"could not take the migration lock within {lock_timeout_seconds}s; "
                        "another migration is still running")
            try:
                before = _revision(conn)
                state = schema.classify(before, known)
                logger.info("schema before migration", revision=before or "none",
                            image_head=known.head, state=state.value)
                if state is schema.SchemaState.AHEAD:
                    # A newer image migrated already; expand-only changes keep us compatible.
                    logger.info("nothing to do: the schema is newer than this image",
                                revision=before, image_head=known.head)
                    return before or ""
                config = schema.alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                # Rows an older image wrote during a rollout have no folded keys yet.
                refilled = text_keys.backfill(conn)
                conn.commit()
                if refilled:
                    logger.info("filled folded keys", rows=refilled)
                after = _revision(conn)
                logger.info("schema after migration", revision=after or "none",
                            changed=before != after)
                return after or ""
            finally:
                if is_mysql:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    finally:
        engine.dispose()
