"""Gunicorn (process manager) with Uvicorn workers, configured in code.

The master never imports the application: each worker imports it after the fork, after
PROMETHEUS_MULTIPROC_DIR is set, so metrics are shared correctly across workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.workers.base import Worker
from uvicorn_worker import UvicornWorker

from service.core.logging import InterceptHandler


class ItemsWorker(UvicornWorker):  # type: ignore[misc]
    """uvloop + httptools, lifespan on, access log ours (with route and request id)."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 (the base class declares it mutable)
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
    }


class LoguruGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """Gunicorn's own messages through the same JSON sink."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers = [InterceptHandler()]
            log.propagate = False
        self.access_log.disabled = True


def _child_exit(server: Arbiter, worker: Worker) -> None:
    from prometheus_client import multiprocess

    # Forget the exited worker's live gauges (in-flight, pool) in the shared metrics folder.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _post_worker_init(worker: Worker) -> None:
    logging.getLogger("gunicorn.error").info("worker %s ready", worker.pid)


class ItemsServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any],
                 loader: Callable[[], Any] | None = None) -> None:
        self.options = options
        # bench/ serves other ASGI apps under exactly this configuration; called in the worker.
        self.loader = loader
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.loader is not None:
            return self.loader()
        from service.main import create_app

        return create_app()


def prepare_metrics_dir() -> str:
    """A fresh folder per server start: stale files from an earlier run would skew counters."""
    path = tempfile.mkdtemp(prefix="items-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def gunicorn_options(*, host: str, port: int, workers: int,
                     graceful_timeout: int) -> dict[str, Any]:
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "worker_class": "service.server.ItemsWorker",
        "logger_class": "service.server.LoguruGunicornLogger",
        "graceful_timeout": graceful_timeout,
        "timeout": 30,
        "keepalive": 5,
        "backlog": 2048,
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "control_socket_disable": True,
        "proc_name": "items-service",
    }


def run(*, host: str, port: int, workers: int, graceful_timeout: int,
        loader: Callable[[], Any] | None = None) -> None:
    metrics_dir = prepare_metrics_dir()
    options = gunicorn_options(host=host, port=port, workers=workers,
                               graceful_timeout=graceful_timeout)
    try:
        ItemsServer(options, loader).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
