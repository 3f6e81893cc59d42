"""The expand/contract lint: a table of operations, whole revisions, and the CLI's answers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.operations import ops
from alembic.script import ScriptDirectory

from service import migration_lint, schema
from service.cli import main
from service.migration_lint import CONTRACT, EXPAND, classify


class _Custom(ops.MigrateOperation):
    pass


def _col(name: str, type_: Any = sa.String(32), **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, type_, **kw)


def _alter(**kw: Any) -> ops.AlterColumnOp:
    return ops.AlterColumnOp("items", "name", **kw)


OPERATIONS: list[tuple[str, ops.MigrateOperation, str, str]] = [
    (
        "create table",
        ops.CreateTableOp("t", [_col("id", sa.Integer, primary_key=True)]),
        EXPAND,
        "new table",
    ),
    ("add nullable column", ops.AddColumnOp("items", _col("a", nullable=True)), EXPAND, "nullable"),
    (
        "add NOT NULL with server default",
        ops.AddColumnOp("items", _col("a", nullable=False, server_default="x")),
        EXPAND,
        "default",
    ),
    (
        "add NOT NULL without default",
        ops.AddColumnOp("items", _col("a", nullable=False)),
        CONTRACT,
        "NOT NULL without a server default",
    ),
    ("create index", ops.CreateIndexOp("ix", "items", ["name"]), EXPAND, "new index"),
    (
        "unique index on an existing column",
        ops.CreateIndexOp("ix", "items", ["name"], unique=True),
        CONTRACT,
        "duplicates",
    ),
    (
        "unique constraint on an existing column",
        ops.CreateUniqueConstraintOp("uq", "items", ["name"]),
        CONTRACT,
        "duplicates",
    ),
    (
        "foreign key",
        ops.CreateForeignKeyOp("fk", "items", "other", ["o"], ["id"]),
        CONTRACT,
        "reject",
    ),
    ("drop column", ops.DropColumnOp("items", "sku"), CONTRACT, "drop column"),
    ("drop table", ops.DropTableOp("items"), CONTRACT, "drop table"),
    ("drop index", ops.DropIndexOp("ix_items_name_id", "items"), CONTRACT, "drop index"),
    (
        "drop constraint",
        ops.DropConstraintOp("uq_items_sku", "items", type_="unique"),
        CONTRACT,
        "drop constraint",
    ),
    ("rename table", ops.RenameTableOp("items", "things"), CONTRACT, "rename"),
    ("rename column", _alter(modify_name="title"), CONTRACT, "rename"),
    (
        "shorter string",
        _alter(existing_type=sa.String(64), modify_type=sa.String(32)),
        CONTRACT,
        "string length 64 -> 32",
    ),
    (
        "longer string",
        _alter(existing_type=sa.String(32), modify_type=sa.String(64)),
        EXPAND,
        "widening",
    ),
    (
        "string to text",
        _alter(existing_type=sa.String(32), modify_type=sa.Text()),
        EXPAND,
        "widening",
    ),
    (
        "fewer integer digits",
        _alter(existing_type=sa.Numeric(12, 2), modify_type=sa.Numeric(10, 2)),
        CONTRACT,
        "numeric",
    ),
    (
        "fewer decimal places",
        _alter(existing_type=sa.Numeric(12, 2), modify_type=sa.Numeric(12, 1)),
        CONTRACT,
        "numeric",
    ),
    (
        "more digits",
        _alter(existing_type=sa.Numeric(12, 2), modify_type=sa.Numeric(14, 2)),
        EXPAND,
        "widening",
    ),
    (
        "int to bigint",
        _alter(existing_type=sa.Integer(), modify_type=sa.BigInteger()),
        EXPAND,
        "widening",
    ),
    (
        "bigint to int",
        _alter(existing_type=sa.BigInteger(), modify_type=sa.Integer()),
        CONTRACT,
        "type",
    ),
    (
        "type change of unknown origin",
        _alter(modify_type=sa.String(10)),
        CONTRACT,
        "without existing_type",
    ),
    (
        "NOT NULL without default",
        _alter(modify_nullable=False),
        CONTRACT,
        "NOT NULL without a server default",
    ),
    (
        "NOT NULL with an existing default",
        _alter(modify_nullable=False, existing_server_default="x"),
        EXPAND,
        "default",
    ),
    (
        "NOT NULL with a new default",
        _alter(modify_nullable=False, modify_server_default="x"),
        EXPAND,
        "default",
    ),
    ("allow NULL", _alter(modify_nullable=True), EXPAND, "relaxing"),
    ("backfill", ops.ExecuteSQLOp("UPDATE items SET sku = NULL WHERE 1 = 0"), EXPAND, "adds"),
    ("raw drop", ops.ExecuteSQLOp("ALTER TABLE items DROP COLUMN sku"), CONTRACT, "raw SQL"),
    ("raw delete", ops.ExecuteSQLOp("DELETE FROM items"), CONTRACT, "raw SQL"),
    ("unknown operation", _Custom(), CONTRACT, "not recognised"),
]


@pytest.mark.parametrize(
    ("operation", "kind", "why"),
    [row[1:] for row in OPERATIONS],
    ids=[row[0] for row in OPERATIONS],
)
def test_operations_are_classified(operation: ops.MigrateOperation, kind: str, why: str) -> None:
    verdict = classify(operation, set())
    assert verdict.kind == kind, verdict
    assert why in verdict.reason, verdict


def test_a_unique_constraint_on_a_column_the_revision_adds_is_expand() -> None:
    added: set[str] = set()
    assert classify(ops.AddColumnOp("items", _col("sku", nullable=True)), added).kind == EXPAND
    assert classify(ops.CreateUniqueConstraintOp("uq", "items", ["sku"]), added).kind == EXPAND


HEADER = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None
"""


def _script(tmp_path: Path, revisions: dict[str, str]) -> ScriptDirectory:
    versions = tmp_path / "versions"
    versions.mkdir(exist_ok=True)
    down: str | None = None
    for rev, body in revisions.items():
        text = HEADER.format(rev=rev, down=down) + textwrap.dedent(body)
        (versions / f"{rev}_test.py").write_text(text)
        down = rev
    return ScriptDirectory(str(tmp_path))


BASE = """
def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("legacy", sa.String(10)))
"""


def test_an_unmarked_destructive_revision_fails_naming_revision_and_operation(
    tmp_path: Path,
) -> None:
    script = _script(
        tmp_path,
        {
            "0001": BASE,
            "0002": """
        def upgrade():
            with op.batch_alter_table("items") as batch:
                batch.drop_column("legacy")
        """,
        },
    )
    revisions = migration_lint.analyse(script)
    assert [r.classification for r in revisions] == [EXPAND, CONTRACT]
    problems = [p for r in revisions for p in r.problems()]
    assert len(problems) == 1
    assert "revision 0002 (0002_test.py)" in problems[0]
    assert "drop_column items.legacy" in problems[0]


def test_a_marked_contract_revision_passes_and_the_plan_says_what_it_removes(
    tmp_path: Path,
) -> None:
    script = _script(
        tmp_path,
        {
            "0001": BASE,
            "0002": """
        classification = "contract"
        contract_reason = "no released image reads items.legacy"

        def upgrade():
            op.drop_index("ix_legacy", table_name="items")
            op.drop_column("items", "legacy")
        """,
        },
    )
    revisions = migration_lint.analyse(script)
    assert [p for r in revisions for p in r.problems()] == []
    assert migration_lint.plan(revisions, "0002", {"items": ["id"]}) == {
        "head": "0002",
        "revisions": [
            {"revision": "0001", "down_revision": None, "classification": EXPAND},
            {"revision": "0002", "down_revision": "0001", "classification": CONTRACT},
        ],
        "contract": [
            {
                "revision": "0002",
                "reason": "no released image reads items.legacy",
                "removes": {
                    "tables": [],
                    "columns": ["items.legacy"],
                    "indexes": ["ix_legacy"],
                    "constraints": [],
                },
                "needs": [],
            }
        ],
        "uses": {"items": ["id"]},
    }


def test_sql_run_through_the_connection_is_linted_too(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        {
            "0001": """
        def upgrade():
            op.get_bind().execute(sa.text("UPDATE items SET legacy = NULL"))
            op.get_bind().execute(sa.text("DROP TABLE items"))
        """
        },
    )
    revision = migration_lint.analyse(script)[0]
    assert [v.kind for v in revision.verdicts] == [EXPAND, CONTRACT]
    assert "DROP TABLE items" in revision.problems()[0]


def test_a_revision_that_cannot_be_recorded_must_be_marked(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        {
            "0001": """
        def upgrade():
            count = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM items")).scalar()
            if count > 0:
                op.drop_table("items")
        """
        },
    )
    problems = migration_lint.analyse(script)[0].problems()
    assert len(problems) == 1
    assert "could not be recorded without a database" in problems[0]


@pytest.mark.parametrize(
    ("marker", "says"),
    [
        ('classification = "contract"\n', "needs a contract_reason"),
        ('classification = "shrink"\ncontract_reason = "x"\n', "must be 'expand' or 'contract'"),
        (
            'classification = "contract"\ncontract_reason = "x"\ncontract_needs = "items.sku"\n',
            "contract_needs must be a tuple",
        ),
        (
            'classification = "contract"\ncontract_reason = "x"\ncontract_needs = ("a.b.c",)\n',
            "contract_needs must be a tuple",
        ),
        (
            'classification = "expand"\ncontract_needs = ("items.sku",)\n',
            "only read on a revision marked",
        ),
    ],
)
def test_a_bad_marker_fails(tmp_path: Path, marker: str, says: str) -> None:
    script = _script(tmp_path, {"0001": marker + BASE})
    problems = migration_lint.analyse(script)[0].problems()
    assert len(problems) == 1
    assert says in problems[0]


def test_migrate_check_passes_on_this_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--check"]) == 0
    assert "0002 expand" in capsys.readouterr().out


def test_migrate_check_exits_non_zero_on_an_unmarked_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _script(
        tmp_path,
        {
            "0001": BASE,
            "0002": """
        def upgrade():
            op.drop_table("items")
        """,
        },
    )
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", tmp_path)
    assert main(["migrate", "--check"]) == 1
    assert "revision 0002" in capsys.readouterr().err


def test_migrate_plan_prints_the_head_and_the_classifications(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["head"] == schema.known_revisions().head
    assert [(r["revision"], r["classification"]) for r in plan["revisions"]] == [
        ("0001", EXPAND),
        ("0002", EXPAND),
        ("0003", EXPAND),
        ("0004", EXPAND),
        ("0005", "contract"),
    ]
    assert [c["revision"] for c in plan["contract"]] == ["0005"]
    assert "sku_key" in plan["contract"][0]["reason"]
    assert plan["contract"][0]["needs"] == ["items.sku_key"]
    # What this image needs to serve: an older image's "uses" against a newer image's "removes"
    # tells whether a contract revision would break a rollback to it.
    assert "sku" in plan["uses"]["items"]
    assert set(plan["uses"]) >= {"items", "idempotency_keys"}


def test_the_floor_test_images_revisions_are_expand_then_marked_contract(tmp_path: Path) -> None:
    """tests/operator/cluster/images: e2efloor1 creates e2e_legacy, e2efloor2 (marked) drops it."""
    import shutil

    images = Path(__file__).resolve().parents[1] / "operator/cluster/images"
    shutil.copytree(
        schema.MIGRATIONS_DIR / "versions",
        tmp_path / "versions",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("e2efloor1_legacy_table.py", "e2efloor2_drop_legacy_table.py"):
        shutil.copy(images / name, tmp_path / "versions" / name)
    revisions = migration_lint.analyse(ScriptDirectory(str(tmp_path)))
    assert [p for r in revisions for p in r.problems()] == []
    assert [(r.revision, r.classification) for r in revisions][-2:] == [
        ("e2efloor1", EXPAND),
        ("e2efloor2", CONTRACT),
    ]
    plan = migration_lint.plan(revisions, "e2efloor2", {})
    assert plan["contract"][-1]["removes"]["tables"] == ["e2e_legacy"]
