"""Shared fixtures: a real MariaDB server, migrated databases, the app in-process, and the
service as a real Gunicorn process."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from loguru import logger

import items_logging
from service.core.config import Settings
from service.main import create_app
from service.migrate import run_migrations
from tests.mariadb import MariaDB, cleanup_private_server, free_port, from_environment, wait_until

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo a configure_logging: Loguru back to its default sink, the standard library's
    loggers as they were, the shared sink's stream unset (it may be a test's captured stdout)."""
    loggers = [logging.root, *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    saved = [(log, log.handlers[:], log.level, log.propagate, log.disabled) for log in loggers]
    sink = (items_logging._Sink.stream, items_logging._Sink.info_enabled)
    yield
    logger.remove()
    logger.add(sys.stderr)
    for log, handlers, level, propagate, disabled in saved:
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate, log.disabled = propagate, disabled
    items_logging._Sink.stream, items_logging._Sink.info_enabled = sink


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = from_environment()
    yield server
    if server.controllable:
        cleanup_private_server(server)


@pytest.fixture(scope="session")
def mysql_url(mariadb: MariaDB) -> str:
    """A migrated database shared by the session (tables are emptied per test by ``client``)."""
    url = mariadb.create_database("items_test")
    run_migrations(Settings(DATABASE_URL=url))
    return url


def _empty_tables(settings: Settings) -> None:
    from sqlalchemy import create_engine, text

    from service.core.db import sync_url

    engine = create_engine(sync_url(settings))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM idempotency_keys"))
        conn.execute(text("DELETE FROM items"))
    engine.dispose()


SettingsFactory = Callable[..., Settings]


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> SettingsFactory:
    """Settings for the selected backend, with a migrated, empty database."""
    if backend == "mysql":
        url = request.getfixturevalue("mysql_url")
        base: dict[str, Any] = {"DATABASE_URL": url}
    else:
        base = {"sqlite_path": tmp_path / "items.db"}
        run_migrations(Settings(**base))
    _empty_tables(Settings(**base))

    def factory(**overrides: Any) -> Settings:
        return Settings(**{**base, **overrides})

    return factory


@pytest.fixture
def make_client(make_settings: SettingsFactory) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), install_signal_hooks=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_live_server(
    env_overrides: dict[str, str], log_path: Path, *, workers: int = 2, cwd: Path | None = None
) -> LiveServer:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ITEMS_") and key not in {"DATABASE_URL", "DATABASE_URL_FILE"}
    }
    env.update(env_overrides)
    log = open(log_path, "wb")  # noqa: SIM115 (closed when the process ends)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd or log_path.parent,
        start_new_session=True,  # its own process group: teardown reaps the workers too
    )
    server = LiveServer(base_url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: " + "\n".join(server.log_lines()[-20:])
            )
        return httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200

    wait_until(ready, timeout=60, what="the service to become ready")
    return server


@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def factory(env: dict[str, str], *, workers: int = 2) -> LiveServer:
        server = start_live_server(env, tmp_path / f"server-{len(servers)}.log", workers=workers)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        stop_process_group(server.process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's whole group (master and workers), SIGKILL what is left after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def mysql_live_server(mysql_url: str, live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    _empty_tables(Settings(DATABASE_URL=mysql_url))
    return live_server_factory({"DATABASE_URL": mysql_url})
