"""migrations/online.py on a real MariaDB: skip what is there, refuse a name clash, never copy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import OperationalError

import migrations.online  # noqa: F401  (the implementations under test)
from service.core.config import Settings
from service.core.db import sync_url
from service.migrate import _explain
from tests.mariadb import MariaDB

pytestmark = pytest.mark.mysql


@pytest.fixture
def conn(mariadb: MariaDB) -> Iterator[Connection]:
    name = "items_online_ddl"
    url = mariadb.create_database(name)
    engine = create_engine(sync_url(Settings(DATABASE_URL=url)))
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))"))
        yield connection
    engine.dispose()
    mariadb.drop_database(name)


def _op(conn: Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def test_every_guarded_operation_twice_is_the_same_as_once(conn: Connection) -> None:
    op = _op(conn)
    for _ in range(2):
        op.create_table("other", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("items", sa.Column("sku", sa.String(64), nullable=True))
        op.create_index("ix_items_name", "items", ["name"])
        op.create_unique_constraint("uq_items_sku", "items", ["sku"])
    found = inspect(conn)
    assert "other" in found.get_table_names()
    assert [c["name"] for c in found.get_columns("items")] == ["id", "name", "sku"]
    assert {i["name"] for i in found.get_indexes("items")} >= {"ix_items_name", "uq_items_sku"}
    for _ in range(2):
        op.drop_index("ix_items_name", table_name="items")
        op.drop_column("items", "sku")
        op.drop_table("other")
    found = inspect(conn)
    assert "other" not in found.get_table_names()
    assert [c["name"] for c in found.get_columns("items")] == ["id", "name"]


def test_an_index_of_that_name_with_other_columns_stops_the_run(conn: Connection) -> None:
    op = _op(conn)
    op.create_index("ix_items_x", "items", ["name"])
    with pytest.raises(RuntimeError, match=r"exists as .*repair by hand"):
        op.create_index("ix_items_x", "items", ["id", "name"])


def test_a_change_that_would_copy_the_table_fails_instead(conn: Connection) -> None:
    # A stored generated column can only be added by copying the table (MariaDB and MySQL).
    op = _op(conn)
    column = sa.Column("twice", sa.Integer, sa.Computed("id * 2", persisted=True))
    with pytest.raises(OperationalError) as failure:
        op.add_column("items", column)
    explained = _explain(failure.value, Settings())
    assert explained is not None
    assert "cannot make this change online" in str(explained)
    assert "twice" not in {c["name"] for c in inspect(conn).get_columns("items")}
