"""The `items-service` command: serve the API, or migrate the database."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, NoReturn

from pydantic import ValidationError

from service.core.config import Settings, UnreadableFileError, get_settings
from service.start_report import INVALID_ARGUMENTS, INVALID_CONFIGURATION, report_start_failure


def _describe(error: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "settings"
        env = (
            name.upper()
            if name.upper() in {"DATABASE_URL", "DATABASE_URL_FILE"}
            else (f"ITEMS_{name.upper()}" if name != "settings" else "settings")
        )
        lines.append(f"  {env}: {item['msg']}")
    return "\n".join(lines)


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        print(_describe(error), file=sys.stderr)
        raise SystemExit(2) from None


class _UsageError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage error (exit 2) main() also reports to the termination log."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = get_settings()
    except ValidationError as error:
        message = _describe(error)
        print(message, file=sys.stderr)
        if not any(
            isinstance(e.get("ctx", {}).get("error"), UnreadableFileError) for e in error.errors()
        ):
            report_start_failure(INVALID_CONFIGURATION, message)
        return 2
    from service.api.auth import TokenSource, TokenSourceError

    try:
        TokenSource(settings)  # fail closed: a token source without tokens never serves
    except TokenSourceError as exc:
        # Not reported: a tokens file empty or unreadable now may be filled by the next start.
        print(f"invalid configuration:\n  {exc}", file=sys.stderr)
        return 2
    from service.core.db import is_embedded
    from service.core.logging import configure_logging

    configure_logging(settings.log_level, sql=settings.log_sql)
    if is_embedded(settings):
        # Only the embedded default migrates on start; a server database is migrated by a Job.
        from service.migrate import run_migrations

        run_migrations(settings)
    from service.server import run

    run(
        host=args.host,
        port=args.port,
        workers=args.workers or _default_workers(),
        graceful_timeout=int(settings.shutdown_delay_seconds) + 30,
        keepalive=settings.keepalive_timeout_seconds,
    )
    return 0


def cmd_migrate_check() -> int:
    """Lint the revisions: an unmarked contract operation fails. Needs no database."""
    from service import migration_lint

    revisions = migration_lint.analyse()
    problems = [problem for rev in revisions for problem in rev.problems()]
    problems += migration_lint.needs_problems(revisions, migration_lint.uses())
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(
        f"migrations ok: {len(revisions)} revisions, "
        + ", ".join(f"{r.revision} {r.classification}" for r in revisions)
    )
    return 0


def cmd_migrate_plan() -> int:
    """This image's Alembic head and each revision's classification, as JSON on stdout."""
    import json

    from service import migration_lint, schema

    revisions = migration_lint.analyse()
    print(json.dumps(migration_lint.plan(revisions, schema.known_revisions().head), sort_keys=True))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.check:
        return cmd_migrate_check()
    if args.plan:
        return cmd_migrate_plan()
    from service import rollback_floor

    report_file = os.environ.get(rollback_floor.REPORT_ENV, "")
    try:
        settings = load_settings()
    except SystemExit as exit_:
        _write_report(report_file, rollback_floor.failed_report("invalid configuration"))
        raise exit_ from None
    code, report = _migrate(settings)
    _write_report(report_file, report)
    return code


EXIT_STOPPED = 143  # 128 + SIGTERM, what the migration Job's podFailurePolicy re-runs


def _stop_on_sigterm() -> None:
    """End at once with 143 on SIGTERM (a deletion, a drain without the eviction API).

    As a container's pid 1 the process would otherwise ignore the signal and be SIGKILLed at
    the end of its grace period (137, which the Job counts as a failure). Exiting at once is
    safe: the server finishes or rolls back the statement in flight, the session's migration
    lock is released when it ends, and every revision is re-runnable (docs/operations.md).
    No cleanup runs: closing a connection mid-statement could raise and turn the stop into a
    failure the Job would not retry.
    """

    def stop(signum: int, _frame: object) -> None:
        os.write(
            2,
            b'{"level": "WARNING", "message": "migration stopped on SIGTERM; '
            b're-running it continues where it stopped"}\n',
        )
        os._exit(EXIT_STOPPED)

    signal.signal(signal.SIGTERM, stop)


def _migrate(settings: Settings) -> tuple[int, dict[str, Any]]:
    """Migrate within the rollback floor the operator set: (exit code, report)."""
    from loguru import logger

    from service import rollback_floor
    from service.core.logging import configure_logging
    from service.migrate import (
        DatabaseUnreachableError,
        MigrationBlockedError,
        MigrationError,
        migrate_within_floor,
    )

    configure_logging(settings.log_level)
    _stop_on_sigterm()
    try:
        policy = rollback_floor.Policy.from_env(os.environ)
        report = migrate_within_floor(settings, policy)
    except rollback_floor.FloorConfigError as exc:
        logger.error("migration failed: {}", exc)
        return rollback_floor.EXIT_FAILED, rollback_floor.failed_report(str(exc))
    except DatabaseUnreachableError as exc:
        logger.error("migration could not reach the database: {}", exc)
        return rollback_floor.EXIT_UNREACHABLE, rollback_floor.unreachable_report(str(exc))
    except MigrationBlockedError as exc:
        logger.error("migration blocked: {}", exc)
        return rollback_floor.EXIT_BLOCKED, rollback_floor.blocked_report(exc.blocks)
    except MigrationError as exc:
        logger.error("migration failed: {}", exc)
        return rollback_floor.EXIT_FAILED, rollback_floor.failed_report(str(exc))
    except Exception as exc:
        logger.opt(exception=exc).error("migration failed: {}", type(exc).__name__)
        return rollback_floor.EXIT_FAILED, rollback_floor.failed_report(_short(exc))
    return 0, report


def _short(exc: Exception) -> str:
    """The exception's type, and a database error's own message (never the URL: SQLAlchemy's
    text may carry statements and parameters, the driver's does not)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__}: {exc.orig}"[:500]
    return type(exc).__name__


def _write_report(path: str, report: dict[str, Any]) -> None:
    """One compact JSON object (< 4096 bytes) for the operator, e.g. /dev/termination-log."""
    if not path:
        return
    from service import rollback_floor

    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(rollback_floor.encode(report))
    except OSError as exc:
        print(f"could not write the migration report to {path}: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="items-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API (Gunicorn with Uvicorn workers)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=os.environ.get("ITEMS_WORKERS", "0"),  # converted by `type`: a usage error
        help="worker processes (default: ITEMS_WORKERS, else one per CPU)",
    )
    serve.set_defaults(handler=cmd_serve)
    migrate = sub.add_parser("migrate", help="upgrade the database schema to this version's head")
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="lint the revisions (expand vs contract) and exit; no database",
    )
    mode.add_argument(
        "--plan",
        action="store_true",
        help="print this image's head and revisions' classifications as JSON",
    )
    migrate.epilog = (  # what the operator's migration Job relies on
        "Without --check/--plan: upgrade under an advisory lock, unless a pending contract "
        "revision would break a release named in ITEMS_MIGRATION_PROTECT (exit 3, no DDL; "
        "ITEMS_MIGRATION_ALLOW_CONTRACT lists revisions allowed anyway). A JSON report goes "
        "to ITEMS_MIGRATION_REPORT_FILE when set. Exit 0 done, 1 failed, 2 bad settings, "
        "3 blocked."
    )
    migrate.set_defaults(handler=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as error:
        print(error.message, file=sys.stderr)
        # A migration pod's termination log is the migrator's report, never a start report.
        if next((a for a in argv if not a.startswith("-")), None) != "migrate":
            report_start_failure(INVALID_ARGUMENTS, error.message)
        raise

    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
