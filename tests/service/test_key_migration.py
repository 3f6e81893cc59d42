"""Migrations 0003-0005 on data: keys filled, ids still never reused, and each revision safe to
run again over its own result (on SQLite and MariaDB)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from service import schema
from service.core.config import Settings, get_settings
from service.core.db import sync_url
from tests.mariadb import MariaDB

pytestmark = pytest.mark.mysql


@pytest.fixture(params=["sqlite", "mysql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        yield Settings(sqlite_path=tmp_path / "keys.db")
        return
    mariadb: MariaDB = request.getfixturevalue("mariadb")
    url = mariadb.create_database("items_key_migration")
    yield Settings(DATABASE_URL=url)
    mariadb.drop_database("items_key_migration")


def _alembic(settings: Settings, action: str, target: str) -> None:
    saved = {key: os.environ.get(key) for key in ("DATABASE_URL", "ITEMS_SQLITE_PATH")}
    if settings.database_url is not None:
        os.environ["DATABASE_URL"] = settings.database_url.get_secret_value()
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["ITEMS_SQLITE_PATH"] = str(settings.sqlite_path)
    get_settings.cache_clear()
    try:
        getattr(command, action)(schema.alembic_config(), target)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def test_keys_are_filled_and_revisions_rerun(database: Settings) -> None:
    _alembic(database, "upgrade", "0002")
    engine = create_engine(sync_url(database))
    with engine.begin() as conn:
        for name, sku in (("Crème", "ab-1"), ("Zebra", None), ("doomed", "AB-2")):
            conn.execute(
                text(
                    "INSERT INTO items (name, description, price, in_stock, sku, created_at, "
                    "updated_at, version) VALUES (:name, '', 1, 1, :sku, '2026-01-01', "
                    "'2026-01-01', 1)"
                ),
                {"name": name, "sku": sku},
            )
        conn.execute(text("DELETE FROM items WHERE name = 'doomed'"))
    _alembic(database, "upgrade", "head")
    for revision in ("0002", "0003", "0004"):  # as if a run had stopped after that revision
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        _alembic(database, "upgrade", "head")
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT name, name_key, sku_key FROM items ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [
            ("Crème", "creme", "ab-1"),
            ("Zebra", "zebra", None),
        ]
        conn.execute(
            text(
                "INSERT INTO items (name, description, price, in_stock, created_at, updated_at, "
                "version) VALUES ('new', '', 1, 1, '2026-01-01', '2026-01-01', 1)"
            )
        )
        new_id = conn.scalar(text("SELECT id FROM items WHERE name = 'new'"))
    engine.dispose()
    # The deleted item (id 3) existed before AUTOINCREMENT on SQLite; InnoDB never lowers.
    assert new_id == 4 if database.database_url is not None else new_id >= 3
    _alembic(database, "downgrade", "0002")
    _alembic(database, "upgrade", "head")
