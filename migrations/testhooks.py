"""Test hooks for the kill-and-re-run tests: stop or pause `migrate` after its k-th statement.

Read from the environment by the migration environment only; unset (always, in production) they
do nothing. "Statement" means one that changes the database (DDL or the version stamp), not the
SELECTs that look before they leap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event

EXIT_AFTER = "ITEMS_MIGRATE_TEST_EXIT_AFTER"  # k: os._exit after the k-th statement
PAUSE_AFTER = "ITEMS_MIGRATE_TEST_PAUSE_AFTER"  # k: pause after the k-th statement ...
PAUSE_FILE = "ITEMS_MIGRATE_TEST_PAUSE_FILE"  # ... writing FILE.paused, until FILE exists
EXIT_CODE = 86
_READ_ONLY = ("select", "show", "set ", "describe", "explain")


def changes_the_database(statement: str) -> bool:
    return not statement.lstrip().lower().startswith(_READ_ONLY)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def install(connection: Connection) -> None:
    exit_after = int(os.environ.get(EXIT_AFTER, "0"))
    pause_after = int(os.environ.get(PAUSE_AFTER, "0"))
    if not exit_after and not pause_after:
        return
    count = 0

    def after_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal count
        if not changes_the_database(statement):
            return
        count += 1
        if count == exit_after:
            os._exit(EXIT_CODE)  # like SIGKILL: no rollback, no lock release, no cleanup
        if count == pause_after:
            release = Path(os.environ[PAUSE_FILE])
            Path(f"{release}.paused").write_text(statement)
            _wait_for(release)

    event.listen(connection, "after_cursor_execute", after_execute)
