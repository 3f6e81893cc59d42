"""Migrations against a real MariaDB: models agree, round trips, locking, readiness by schema."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import service.models  # noqa: F401  (registers tables)
from service import schema
from service.core.config import Settings
from service.core.db import sync_url
from service.main import create_app
from service.migrate import run_migrations
from tests.mariadb import MariaDB

pytestmark = pytest.mark.mysql


@pytest.fixture
def fresh_db(mariadb: MariaDB, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "items_mig_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    url = mariadb.create_database(name)
    yield url
    mariadb.drop_database(name)


def _revision(url: str) -> str | None:
    engine = create_engine(sync_url(Settings(DATABASE_URL=url)))
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return revision


@pytest.fixture
def database_url_env() -> Iterator[None]:
    saved = os.environ.get("DATABASE_URL")
    yield
    from service.core.config import get_settings

    get_settings.cache_clear()
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved


def _alembic(url: str, action: str, target: str) -> None:
    from service.core.config import get_settings

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    config = schema.alembic_config()
    getattr(command, action)(config, target)


@pytest.mark.parametrize("backend", ["mysql", "sqlite"])
def test_models_and_migrations_agree(backend: str, fresh_db: str, tmp_path: Path) -> None:
    settings = (
        Settings(DATABASE_URL=fresh_db)
        if backend == "mysql"
        else Settings(sqlite_path=tmp_path / "agree.db")
    )
    run_migrations(settings)
    engine = create_engine(sync_url(settings))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == [], differences


def test_upgrade_downgrade_upgrade_round_trip(fresh_db: str, database_url_env: None) -> None:
    _alembic(fresh_db, "upgrade", "head")
    assert _revision(fresh_db) == schema.known_revisions().head
    engine = create_engine(sync_url(Settings(DATABASE_URL=fresh_db)))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (name, description, price, in_stock, sku, created_at,"
                " updated_at, version) VALUES ('kept', '', 1.50, 1, 'S1', NOW(), NOW(),"
                " 1)"
            )
        )
    _alembic(fresh_db, "downgrade", "0001")
    assert "sku" not in {c["name"] for c in inspect(engine).get_columns("items")}
    _alembic(fresh_db, "downgrade", "base")
    assert "items" not in inspect(engine).get_table_names()
    _alembic(fresh_db, "upgrade", "0001")
    _alembic(fresh_db, "upgrade", "head")
    columns = {c["name"] for c in inspect(engine).get_columns("items")}
    assert "sku" in columns
    table_options = (
        engine.connect()
        .execute(
            text(
                "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'items'"
            )
        )
        .one()
    )
    assert table_options[0] == "InnoDB"
    assert table_options[1].startswith("utf8mb4")
    engine.dispose()


def test_expand_migration_keeps_data(fresh_db: str, database_url_env: None) -> None:
    _alembic(fresh_db, "upgrade", "0001")
    engine = create_engine(sync_url(Settings(DATABASE_URL=fresh_db)))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (name, description, price, in_stock, created_at,"
                " updated_at, version) VALUES ('v1 item', '', 2.25, 1, NOW(), NOW(), 1)"
            )
        )
    run_migrations(Settings(DATABASE_URL=fresh_db))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, price, sku FROM items")).one()
    engine.dispose()
    assert (row.name, str(row.price), row.sku) == ("v1 item", "2.25", None)


def _migrate_process(url: str, tmp_path: Path, index: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "migrate"],
        env=env,
        stdout=open(tmp_path / f"migrate-{index}.log", "wb"),
        stderr=subprocess.STDOUT,
    )


def test_concurrent_migrate_runs_never_interleave(fresh_db: str, tmp_path: Path) -> None:
    processes = [_migrate_process(fresh_db, tmp_path, i) for i in range(3)]
    codes = [process.wait(timeout=180) for process in processes]
    logs = [(tmp_path / f"migrate-{i}.log").read_text() for i in range(3)]
    assert codes == [0, 0, 0], logs
    assert _revision(fresh_db) == schema.known_revisions().head
    # Exactly one run did the work; the others waited on the lock and found nothing to do.
    ran = [log for log in logs if "Running upgrade" in log]
    assert len(ran) == 1, logs
    for log in logs:
        assert "schema before migration" in log
        assert "schema after migration" in log


def test_migrate_on_a_newer_schema_is_a_no_op(fresh_db: str) -> None:
    run_migrations(Settings(DATABASE_URL=fresh_db))
    engine = create_engine(sync_url(Settings(DATABASE_URL=fresh_db)))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    assert run_migrations(Settings(DATABASE_URL=fresh_db)) == "9999_future"
    engine.dispose()


@pytest.mark.parametrize(
    ("revision", "ready", "says"),
    [
        (None, False, "unmigrated"),
        ("0001", False, "behind"),
        ("head", True, "ok: at"),
        ("9999_future", True, "newer than this image"),
    ],
)
def test_readiness_by_schema_revision(
    fresh_db: str, revision: str | None, ready: bool, says: str, database_url_env: None
) -> None:
    if revision == "head":
        _alembic(fresh_db, "upgrade", "head")
    elif revision == "9999_future":
        _alembic(fresh_db, "upgrade", "head")
        engine = create_engine(sync_url(Settings(DATABASE_URL=fresh_db)))
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        engine.dispose()
    elif revision is not None:
        _alembic(fresh_db, "upgrade", revision)
    app = create_app(Settings(DATABASE_URL=fresh_db), install_signal_hooks=False)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == (200 if ready else 503), response.text
    assert says in response.json()["checks"]["schema"]
    # Liveness never depends on the database.
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200


def test_serve_never_migrates_a_server_database(fresh_db: str, tmp_path: Path) -> None:
    import httpx

    from tests.conftest import stop_process_group
    from tests.mariadb import free_port, wait_until

    port = free_port()
    env = {**os.environ, "DATABASE_URL": fresh_db}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{base}/healthz").status_code == 200, timeout=60, what="liveness"
        )
        readiness = httpx.get(f"{base}/readyz")
        assert readiness.status_code == 503
        assert "unmigrated" in readiness.json()["checks"]["schema"]
    finally:
        stop_process_group(process)
    assert _revision(fresh_db) is None


@pytest.mark.parametrize("revision_file", ["e2e0003_marker.py", "e2efloor1_legacy_table.py"])
def test_the_cluster_tests_revisions_sit_on_the_head(revision_file: str) -> None:
    """tests/operator/cluster/images adds revisions e2e0003 (v2) and e2efloor1 (the floor
    images) on top of the image's head: each must follow the newest revision here, or its test
    image has two heads and cannot migrate."""
    import ast

    marker = Path(__file__).resolve().parents[1] / "operator/cluster/images" / revision_file
    tree = ast.parse(marker.read_text())
    assigned = {
        node.target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value
    }
    assert assigned["down_revision"] == schema.known_revisions().head
