"""A private MariaDB server for the tests: own data folder, own port, started and stopped here.

Tests that stop the database mid-traffic need a server they own; a shared one would not do.
ITEMS_TEST_MYSQL_URL (an admin URL) points the suite at an existing server instead, as on
GitHub Actions with a MySQL service container; the stop/start tests then skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

APP_USER = "items"
APP_PASSWORD = "s3cret-Db-pw-9f2"  # the log tests assert this never shows up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: object, *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it returns truthy, or fail naming what we waited for."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")


@dataclass
class MariaDB:
    """Either a server we run (``datadir`` set) or an external one (admin URL given)."""

    host: str
    port: int
    admin_user: str
    admin_password: str
    datadir: Path | None = None
    socket_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def controllable(self) -> bool:
        return self.datadir is not None

    def admin_connect(self, database: str | None = None) -> pymysql.Connection:
        if self.socket_path is not None:
            return pymysql.connect(
                unix_socket=str(self.socket_path), user="root", database=database, autocommit=True
            )
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.admin_user,
            password=self.admin_password,
            database=database,
            autocommit=True,
        )

    def url(self, database: str) -> str:
        return f"mysql+pymysql://{APP_USER}:{APP_PASSWORD}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with self.admin_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def is_up(self) -> bool:
        try:
            with self.admin_connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                return True
        except pymysql.MySQLError:
            return False

    # Lifecycle of a server we own.
    def start(self) -> None:
        assert self.datadir is not None
        assert self.socket_path is not None
        binary = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
        log = open(self.datadir.parent / "mariadb.log", "ab")  # noqa: SIM115 (lives with the process)
        self.process = subprocess.Popen(
            [
                binary,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=mysql",
                f"--socket={self.socket_path}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=500",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-log-bin",
                f"--pid-file={self.datadir.parent / 'mariadb.pid'}",
            ],
            stdout=log,
            stderr=log,
        )
        wait_until(self.is_up, timeout=60, what="MariaDB to accept connections")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def start_private_server() -> MariaDB:
    base = Path(tempfile.mkdtemp(prefix="items-test-mariadb-"))
    datadir = base / "data"
    datadir.mkdir()
    shutil.chown(base, "mysql", "mysql")
    shutil.chown(datadir, "mysql", "mysql")
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if install is None:
        raise RuntimeError(
            "mariadb-install-db not found: apt-get install mariadb-server, "
            "or set ITEMS_TEST_MYSQL_URL to an existing server's admin URL"
        )
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    server = MariaDB(
        host="127.0.0.1",
        port=free_port(),
        admin_user="root",
        admin_password="",
        datadir=datadir,
        socket_path=base / "mariadb.sock",
    )
    server.start()
    with server.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{APP_USER}'@'%'")
    return server


def external_server(admin_url: str) -> MariaDB:
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    server = MariaDB(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        admin_user=url.username or "root",
        admin_password=url.password or "",
    )
    with server.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{APP_USER}'@'%'")
    return server


def cleanup_private_server(server: MariaDB) -> None:
    server.stop()
    if server.datadir is not None:
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


def from_environment() -> MariaDB:
    admin_url = os.environ.get("ITEMS_TEST_MYSQL_URL")
    return external_server(admin_url) if admin_url else start_private_server()
