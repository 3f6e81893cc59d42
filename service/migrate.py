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
from sqlalchemy.exc import OperationalError

from service import schema, text_keys
from service.core.config import Settings
from service.core.db import sync_url

LOCK_NAME = "items-platform.migrate"
ER_LOCK_WAIT_TIMEOUT = 1205
NOT_ONLINE_ERRORS = frozenset({1845, 1846})
RERUN = "nothing is half-done: re-running `items-service migrate` continues where this one stopped"


class MigrationError(RuntimeError):
    pass


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _explain(error: OperationalError, settings: Settings) -> MigrationError | None:
    code = error.orig.args[0] if error.orig is not None and error.orig.args else None
    if code == ER_LOCK_WAIT_TIMEOUT:
        return MigrationError(
            "a DDL statement waited ITEMS_MIGRATION_LOCK_WAIT_TIMEOUT_SECONDS="
            f"{settings.migration_lock_wait_timeout_seconds}s for a table's metadata lock: a long "
            "transaction holds it (see information_schema.PROCESSLIST / INNODB_TRX); "
            f"end it, then retry; {RERUN}")
    if code in NOT_ONLINE_ERRORS:
        return MigrationError(
            f"the server cannot make this change online (ALGORITHM/LOCK): {error.orig}; "
            "split the revision (expand/contract) or run it in a maintenance window; "
            f"{RERUN}")
    return None


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
                try:
                    command.upgrade(config, "head")
                except OperationalError as error:
                    explained = _explain(error, settings)
                    if explained is None:
                        raise
                    raise explained from error
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
