"""Expand or contract: a lint of each revision's operations, and the plan the image carries.

An older image must keep working on a schema an expand revision produced (the operator rolls
back to it without touching the database); a contract revision removes or narrows something an
older image may still read or write, so it is only safe once no rollback target needs it.

How: each revision's ``upgrade()`` runs against a recording ``Operations`` (an offline MySQL
migration context, since MySQL is what serves), which keeps the operation objects Alembic would
have executed instead of executing them. Each operation is then classified by the rules in
``classify``; a revision whose operations include a contract one must say so in its file::

    classification = "contract"
    contract_reason = "drops items.legacy_code; no released image reads it since 1.4"

An unmarked contract operation fails ``items-service migrate --check``. A contract revision whose
harm is not a removal (a constraint moved to a column older images do not write) names what an
image must use to survive it; the rollback floor (service/rollback_floor.py) then refuses it
while an image that must keep working lacks one of those::

    contract_needs = ("items.sku_key",)  # "table.column" or "table"
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from alembic.operations import BatchOperations, Operations, ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import types

from service import schema

EXPAND = "expand"
CONTRACT = "contract"
# What contract_needs may name: a table, or a table's column.
_NEED = re.compile(r"^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)?$")
# Raw SQL that removes, renames or rewrites what exists.
_DESTRUCTIVE_SQL = re.compile(r"\b(DROP|RENAME|TRUNCATE|DELETE|MODIFY|CHANGE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    kind: str  # EXPAND or CONTRACT
    operation: str  # e.g. "drop_column items.sku"
    reason: str
    removes: tuple[str, ...] = ()  # "table items", "column items.sku", "index ix_x"


@dataclass
class _BatchTarget:
    """What batch operations read from their impl to know their table."""

    table_name: str
    schema: str | None


class _BatchRecorder(BatchOperations):
    def __init__(
        self,
        context: MigrationContext,
        table_name: str,
        schema: str | None,
        sink: Callable[[ops.MigrateOperation], Any],
    ) -> None:
        super().__init__(context, impl=_BatchTarget(table_name, schema))  # type: ignore[arg-type]
        self._sink = sink

    def invoke(self, operation: ops.MigrateOperation) -> Any:
        return self._sink(operation)


def record(module: ModuleType) -> list[ops.MigrateOperation]:
    """The operations a revision's upgrade() performs on MySQL, without a database."""
    direct = io.StringIO()  # SQL run through op.get_bind() lands here, not in the recording
    context = MigrationContext.configure(
        dialect_name="mysql", opts={"as_sql": True, "output_buffer": direct}
    )
    recorded: list[ops.MigrateOperation] = []

    def invoke(operation: ops.MigrateOperation) -> Any:
        recorded.append(operation)
        if isinstance(operation, ops.CreateTableOp):
            return operation.to_table(context)
        return None

    @contextmanager
    def batch_alter_table(
        table_name: str, schema: str | None = None, **_: Any
    ) -> Iterator[BatchOperations]:
        yield _BatchRecorder(context, table_name, schema, invoke)

    # An Operations instance (the `op` proxy only binds to that class) that keeps what it is
    # asked to do instead of doing it.
    recorder = Operations(context)
    recorder.invoke = invoke  # type: ignore[method-assign]
    recorder.batch_alter_table = batch_alter_table  # type: ignore[method-assign, assignment]
    recorder._install_proxy()
    try:
        module.upgrade()
    finally:
        recorder._remove_proxy()
    statements = [part.strip() for part in direct.getvalue().split(";\n") if part.strip()]
    return [*recorded, *(ops.ExecuteSQLOp(statement) for statement in statements)]


def _narrows(old: Any, new: Any) -> str | None:
    """Why changing ``old`` to ``new`` may reject or truncate what older images write."""
    if old is None:
        return "type change without existing_type: cannot tell widening from narrowing"
    old_t, new_t = types.to_instance(old), types.to_instance(new)
    if isinstance(old_t, types.String) and isinstance(new_t, types.String):
        if new_t.length is not None and (old_t.length is None or new_t.length < old_t.length):
            return f"string length {old_t.length} -> {new_t.length}"
        return None
    if (
        isinstance(old_t, types.Numeric)
        and isinstance(new_t, types.Numeric)
        and not (isinstance(old_t, types.Float) or isinstance(new_t, types.Float))
    ):
        old_p, old_s = old_t.precision or 0, old_t.scale or 0
        new_p, new_s = new_t.precision or 0, new_t.scale or 0
        if new_s < old_s or new_p - new_s < old_p - old_s:
            return f"numeric ({old_p},{old_s}) -> ({new_p},{new_s})"
        return None
    widening = {
        (types.SmallInteger, types.Integer),
        (types.SmallInteger, types.BigInteger),
        (types.Integer, types.BigInteger),
        (types.String, types.Text),
    }
    if type(old_t) is type(new_t) or any(
        isinstance(old_t, a) and isinstance(new_t, b) for a, b in widening
    ):
        return None
    return f"type {old_t} -> {new_t}"


def classify(operation: ops.MigrateOperation, added: set[str]) -> Verdict:
    """Expand or contract, for one operation; ``added`` holds "table.column" names created
    earlier in the same revision (no older image can depend on those)."""
    if isinstance(operation, ops.CreateTableOp):
        for column in operation.columns:
            added.add(f"{operation.table_name}.{getattr(column, 'name', '')}")
        return Verdict(EXPAND, f"create_table {operation.table_name}", "new table")
    if isinstance(operation, ops.AddColumnOp):
        column = operation.column
        name = f"{operation.table_name}.{column.name}"
        added.add(name)
        if not column.nullable and column.server_default is None and not column.primary_key:
            return Verdict(
                CONTRACT,
                f"add_column {name}",
                "NOT NULL without a server default: older images' INSERTs fail",
            )
        return Verdict(EXPAND, f"add_column {name}", "nullable or defaulted column")
    if isinstance(operation, ops.CreateIndexOp):
        columns = [f"{operation.table_name}.{c}" for c in operation.columns]
        what = f"create_index {operation.index_name} on {operation.table_name}"
        if operation.unique and not all(c in added for c in columns):
            return Verdict(
                CONTRACT,
                what,
                "unique index on existing columns: older images may write duplicates",
            )
        return Verdict(EXPAND, what, "new index")
    if isinstance(operation, ops.CreateUniqueConstraintOp):
        columns = [f"{operation.table_name}.{c}" for c in operation.columns]
        what = f"create_unique_constraint {operation.constraint_name} on {operation.table_name}"
        if not all(c in added for c in columns):
            return Verdict(
                CONTRACT,
                what,
                "unique constraint on existing columns: older images may write duplicates",
            )
        return Verdict(EXPAND, what, "unique constraint on columns this revision adds")
    if isinstance(
        operation, ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp | ops.CreatePrimaryKeyOp
    ):
        table = getattr(operation, "table_name", None) or getattr(operation, "source_table", "")
        return Verdict(
            CONTRACT,
            f"create constraint {operation.constraint_name} on {table}",
            "a new constraint may reject what older images write",
        )
    if isinstance(operation, ops.DropTableOp):
        return Verdict(
            CONTRACT,
            f"drop_table {operation.table_name}",
            "drop table",
            (f"table {operation.table_name}",),
        )
    if isinstance(operation, ops.DropColumnOp):
        name = f"{operation.table_name}.{operation.column_name}"
        return Verdict(CONTRACT, f"drop_column {name}", "drop column", (f"column {name}",))
    if isinstance(operation, ops.DropIndexOp):
        return Verdict(
            CONTRACT,
            f"drop_index {operation.index_name}",
            "drop index (queries of older images may rely on it)",
            (f"index {operation.index_name}",),
        )
    if isinstance(operation, ops.DropConstraintOp):
        return Verdict(
            CONTRACT,
            f"drop_constraint {operation.constraint_name}",
            "drop constraint",
            (f"constraint {operation.constraint_name}",),
        )
    if isinstance(operation, ops.RenameTableOp):
        return Verdict(
            CONTRACT,
            f"rename_table {operation.table_name}",
            "rename: older images use the old name",
            (f"table {operation.table_name}",),
        )
    if isinstance(operation, ops.AlterColumnOp):
        return _classify_alter(operation)
    if isinstance(operation, ops.ExecuteSQLOp):
        sql = str(operation.sqltext)
        if _DESTRUCTIVE_SQL.search(sql):
            return Verdict(
                CONTRACT,
                f"execute {sql[:60]!r}",
                "raw SQL that removes, renames or rewrites data or schema",
            )
        return Verdict(EXPAND, f"execute {sql[:60]!r}", "raw SQL that only adds")
    if isinstance(operation, ops.BulkInsertOp | ops.CreateTableCommentOp | ops.DropTableCommentOp):
        return Verdict(EXPAND, type(operation).__name__, "data or comments only")
    return Verdict(CONTRACT, type(operation).__name__, "not recognised by the lint: mark it")


def _classify_alter(operation: ops.AlterColumnOp) -> Verdict:
    name = f"{operation.table_name}.{operation.column_name}"
    what = f"alter_column {name}"
    if operation.modify_name is not None:
        return Verdict(
            CONTRACT,
            what,
            f"rename to {operation.modify_name}: older images use the old name",
            (f"column {name}",),
        )
    if operation.modify_type is not None:
        why = _narrows(operation.existing_type, operation.modify_type)
        if why is not None:
            return Verdict(CONTRACT, what, f"type narrowing: {why}")
    if operation.modify_nullable is False:
        default = operation.modify_server_default
        has_default = default not in (False, None) or operation.existing_server_default not in (
            False,
            None,
        )
        if not has_default:
            return Verdict(
                CONTRACT, what, "NOT NULL without a server default: older images' INSERTs fail"
            )
    return Verdict(EXPAND, what, "widening, relaxing or a default")


@dataclass
class Revision:
    revision: str
    down_revision: str | None
    path: str
    declared: str | None
    reason: str | None
    verdicts: list[Verdict] = field(default_factory=list)
    needs: Any = ()  # the module's contract_needs, as written (problems() checks its shape)
    parents: tuple[str, ...] = ()  # every down revision (a merge has several)

    @property
    def classification(self) -> str:
        if self.declared == CONTRACT or any(v.kind == CONTRACT for v in self.verdicts):
            return CONTRACT
        return EXPAND

    def problems(self) -> list[str]:
        where = f"revision {self.revision} ({self.path})"
        if self.declared not in (None, EXPAND, CONTRACT):
            return [
                f"{where}: classification must be 'expand' or 'contract', not {self.declared!r}"
            ]
        if self.declared == CONTRACT and not (self.reason or "").strip():
            return [f"{where}: classification = 'contract' needs a contract_reason"]
        if self.needs and (
            isinstance(self.needs, str)
            or not isinstance(self.needs, tuple | list)
            or not all(isinstance(n, str) and _NEED.match(n) for n in self.needs)
        ):
            return [
                f'{where}: contract_needs must be a tuple of "table" or "table.column" '
                f"names, not {self.needs!r}"
            ]
        if self.needs and self.declared != CONTRACT:
            return [
                f"{where}: contract_needs is only read on a revision marked "
                'classification = "contract"'
            ]
        if self.declared == CONTRACT:
            return []
        return [
            f"{where}: {v.operation} is a contract operation ({v.reason}) but the revision "
            'is not marked; make it expand-only, or set classification = "contract" and '
            'contract_reason = "..." in the file'
            for v in self.verdicts
            if v.kind == CONTRACT
        ]


def analyse(script: ScriptDirectory | None = None) -> list[Revision]:
    """Every revision, oldest first, with its operations classified."""
    script = script or ScriptDirectory.from_config(schema.alembic_config())
    result: list[Revision] = []
    for rev in reversed(list(script.walk_revisions())):
        module = rev.module
        down = rev.down_revision
        entry = Revision(
            revision=rev.revision,
            down_revision=down if isinstance(down, str) else None,
            path=rev.path.rsplit("/", 1)[-1],
            declared=getattr(module, "classification", None),
            reason=getattr(module, "contract_reason", None),
            needs=getattr(module, "contract_needs", ()),
            parents=tuple(down) if isinstance(down, tuple | list) else (down,) if down else (),
        )
        added: set[str] = set()
        try:
            recorded = record(module)
        except Exception as error:  # e.g. upgrade() reads the database: the lint cannot see it
            entry.verdicts = [
                Verdict(
                    CONTRACT,
                    "upgrade()",
                    f"could not be recorded without a database ({type(error).__name__}: {error})",
                )
            ]
            result.append(entry)
            continue
        entry.verdicts = [classify(operation, added) for operation in recorded]
        result.append(entry)
    return result


def uses() -> dict[str, list[str]]:
    """The tables and columns this image's models read and write: what it needs to serve."""
    from sqlmodel import SQLModel

    import service.models  # noqa: F401  (registers the tables)

    return {
        name: sorted(column.name for column in table.columns)
        for name, table in sorted(SQLModel.metadata.tables.items())
    }


def needs_problems(revisions: list[Revision], used: dict[str, list[str]]) -> list[str]:
    """A revision that needs what this very image does not use would block every release."""
    problems = []
    for rev in revisions:
        for need in needs_of(rev):
            table, _, column = need.partition(".")
            if table not in used or (column and column not in used[table]):
                problems.append(
                    f"revision {rev.revision} ({rev.path}): contract_needs names "
                    f"{need}, which this image's models do not use"
                )
    return problems


def needs_of(rev: Revision) -> list[str]:
    """contract_needs, when well formed (problems() reports it otherwise)."""
    if isinstance(rev.needs, str) or not isinstance(rev.needs, tuple | list):
        return []
    return sorted({need for need in rev.needs if isinstance(need, str) and _NEED.match(need)})


def removes_of(rev: Revision) -> dict[str, list[str]]:
    """What a revision removes, by kind: tables, columns ("table.column"), indexes, constraints."""
    removes = [item for v in rev.verdicts for item in v.removes]
    return {
        plural: sorted({r.split(" ", 1)[1] for r in removes if r.startswith(f"{kind} ")})
        for kind, plural in (
            ("table", "tables"),
            ("column", "columns"),
            ("index", "indexes"),
            ("constraint", "constraints"),
        )
    }


def lineage(revisions: list[Revision], head: str | None) -> set[str]:
    """``head`` and every revision below it (empty for None, the unmigrated database)."""
    parents = {rev.revision: rev.parents for rev in revisions}
    seen: set[str] = set()
    todo = [head] if head else []
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(parents.get(current, ()))
    return seen


def plan(
    revisions: list[Revision], head: str, used: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """What `migrate --plan` prints: this image's head, what each revision does, and what the
    image itself needs (so a contract revision can be checked against older images' plans)."""
    contract = [
        {
            "revision": rev.revision,
            "reason": rev.reason or "",
            "removes": removes_of(rev),
            "needs": needs_of(rev),
        }
        for rev in revisions
        if rev.classification == CONTRACT
    ]
    return {
        "head": head,
        "revisions": [
            {
                "revision": r.revision,
                "down_revision": r.down_revision,
                "classification": r.classification,
            }
            for r in revisions
        ],
        "contract": contract,
        "uses": uses() if used is None else used,
    }
