"""The quickstart's pieces without a cluster: docs/quickstart.md quotes hack/quickstart verbatim,
its manifests are valid (kubeconform, with the ItemService CRD's schema), and the grants it gives
the service's account are enough to migrate and serve, on a real MariaDB, and no more than that
database. The whole script runs on a cluster in tests/e2e/test_quickstart.py."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from fastapi.testclient import TestClient

from service.core.config import Settings
from service.main import create_app
from service.migrate import run_migrations
from tests.delivery.conftest import ROOT, kubeconform_args, run
from tests.mariadb import MariaDB

SCRIPT = ROOT / "hack" / "quickstart"
DOC = ROOT / "docs" / "quickstart.md"
EXAMPLES = ROOT / "examples" / "quickstart"
BLOCK = re.compile(r"# --- quickstart:begin.*?\n(.*?)# --- quickstart:end", re.DOTALL)


def test_docs_quote_the_script_verbatim() -> None:
    match = BLOCK.search(SCRIPT.read_text())
    assert match, "hack/quickstart lost its quickstart:begin/end markers"
    assert match.group(1) in DOC.read_text(), (
        "docs/quickstart.md no longer quotes hack/quickstart's up(): paste it again"
    )


def test_readme_links_the_quickstart() -> None:
    assert "docs/quickstart.md" in (ROOT / "README.md").read_text()


def test_example_manifests_are_valid(kubeconform: Path, schema_dir: Path, tmp_path: Path) -> None:
    rendered = tmp_path / "quickstart.yaml"
    rendered.write_text(
        (EXAMPLES / "database.yaml").read_text().replace("@DB_IMAGE@", "mysql:8.4")
        + "\n---\n"
        + (EXAMPLES / "itemservice.yaml").read_text().replace("@IMAGE@", "items-service:0.1.0")
    )
    result = run([*kubeconform_args(kubeconform, schema_dir), rendered])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid: 3" in result.stdout, result.stdout


@pytest.fixture
def quickstart_account(mariadb: MariaDB) -> Iterator[tuple[str, str]]:
    """grants.sql as hack/quickstart runs it (as root), for a fresh database and user; yields
    (the service's URL, the database name)."""
    suffix = secrets.token_hex(3)
    database, user, password = f"qs_{suffix}", f"qs_{suffix}", secrets.token_hex(16)
    sql = (EXAMPLES / "grants.sql").read_text()
    sql = sql.replace("@DATABASE@", database).replace("@USER@", user)
    sql = sql.replace("@PASSWORD@", password)
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    url = f"mysql+pymysql://{user}:{password}@{mariadb.host}:{mariadb.port}/{database}"
    yield url, database
    with mariadb.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.mark.mysql
def test_grants_are_enough_to_migrate_and_serve(quickstart_account: tuple[str, str]) -> None:
    url, _ = quickstart_account
    settings = Settings(DATABASE_URL=url)
    run_migrations(settings)
    run_migrations(settings)  # again: a no-op, as every later migration Job of the operator
    with TestClient(create_app(settings, install_signal_hooks=False)) as client:
        assert client.get("/readyz").status_code == 200
        created = client.post("/items/", json={"name": "first item", "price": 9.99})
        assert created.status_code == 201, created.text
        item = created.json()
        assert client.get(f"/items/{item['id']}").json()["name"] == "first item"
        etag = client.get(f"/items/{item['id']}").headers["ETag"]
        patched = client.patch(
            f"/items/{item['id']}", json={"price": 5}, headers={"If-Match": etag}
        )
        assert patched.status_code == 200, patched.text
        assert (
            client.delete(
                f"/items/{item['id']}", headers={"If-Match": patched.headers["ETag"]}
            ).status_code
            == 204
        )


@pytest.mark.mysql
def test_grants_reach_no_other_database(
    quickstart_account: tuple[str, str], mariadb: MariaDB
) -> None:
    url, database = quickstart_account
    user, password = url.split("//", 1)[1].split("@", 1)[0].split(":")
    with (
        pymysql.connect(
            host=mariadb.host, port=mariadb.port, user=user, password=password, database=database
        ) as conn,
        conn.cursor() as cur,
    ):
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("CREATE DATABASE `qs_not_allowed`")
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("SELECT COUNT(*) FROM mysql.user")
