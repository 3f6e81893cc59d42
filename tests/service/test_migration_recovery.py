"""Killed, raced and blocked migrations on a real MariaDB: re-running always completes the schema.

MySQL commits each DDL statement on its own. Every revision must therefore survive being killed
after any of its statements (including the last one, before Alembic stamps the version), two
`migrate` runs must never both run DDL, and a DDL statement that cannot get its metadata lock
must fail within lock_wait_timeout instead of stalling all traffic on the table.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlmodel import SQLModel

import service.models  # noqa: F401  (registers tables)
from migrations import testhooks
from service import schema
from service.core.config import Settings
from service.core.db import sync_url
from service.migrate import run_migrations
from tests.mariadb import MariaDB, wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.slow]

Snapshot = dict[str, list[tuple[Any, ...]]]
SCHEMA_QUERIES = {
    "tables": "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES",
    "columns": "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE,"
    " COLUMN_DEFAULT, EXTRA, COLLATION_NAME FROM information_schema.COLUMNS",
    "indexes": "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE"
    " FROM information_schema.STATISTICS",
    "constraints": "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE"
    " FROM information_schema.TABLE_CONSTRAINTS",
}


class Databases:
    """Fresh databases on the suite's MariaDB, dropped at the end of the test."""

    def __init__(self, mariadb: MariaDB, prefix: str) -> None:
        self.mariadb = mariadb
        self.prefix = prefix
        self.names: list[str] = []

    def new(self) -> tuple[str, str]:
        name = f"{self.prefix}_{len(self.names)}"
        self.names.append(name)
        return name, self.mariadb.create_database(name)

    def snapshot(self, name: str) -> Snapshot:
        """The schema as information_schema has it, plus the Alembic stamp."""
        result: Snapshot = {}
        with self.mariadb.admin_connect(name) as conn, conn.cursor() as cur:
            for key, query in SCHEMA_QUERIES.items():
                cur.execute(f"{query} WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3", (name,))
                result[key] = [tuple(row) for row in cur.fetchall()]
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"
                " AND TABLE_NAME = 'alembic_version'",
                (name,),
            )
            stamped: list[tuple[Any, ...]] = []
            if cur.fetchone() == (1,):
                cur.execute("SELECT version_num FROM alembic_version")
                stamped = [tuple(row) for row in cur.fetchall()]
            result["alembic_version"] = stamped
        return result


@pytest.fixture
def databases(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[Databases]:
    dbs = Databases(mariadb, "items_rec_" + request.node.name.lower()[:30])
    yield dbs
    for name in dbs.names:
        mariadb.drop_database(name)


def _clean_upgrade(databases: Databases) -> tuple[Snapshot, list[str]]:
    """A clean upgrade's schema and the statements that changed the database, in order."""
    name, url = databases.new()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if testhooks.changes_the_database(statement):
            statements.append(" ".join(statement.split()))

    event.listen(Engine, "after_cursor_execute", record)
    try:
        run_migrations(Settings(DATABASE_URL=url))
    finally:
        event.remove(Engine, "after_cursor_execute", record)
    return databases.snapshot(name), statements


def _migrate(url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "DATABASE_URL": url, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "migrate"],
        env=full_env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )


def _cli_migrate(url: str, **env: str) -> None:
    from service.cli import main
    from service.core.config import get_settings

    os.environ.update({"DATABASE_URL": url, **env})
    get_settings.cache_clear()
    sys.exit(main(["migrate"]))


def _alembic_upgrade(url: str, revision: str) -> None:
    from alembic import command

    from service.core.config import get_settings

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    command.upgrade(schema.alembic_config(), revision)


def _forked_migrate(url: str, **env: str) -> int | None:
    """`items-service migrate` in a forked child: the real command without a fresh interpreter's
    import time (seconds on a loaded machine, times 2 runs per kill point)."""
    return _forked(_cli_migrate, url, **env)


def _forked(target: Any, *args: str, **kwargs: str) -> int | None:
    child = multiprocessing.get_context("fork").Process(target=target, args=args, kwargs=kwargs)
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        child.join()
        raise TimeoutError(f"{target.__name__} did not end within 120 s")
    return child.exitcode


def _models_agree(url: str) -> list[Any]:
    engine = create_engine(sync_url(Settings(DATABASE_URL=url)))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences: list[Any] = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    return differences


def test_killed_after_any_statement_a_rerun_equals_a_clean_upgrade(databases: Databases) -> None:
    reference, statements = _clean_upgrade(databases)
    assert reference["alembic_version"] == [(schema.known_revisions().head,)]
    # Every revision has kill points, its version stamp included.
    stamps = [s for s in statements if "alembic_version" in s and not s.startswith("CREATE")]
    assert len(stamps) == len(schema.known_revisions().all), statements
    partial_states = 0
    for k, statement in enumerate(statements, start=1):
        name, url = databases.new()
        killed = _forked_migrate(url, **{testhooks.EXIT_AFTER: str(k)})
        assert killed == testhooks.EXIT_CODE, (k, statement)
        after_kill = databases.snapshot(name)
        partial_states += after_kill != reference
        assert _forked_migrate(url) == 0, (k, statement)
        assert databases.snapshot(name) == reference, (k, statement)
        assert _models_agree(url) == [], (k, statement)
        databases.mariadb.drop_database(name)
    # The kills really left half-migrated schemas behind (all but the commit of the last stamp).
    assert partial_states >= len(statements) - 1


def _waiting_for_the_lock(mariadb: MariaDB, name: str) -> bool:
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s AND"
            " INFO LIKE 'SELECT GET_LOCK%%' AND STATE = 'User lock'",
            (name,),
        )
        row = cur.fetchone()
        return row is not None and row[0] == 1


def test_a_second_migrate_waits_on_the_lock_and_changes_nothing_meanwhile(
    databases: Databases, tmp_path: Path
) -> None:
    reference, _ = _clean_upgrade(databases)
    name, url = databases.new()
    release = tmp_path / "release"
    first = _migrate(
        url,
        tmp_path / "first.log",
        **{testhooks.PAUSE_AFTER: "3", testhooks.PAUSE_FILE: str(release)},
    )
    try:
        paused = Path(f"{release}.paused")
        wait_until(paused.exists, timeout=60, what="the first migrate to pause mid-revision")
        half_done = databases.snapshot(name)
        assert half_done != reference
        second = _migrate(url, tmp_path / "second.log")
        wait_until(
            lambda: _waiting_for_the_lock(databases.mariadb, name),
            timeout=60,
            what="the second migrate to wait in GET_LOCK",
        )
        # While it waits, the second run has changed nothing: no DDL ran beside the first's.
        assert databases.snapshot(name) == half_done
        assert second.poll() is None
    finally:
        release.write_text("go")
    assert first.wait(timeout=120) == 0
    assert second.wait(timeout=120) == 0
    logs = [(tmp_path / f"{which}.log").read_text() for which in ("first", "second")]
    assert "Running upgrade" in logs[0]
    assert "Running upgrade" not in logs[1], logs[1]  # it found the work done
    assert databases.snapshot(name) == reference


def test_a_long_transaction_makes_the_migration_fail_within_lock_wait_timeout(
    databases: Databases, tmp_path: Path
) -> None:
    reference, _ = _clean_upgrade(databases)
    name, url = databases.new()
    # At 0001, with a reader's transaction open on items: it holds the table's metadata lock,
    # which 0002's ALTER needs.
    assert _forked(_alembic_upgrade, url, "0001") == 0
    assert databases.snapshot(name)["alembic_version"] == [("0001",)]
    reader = databases.mariadb.admin_connect(name)
    try:
        with reader.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM items")
        started = time.monotonic()
        blocked = _migrate(
            url, tmp_path / "blocked.log", ITEMS_MIGRATION_LOCK_WAIT_TIMEOUT_SECONDS="2"
        )
        code = blocked.wait(timeout=60)
        elapsed = time.monotonic() - started
        log = (tmp_path / "blocked.log").read_text()
        assert code == 1, log
        assert "ITEMS_MIGRATION_LOCK_WAIT_TIMEOUT_SECONDS=2s" in log
        assert "metadata lock" in log
        # It waited the lock wait timeout, then failed on it (the log names it); the bound on an
        # indefinite stall is wait()'s deadline, not a timing assertion a loaded machine breaks.
        assert elapsed >= 2, elapsed
        assert databases.snapshot(name)["alembic_version"] == [("0001",)]
    finally:
        with reader.cursor() as cur:
            cur.execute("COMMIT")
        reader.close()
    rerun = _migrate(url, tmp_path / "rerun.log")
    assert rerun.wait(timeout=120) == 0, (tmp_path / "rerun.log").read_text()
    assert databases.snapshot(name) == reference
