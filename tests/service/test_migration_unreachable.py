"""A database the migrator cannot reach is the environment, not the release: `migrate` retries
the connection with backoff for ITEMS_MIGRATION_CONNECT_TIMEOUT_SECONDS, then exits 75 with an
"unreachable" report (the migration Job's podFailurePolicy runs it again, never fails the
release). Against the suite's real MariaDB, reached through a port that drops connections
first, as a server still starting does."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mariadb import APP_PASSWORD, MariaDB, free_port
from tests.service.test_migration_floor import _run

pytestmark = [pytest.mark.mysql]


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[tuple[str, str]]:
    name = "items_unreachable"
    url = mariadb.create_database(name)
    yield name, url
    mariadb.drop_database(name)


def test_an_unreachable_database_exits_75_with_a_report_without_the_password(
    tmp_path: Path,
) -> None:
    code, report, log = _run(
        "mysql+pymysql://nobody:wrong-pw@127.0.0.1:1/none",
        "migrate",
        tmp_path,
        ITEMS_MIGRATION_CONNECT_TIMEOUT_SECONDS="1",
    )
    assert code == 75, log
    assert report is not None
    assert report["outcome"] == "unreachable"
    assert "re-running" in report["error"]
    assert "database unreachable, retrying" in log  # it did retry before giving up
    assert "wrong-pw" not in json.dumps(report)
    assert "wrong-pw" not in log


def test_a_wrong_password_is_not_unreachable(mariadb: MariaDB, tmp_path: Path) -> None:
    """The server answered: retrying would not help, the configuration is wrong (exit 1)."""
    url = mariadb.url("mysql").replace(f":{APP_PASSWORD}@", ":not-the-password@")
    assert "not-the-password" in url
    code, report, log = _run(url, "migrate", tmp_path, ITEMS_MIGRATION_CONNECT_TIMEOUT_SECONDS="5")
    assert code == 1, log
    assert report is not None
    assert report["outcome"] == "failed"
    assert "migration failed" in log
    assert "not-the-password" not in json.dumps(report) + log  # the password never shows


class StartingServer:
    """A TCP port in front of `target` that, like a server still starting, drops the first
    `drops` connections at once (the client sees "Lost connection" during the handshake), then
    forwards each to `target`."""

    def __init__(self, target: tuple[str, int], drops: int) -> None:
        self.target, self.drops = target, drops
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.dropped = 0
        self.open = True
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.threads.append(thread)

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.dropped < self.drops:
                self.dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(self.target, timeout=10)
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.open = False
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


def test_a_database_still_starting_is_waited_for_and_migrated(
    mariadb: MariaDB, database: tuple[str, str], tmp_path: Path
) -> None:
    name, url = database
    server = StartingServer((mariadb.host, mariadb.port), drops=2)
    late_url = url.replace(f"{mariadb.host}:{mariadb.port}", f"127.0.0.1:{server.port}")
    assert late_url != url
    try:
        code, report, log = _run(
            late_url, "migrate", tmp_path, ITEMS_MIGRATION_CONNECT_TIMEOUT_SECONDS="60"
        )
    finally:
        server.close()
    assert code == 0, log
    assert report is not None
    assert report["outcome"] == "migrated"
    assert server.dropped == 2
    assert log.count("database unreachable, retrying") == 2
    with mariadb.admin_connect(name) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM alembic_version")
        assert cur.fetchone() == (1,)
