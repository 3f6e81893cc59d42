"""`items-service migrate`: alembic upgrade head, serialised across concurrent runs.

MySQL commits each DDL statement on its own, so two runs interleaving would leave a half-built
schema. A named advisory lock (GET_LOCK) held on the migrating connection prevents that; the
second run waits, then finds nothing left to do.

Before any DDL, under that lock, the rollback floor (service/rollback_floor.py) may refuse the
pending contract revisions: then nothing runs and `MigrationBlockedError` says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from loguru import logger
from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.exc import OperationalError

from service import migration_lint, rollback_floor, schema, text_keys
from service.core.config import Settings
from service.core.db import sync_url
from service.rollback_floor import Block, Contract, Policy

LOCK_NAME = "items-platform.migrate"
ER_LOCK_WAIT_TIMEOUT = 1205
NOT_ONLINE_ERRORS = frozenset({1845, 1846})
RERUN = "nothing is half-done: re-running `items-service migrate` continues where this one stopped"
# The database, not the migration: the client cannot connect (2002, 2003), the host name does not
# resolve yet (2005), the server went away or the connection broke (2006, 2013, 2055), it has no
# connection left (1040) or is shutting down (1053).
UNREACHABLE_ERRORS = frozenset({1040, 1053, 2002, 2003, 2005, 2006, 2013, 2055})
MAX_CONNECT_BACKOFF = 10.0


class MigrationError(RuntimeError):
    pass


class DatabaseUnreachableError(MigrationError):
    """The database could not be reached within the connect timeout, or went away mid-run:
    nothing about the migration is wrong, and running it again continues (RERUN)."""


class MigrationBlockedError(MigrationError):
    """The rollback floor refused a pending contract revision; no DDL ran."""

    def __init__(self, found: Sequence[Block]) -> None:
        super().__init__(found[0].why())
        self.blocks = list(found)


# Given the revision the database is at, the refusals (none: go ahead).
Guard = Callable[[str | None], Sequence[Block]]


@dataclass(frozen=True)
class Outcome:
    state: str  # rollback_floor.MIGRATED, CURRENT or AHEAD
    before: str | None
    after: str | None


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _code(error: OperationalError) -> object:
    return error.orig.args[0] if error.orig is not None and error.orig.args else None


def _connect(engine: Engine, timeout: float) -> Connection:
    """A connection, retried with backoff while the database is unreachable (a server still
    starting, a DNS name not yet resolvable, a node under load), at most `timeout` seconds."""
    deadline, delay = time.monotonic() + timeout, 0.5
    while True:
        try:
            return engine.connect()
        except OperationalError as error:
            if _code(error) not in UNREACHABLE_ERRORS or time.monotonic() + delay > deadline:
                raise
            logger.warning(
                "database unreachable, retrying", error=str(error.orig), retry_in_seconds=delay
            )
            time.sleep(delay)
            delay = min(delay * 2, MAX_CONNECT_BACKOFF)


def _explain(error: OperationalError, settings: Settings) -> MigrationError | None:
    code = _code(error)
    if code == ER_LOCK_WAIT_TIMEOUT:
        return MigrationError(
            "a DDL statement waited ITEMS_MIGRATION_LOCK_WAIT_TIMEOUT_SECONDS="
            f"{settings.migration_lock_wait_timeout_seconds}s for a table's metadata lock: a long "
            "transaction holds it (see information_schema.PROCESSLIST / INNODB_TRX); "
            f"end it, then retry; {RERUN}"
        )
    if code in NOT_ONLINE_ERRORS:
        return MigrationError(
            f"the server cannot make this change online (ALGORITHM/LOCK): {error.orig}; "
            "split the revision (expand/contract) or run it in a maintenance window; "
            f"{RERUN}"
        )
    return None


def run_migrations(settings: Settings, *, lock_timeout_seconds: int = 600) -> str:
    """Upgrade to this image's head; return the revision the database ends at."""
    return migrate(settings, lock_timeout_seconds=lock_timeout_seconds).after or ""


def migrate(
    settings: Settings, *, guard: Guard | None = None, lock_timeout_seconds: int = 600
) -> Outcome:
    """Upgrade to this image's head unless ``guard`` refuses; say where the database was and
    ends."""
    url = sync_url(settings)
    engine = create_engine(url, poolclass=pool.NullPool)
    known = schema.known_revisions()
    is_mysql = url.get_backend_name() in {"mysql", "mariadb"}
    try:
        with _connect(engine, settings.migration_connect_timeout_seconds) as conn:
            if is_mysql:
                logger.info("waiting for the migration lock", lock=LOCK_NAME)
                acquired = conn.scalar(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": LOCK_NAME, "timeout": lock_timeout_seconds},
                )
                if acquired != 1:
                    raise MigrationError(
                        f"could not take the migration lock within {lock_timeout_seconds}s; "
                        "another migration is still running"
                    )
            try:
                before = _revision(conn)
                state = schema.classify(before, known)
                logger.info(
                    "schema before migration",
                    revision=before or "none",
                    image_head=known.head,
                    state=state.value,
                )
                if state is schema.SchemaState.AHEAD:
                    # A newer image migrated already; expand-only changes keep us compatible.
                    logger.info(
                        "nothing to do: the schema is newer than this image",
                        revision=before,
                        image_head=known.head,
                    )
                    return Outcome(rollback_floor.AHEAD, before, before)
                found = guard(before) if guard is not None else ()
                if found:
                    for block in found:
                        logger.error(
                            "contract revision refused by the rollback floor",
                            revision=block.revision,
                            image=block.protected.image,
                            release=block.protected.release,
                            role=block.protected.role,
                            removes=list(block.removes),
                            needs=list(block.needs),
                            uses_unknown=block.unknown,
                        )
                    raise MigrationBlockedError(found)
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
                logger.info(
                    "schema after migration", revision=after or "none", changed=before != after
                )
                ended = rollback_floor.MIGRATED if before != after else rollback_floor.CURRENT
                return Outcome(ended, before, after)
            finally:
                if is_mysql:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    except OperationalError as error:
        if _code(error) in UNREACHABLE_ERRORS:
            raise DatabaseUnreachableError(
                f"the database is unreachable ({error.orig}); {RERUN}"
            ) from error
        raise
    finally:
        engine.dispose()


def migrate_within_floor(
    settings: Settings, policy: Policy, *, lock_timeout_seconds: int = 600
) -> dict[str, Any]:
    """`items-service migrate`: migrate unless the floor refuses; the report of what happened.
    Raises MigrationBlockedError (nothing ran) or another error (the run failed)."""
    revisions = migration_lint.analyse()
    plan = migration_lint.plan(revisions, schema.known_revisions().head)
    head: str = plan["head"]
    contracts = [Contract.from_plan(entry) for entry in plan["contract"]]

    def within(top: str | None, below: str | None = None) -> list[Contract]:
        """Contract revisions at or below ``top`` and above ``below``, oldest first."""
        wanted = migration_lint.lineage(revisions, top) - migration_lint.lineage(revisions, below)
        return [contract for contract in contracts if contract.revision in wanted]

    def guard(before: str | None) -> list[Block]:
        return rollback_floor.blocks(within(head, before), policy.protect, policy.allow)

    outcome = migrate(settings, guard=guard, lock_timeout_seconds=lock_timeout_seconds)
    # A newer image's head is unknown here, but every revision this image knows is below it.
    top = head if outcome.state == rollback_floor.AHEAD else outcome.after
    return rollback_floor.done_report(
        outcome.state,
        before=outcome.before,
        head=outcome.after,
        contracts=within(top),
        uses=plan["uses"],
    )
