"""`items-service migrate` within the rollback floor, on a real MariaDB: a refused contract
revision changes nothing (exit 3 and a report), an allowed one migrates, every run reports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from service import migration_lint, schema
from service.core.config import Settings
from service.core.db import sync_url
from tests.mariadb import MariaDB

pytestmark = pytest.mark.mysql

# Runs `migrate` (or an Alembic upgrade to a revision) as its own process, optionally with a
# migrations folder of the test's own (schema.MIGRATIONS_DIR decides which revisions exist).
RUN = """
import sys
from pathlib import Path
from service import schema
if sys.argv[2]:
    schema.MIGRATIONS_DIR = Path(sys.argv[2])
if sys.argv[1] == "migrate":
    from service.cli import main
    raise SystemExit(main(["migrate"]))
from alembic import command
command.upgrade(schema.alembic_config(), sys.argv[1])
"""

EXPAND = '''"""Test revision: a table and a nullable column only older images read."""
import sqlalchemy as sa
from alembic import op

revision = "f0006"
down_revision = "{head}"
branch_labels = None
depends_on = None
classification = "expand"


def upgrade():
    op.create_table("floor_legacy", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("items", sa.Column("floor_old", sa.String(10), nullable=True))


def downgrade():
    op.drop_column("items", "floor_old")
    op.drop_table("floor_legacy")
'''

CONTRACT = '''"""Test revision: drops what f0006 added."""
from alembic import op

revision = "f0007"
down_revision = "f0006"
branch_labels = None
depends_on = None
classification = "contract"
contract_reason = "drops floor_legacy and items.floor_old: release an image without them first"


def upgrade():
    op.drop_column("items", "floor_old")
    op.drop_table("floor_legacy")


def downgrade():
    pass
'''

SNAPSHOT_QUERIES = (
    "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES",
    "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT,"
    " COLLATION_NAME FROM information_schema.COLUMNS",
    "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE"
    " FROM information_schema.STATISTICS",
)
USES_NOW = migration_lint.uses()


@pytest.fixture
def database(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    name = "items_floor_" + request.node.name.lower().replace("[", "_").replace("]", "")[:36]
    url = mariadb.create_database(name)
    yield name, url
    mariadb.drop_database(name)


@pytest.fixture(scope="module")
def floor_migrations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's migrations plus f0006 (expand) and f0007 (contract) on its head."""
    folder = tmp_path_factory.mktemp("floor") / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    head = schema.known_revisions().head
    (folder / "versions" / "f0006_expand.py").write_text(EXPAND.format(head=head))
    (folder / "versions" / "f0007_contract.py").write_text(CONTRACT)
    return folder


def _run(
    url: str, target: str, tmp_path: Path, migrations: Path | None = None, **env: str
) -> tuple[int, dict[str, Any] | None, str]:
    """(exit code, the report, the log) of one run."""
    report = tmp_path / "termination-log"
    report.unlink(missing_ok=True)
    full_env = {
        key: value for key, value in os.environ.items() if not key.startswith("ITEMS_MIGRATION_")
    }
    full_env.update({"DATABASE_URL": url, "ITEMS_MIGRATION_REPORT_FILE": str(report), **env})
    result = subprocess.run(
        [sys.executable, "-c", RUN, target, str(migrations) if migrations else ""],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    text = report.read_text() if report.exists() else None
    if text is not None:
        assert len(text.encode()) < 4096
        assert "\n" not in text  # one compact object
    return result.returncode, json.loads(text) if text else None, result.stdout + result.stderr


def _snapshot(mariadb: MariaDB, name: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with mariadb.admin_connect(name) as conn, conn.cursor() as cur:
        for query in SNAPSHOT_QUERIES:
            cur.execute(f"{query} WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3", (name,))
            result[query] = cur.fetchall()
        cur.execute("SELECT version_num FROM alembic_version")
        result["alembic_version"] = cur.fetchall()
    return result


def _protect(
    uses: dict[str, list[str]] | None,
    *,
    release: str = "r1",
    image: str = "items-service:e2e-floor-v1",
    role: str = "rollback target",
) -> str:
    return json.dumps([{"release": release, "image": image, "role": role, "uses": uses}])


OLD_USES = {**USES_NOW, "floor_legacy": ["id"], "items": [*USES_NOW["items"], "floor_old"]}


def test_a_refused_contract_revision_changes_nothing(
    mariadb: MariaDB, database: tuple[str, str], floor_migrations: Path, tmp_path: Path
) -> None:
    name, url = database
    code, report, log = _run(
        url, "migrate", tmp_path, floor_migrations, ITEMS_MIGRATION_PROTECT=_protect(None)
    )
    # Pending 0001..f0007 against a release of unknown uses: 0005 (needs sku_key) is refused.
    assert code == 3, log
    assert report is not None
    assert report["outcome"] == "blocked"
    assert report["revision"] == "0005"
    assert report["usesUnknown"] is True
    assert report["moreBlocked"] == 1  # f0007 too
    with mariadb.admin_connect(name) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (name,)
        )
        assert cur.fetchone() == (0,)  # not even alembic_version

    code, report, log = _run(url, "f0006", tmp_path, floor_migrations)
    assert code == 0, log
    before = _snapshot(mariadb, name)
    assert before["alembic_version"] == (("f0006",),)

    code, report, log = _run(
        url,
        "migrate",
        tmp_path,
        floor_migrations,
        ITEMS_MIGRATION_PROTECT=_protect(OLD_USES),
        ITEMS_MIGRATION_ALLOW_CONTRACT="0005",
    )
    assert code == 3, log
    assert report == {
        "outcome": "blocked",
        "revision": "f0007",
        "removes": ["floor_legacy", "items.floor_old"],
        "needs": [],
        "image": "items-service:e2e-floor-v1",
        "release": "r1",
        "role": "rollback target",
        "why": "revision f0007 removes floor_legacy, items.floor_old, which release r1 "
        "(items-service:e2e-floor-v1), the rollback target, still uses; release an image "
        "that no longer uses floor_legacy, items.floor_old first, or allow f0007 "
        "explicitly",
    }
    assert _snapshot(mariadb, name) == before
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    refused = [line for line in lines if line["message"].startswith("contract revision refused")]
    assert refused
    assert refused[0]["revision"] == "f0007"
    assert refused[0]["image"] == "items-service:e2e-floor-v1"
    assert not any("Running upgrade" in line["message"] for line in lines)


def test_an_allowed_or_no_longer_used_contract_revision_migrates(
    mariadb: MariaDB, database: tuple[str, str], floor_migrations: Path, tmp_path: Path
) -> None:
    name, url = database
    assert _run(url, "f0006", tmp_path, floor_migrations)[0] == 0
    code, report, log = _run(
        url,
        "migrate",
        tmp_path,
        floor_migrations,
        ITEMS_MIGRATION_PROTECT=_protect(OLD_USES),
        ITEMS_MIGRATION_ALLOW_CONTRACT="f0007",
    )
    assert code == 0, log
    assert report == {
        "outcome": "migrated",
        "from": "f0006",
        "head": "f0007",
        "uses": USES_NOW,
        "removed": {"tables": ["floor_legacy"], "columns": ["items.floor_old"]},
        "needs": ["items.sku_key"],
        "contract": ["0005", "f0007"],
    }
    after = _snapshot(mariadb, name)
    assert after["alembic_version"] == (("f0007",),)
    assert not any(row[0] == "floor_legacy" for row in after[SNAPSHOT_QUERIES[0]])

    # An intermediate release that no longer uses them: nothing to refuse (nothing pending).
    code, report, log = _run(
        url,
        "migrate",
        tmp_path,
        floor_migrations,
        ITEMS_MIGRATION_PROTECT=_protect(USES_NOW, role="serving"),
    )
    assert code == 0, log
    assert report is not None
    assert report["outcome"] == "current"
    assert (report["from"], report["head"]) == ("f0007", "f0007")


def test_a_rollback_target_that_no_longer_reads_it_lets_the_contract_run(
    database: tuple[str, str], floor_migrations: Path, tmp_path: Path
) -> None:
    _, url = database
    assert _run(url, "f0006", tmp_path, floor_migrations)[0] == 0
    code, report, log = _run(
        url,
        "migrate",
        tmp_path,
        floor_migrations,
        ITEMS_MIGRATION_PROTECT=_protect(USES_NOW, image="v2"),
    )
    assert code == 0, log
    assert report is not None
    assert report["outcome"] == "migrated"


@pytest.mark.parametrize(
    ("uses", "blocked"),
    [
        (None, True),
        ({"items": ["id", "name", "sku"]}, True),  # an image from before sku_key
        (USES_NOW, False),
    ],
)
def test_0005_needs_a_rollback_target_that_knows_sku_key(
    mariadb: MariaDB,
    database: tuple[str, str],
    tmp_path: Path,
    uses: dict[str, list[str]] | None,
    blocked: bool,
) -> None:
    name, url = database
    assert _run(url, "0004", tmp_path)[0] == 0
    before = _snapshot(mariadb, name)
    code, report, log = _run(url, "migrate", tmp_path, ITEMS_MIGRATION_PROTECT=_protect(uses))
    assert report is not None
    if blocked:
        assert code == 3, log
        assert (report["outcome"], report["revision"], report["needs"]) == (
            "blocked",
            "0005",
            ["items.sku_key"],
        )
        assert "items.sku_key" in report["why"]
        assert _snapshot(mariadb, name) == before
    else:
        assert code == 0, log
        assert report["outcome"] == "migrated"
        assert (report["from"], report["head"], report["contract"]) == ("0004", "0005", ["0005"])
        assert report["removed"] == {"tables": [], "columns": []}


def test_a_newer_schema_reports_ahead(database: tuple[str, str], tmp_path: Path) -> None:
    _, url = database
    assert _run(url, "migrate", tmp_path)[0] == 0
    engine = create_engine(sync_url(Settings(DATABASE_URL=url)))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    code, report, log = _run(url, "migrate", tmp_path, ITEMS_MIGRATION_PROTECT=_protect(None))
    assert code == 0, log
    assert report is not None
    assert (report["outcome"], report["from"], report["head"]) == (
        "ahead",
        "9999_future",
        "9999_future",
    )
    assert report["contract"] == ["0005"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ITEMS_MIGRATION_PROTECT": "[{"}, "ITEMS_MIGRATION_PROTECT is not JSON"),
        ({"ITEMS_MIGRATION_PROTECT": '[{"image": "i", "uses": ["items"]}]'}, "uses must be null"),
    ],
)
def test_a_malformed_floor_fails_before_anything_runs(
    mariadb: MariaDB,
    database: tuple[str, str],
    tmp_path: Path,
    env: dict[str, str],
    says: str,
) -> None:
    name, url = database
    code, report, log = _run(url, "migrate", tmp_path, None, **env)
    assert code == 1, log
    assert report is not None
    assert report["outcome"] == "failed"
    assert says in report["error"]
    with mariadb.admin_connect(name) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (name,)
        )
        assert cur.fetchone() == (0,)


def test_invalid_settings_exit_2_with_a_report(tmp_path: Path) -> None:
    code, report, log = _run(
        "mysql+pymysql://u:p@127.0.0.1:1/none",
        "migrate",
        tmp_path,
        ITEMS_MIGRATION_LOCK_WAIT_TIMEOUT_SECONDS="0",
    )
    assert code == 2, log
    assert report == {"outcome": "failed", "error": "invalid configuration"}


def test_sigterm_while_waiting_for_the_lock_exits_143_at_once(
    database: tuple[str, str], tmp_path: Path
) -> None:
    """A deleted or drained migration pod gets SIGTERM: 143 (re-run by the Job, no backoff),
    at once, not 137 at the end of the grace period; nothing is left half-done."""
    _, url = database
    engine = create_engine(sync_url(Settings(DATABASE_URL=url)))
    with engine.connect() as holder:
        assert holder.scalar(text("SELECT GET_LOCK('items-platform.migrate', 10)")) == 1
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ITEMS_MIGRATION_")
        }
        env["DATABASE_URL"] = url
        process = subprocess.Popen(
            [sys.executable, "-c", RUN, "migrate", ""],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            waiting = False
            assert process.stdout is not None
            for line in process.stdout:  # bounded: the process ends or the lock wait does
                if "waiting for the migration lock" in line:
                    waiting = True
                    break
            assert waiting
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 143
        finally:
            process.kill()
            process.wait(timeout=30)
    engine.dispose()
    assert _run(url, "migrate", tmp_path)[0] == 0  # the re-run migrates from scratch
