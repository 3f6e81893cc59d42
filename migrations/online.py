"""Re-runnable, online DDL for the MySQL family, behind Alembic's ordinary `op.*` calls.

MySQL and MariaDB commit every DDL statement on its own, so a migration killed after statement
k leaves statements 1..k applied and the revision unstamped; the next run repeats the revision
from its first statement. Revisions stay plain Alembic (the lint in service/migration_lint.py
reads their operations), and this module replaces the implementations of the operations they
use so that, on the MySQL family:

- each create/add is skipped when information_schema already has that object (and fails when an
  object of that name exists with another definition), each drop when the object is gone;
- each ALTER asks for online DDL (ALGORITHM=INSTANT, else INPLACE with LOCK=NONE): a change the
  server could only make by copying the table, or while blocking writes, fails instead.

MySQL 8 lacks IF [NOT] EXISTS for columns and indexes (MariaDB has it), hence information_schema.
Other dialects (SQLite, batch mode) use Alembic's own implementations. Offline (`--sql`) output
gets the online clauses but no existence checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from alembic.ddl import base as ddl
from alembic.operations import Operations, ops, toimpl
from alembic.operations.batch import BatchOperationsImpl
from sqlalchemy import Index, UniqueConstraint, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CreateIndex, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

log = logging.getLogger("migrations.online")

MYSQL_FAMILY = frozenset({"mysql", "mariadb"})
# ER_ALTER_OPERATION_NOT_SUPPORTED(_REASON): the server cannot do it with that algorithm.
NOT_ONLINE_ERRORS = frozenset({1845, 1846})
INSTANT = ", ALGORITHM=INSTANT"  # MySQL allows no LOCK clause with INSTANT; it never blocks
INPLACE_ALTER = ", ALGORITHM=INPLACE, LOCK=NONE"
INPLACE_INDEX = " ALGORITHM=INPLACE LOCK=NONE"  # CREATE INDEX takes its options without commas


class OnlineDDL(ExecutableDDLElement):
    """A DDL statement with online-DDL options appended."""

    inherit_cache = False

    def __init__(self, inner: ExecutableDDLElement, suffix: str) -> None:
        self.inner = inner
        self.suffix = suffix


@compiles(OnlineDDL)
def _compile_online(element: OnlineDDL, compiler: DDLCompiler, **kw: Any) -> str:
    return f"{compiler.process(element.inner, **kw)}{element.suffix}"


class DropIndexOnline(ExecutableDDLElement):
    """ALTER TABLE ... DROP INDEX: MariaDB takes no ALGORITHM/LOCK options on DROP INDEX."""

    inherit_cache = False

    def __init__(self, table: str, name: str) -> None:
        self.table = table
        self.name = name


@compiles(DropIndexOnline)
def _compile_drop_index(element: DropIndexOnline, compiler: DDLCompiler, **_: Any) -> str:
    quote = compiler.preparer.quote
    return f"ALTER TABLE {quote(element.table)} DROP INDEX {quote(element.name)}"


def _applies(operations: Operations) -> bool:
    return operations.impl.dialect.name in MYSQL_FAMILY and not isinstance(
        operations.impl, BatchOperationsImpl
    )


def _scalar(operations: Operations, sql: str, **params: Any) -> Any:
    bind = operations.get_bind() if not operations.migration_context.as_sql else None
    if bind is None:
        return None  # offline: emit everything
    return bind.execute(text(sql), params).scalar()


def _table_exists(operations: Operations, table: str) -> bool:
    return bool(
        _scalar(
            operations,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t",
            t=table,
        )
    )


def _column_exists(operations: Operations, table: str, column: str) -> bool:
    return bool(
        _scalar(
            operations,
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND COLUMN_NAME = :c",
            t=table,
            c=column,
        )
    )


def _index_columns(operations: Operations, table: str, name: str) -> tuple[str, bool] | None:
    """(comma-joined columns in order, unique) of an index (or unique constraint), or None."""
    bind = operations.get_bind() if not operations.migration_context.as_sql else None
    if bind is None:
        return None
    rows = bind.execute(
        text(
            "SELECT COLUMN_NAME, NON_UNIQUE FROM information_schema.STATISTICS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND INDEX_NAME = :i "
            "ORDER BY SEQ_IN_INDEX"
        ),
        {"t": table, "i": name},
    ).all()
    if not rows:
        return None
    return ",".join(str(row[0]) for row in rows), int(rows[0][1]) == 0


def _run_online(
    operations: Operations, element: ExecutableDDLElement, choices: Sequence[str]
) -> None:
    """Run with the first online option set the server accepts; fail if it accepts none."""
    impl = operations.impl
    assert not isinstance(impl, BatchOperationsImpl)  # _applies() sent batch mode elsewhere
    for index, suffix in enumerate(choices):
        try:
            impl.execute(OnlineDDL(element, suffix))
            return
        except OperationalError as error:
            code = error.orig.args[0] if error.orig is not None and error.orig.args else None
            if code not in NOT_ONLINE_ERRORS or index == len(choices) - 1:
                raise


def _same_index(
    operations: Operations, table: str, name: str, columns: Sequence[str], unique: bool
) -> bool:
    """True when the index is already there as wanted; raises when the name is taken."""
    found = _index_columns(operations, table, name)
    if found is None:
        return False
    wanted = (",".join(columns), unique)
    if found != wanted:
        raise RuntimeError(
            f"index {name} on {table} exists as {found}, not {wanted}: "
            "repair by hand before re-running"
        )
    log.info("index %s on %s already present: skipped", name, table)
    return True


@Operations.implementation_for(ops.CreateTableOp, replace=True)
def create_table(operations: Operations, operation: ops.CreateTableOp) -> Any:
    if _applies(operations) and _table_exists(operations, operation.table_name):
        log.info("table %s already present: skipped", operation.table_name)
        return operation.to_table(operations.migration_context)
    return toimpl.create_table(operations, operation)


@Operations.implementation_for(ops.DropTableOp, replace=True)
def drop_table(operations: Operations, operation: ops.DropTableOp) -> None:
    if (
        _applies(operations)
        and not operations.migration_context.as_sql
        and not _table_exists(operations, operation.table_name)
    ):
        log.info("table %s already gone: skipped", operation.table_name)
        return
    toimpl.drop_table(operations, operation)


@Operations.implementation_for(ops.AddColumnOp, replace=True)
def add_column(operations: Operations, operation: ops.AddColumnOp) -> None:
    column = operation.column
    if (
        not _applies(operations)
        or column.foreign_keys
        or column.unique
        or column.index
        or (column.constraints)
    ):
        # Indexes and constraints that ride on the column go through Alembic (not guarded).
        toimpl.add_column(operations, operation)
        return
    if _column_exists(operations, operation.table_name, operation.column.name):
        log.info(
            "column %s.%s already present: skipped", operation.table_name, operation.column.name
        )
        return
    element = ddl.AddColumn(operation.table_name, operation.column, schema=operation.schema)
    _run_online(operations, element, [INSTANT, INPLACE_ALTER])


@Operations.implementation_for(ops.DropColumnOp, replace=True)
def drop_column(operations: Operations, operation: ops.DropColumnOp) -> None:
    if not _applies(operations):
        toimpl.drop_column(operations, operation)
        return
    if not operations.migration_context.as_sql and not _column_exists(
        operations, operation.table_name, operation.column_name
    ):
        log.info("column %s.%s already gone: skipped", operation.table_name, operation.column_name)
        return
    column = operation.to_column(operations.migration_context)
    element = ddl.DropColumn(operation.table_name, column, schema=operation.schema)
    _run_online(operations, element, [INSTANT, INPLACE_ALTER])


@Operations.implementation_for(ops.CreateIndexOp, replace=True)
def create_index(operations: Operations, operation: ops.CreateIndexOp) -> None:
    if not _applies(operations):
        toimpl.create_index(operations, operation)
        return
    index: Index = operation.to_index(operations.migration_context)
    columns = [str(column) for column in operation.columns]
    if _same_index(
        operations,
        operation.table_name,
        operation.index_name or "",
        columns,
        bool(operation.unique),
    ):
        return
    _run_online(operations, CreateIndex(index), [INPLACE_INDEX])


@Operations.implementation_for(ops.DropIndexOp, replace=True)
def drop_index(operations: Operations, operation: ops.DropIndexOp) -> None:
    if not _applies(operations):
        toimpl.drop_index(operations, operation)
        return
    table = operation.table_name or ""
    if (
        not operations.migration_context.as_sql
        and _index_columns(operations, table, operation.index_name) is None
    ):
        log.info("index %s on %s already gone: skipped", operation.index_name, table)
        return
    _run_online(operations, DropIndexOnline(table, operation.index_name), [INPLACE_ALTER])


@Operations.implementation_for(ops.AddConstraintOp, replace=True)
def create_constraint(operations: Operations, operation: ops.AddConstraintOp) -> None:
    if not _applies(operations) or not isinstance(operation, ops.CreateUniqueConstraintOp):
        toimpl.create_constraint(operations, operation)
        return
    constraint: UniqueConstraint = operation.to_constraint(operations.migration_context)
    columns = [str(column) for column in operation.columns]
    if _same_index(
        operations, operation.table_name, str(operation.constraint_name or ""), columns, True
    ):
        return
    _run_online(operations, AddConstraint(constraint, isolate_from_table=True), [INPLACE_ALTER])
