"""Gunicorn (process manager) with Uvicorn workers, configured in code.

The master never imports the application: each worker imports it after the fork, after
PROMETHEUS_MULTIPROC_DIR is set, so metrics are shared correctly across workers.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.workers.base import Worker
from uvicorn import Server
from uvicorn_worker import UvicornWorker

from items_logging import InterceptHandler
from service.core.http_limits import LimitedHttpToolsProtocol


class ConnectionCounts:
    """Each worker's open connections, in memory the master maps before it forks the workers.

    The master gives every worker a slot (pre_fork) and frees it when the worker exits; a
    worker writes only its own slot and reads the others'. Unsynchronised on purpose: a
    slightly stale count only makes one accept decision a little less fair.
    """

    SLOTS = 256  # live workers at once, restarts included; beyond that a worker just races
    FREE = -1
    CLOSED = 2**62  # a draining worker: never defer to it

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self.SLOTS * 8)  # anonymous and shared across fork
        self._counts = memoryview(self._memory).cast("q")
        for slot in range(self.SLOTS):
            self._counts[slot] = self.FREE

    def claim(self, used: set[object]) -> int | None:
        free = set(range(self.SLOTS)) - used
        if not free:
            return None
        slot = min(free)
        self._counts[slot] = 0
        return slot

    def release(self, slot: int) -> None:
        self._counts[slot] = self.FREE

    def publish(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def fewest_elsewhere(self, slot: int) -> int | None:
        counts = self._counts.tolist()
        counts[slot] = self.FREE
        others = [count for count in counts if count != self.FREE]
        return min(others) if others else None


_COUNTS: ConnectionCounts | None = None  # created by run(), in the master


class FairAcceptServer(Server):
    """Uvicorn's server, accepting on the shared listener only when it is the least loaded.

    The workers share Gunicorn's listening socket, and uvloop (libuv) accepts until the queue
    is empty: whichever worker wakes first takes a whole burst of new connections. With 32
    keep-alive clients (bench/service.py) we measured splits of 32/0 and 28/4, one worker
    saturating its core while the other idled. libuv's UV_TCP_SINGLE_ACCEPT switch is gone
    from the libuv that uvloop 0.23 bundles, one accept per wake-up still lets a worker that
    happens to be on a CPU take a whole burst, and per-worker SO_REUSEPORT sockets would
    reset the connections queued on a stopping worker. So each worker accepts one connection
    per readiness event, and only while no other worker holds fewer connections; a worker
    with more waits 1 ms and looks again, and takes the connection anyway after 5 ms (a
    starved or stuck peer must not stall new clients). Accepted connections then go through
    uvloop's transports and Uvicorn's protocol exactly as before.
    """

    DEFER_SECONDS = 0.001
    MAX_DEFER_SECONDS = 0.005
    PUBLISH_SECONDS = 0.05

    def __init__(self, config: Any, counts: ConnectionCounts | None, slot: int | None) -> None:
        super().__init__(config=config)
        self._counts, self._slot = counts, slot
        self._accepting: list[socket.socket] = []
        self._handshakes: set[asyncio.Task[Any]] = set()
        self._deferred_since: float | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None:  # not under Gunicorn: nothing is shared
            await super().startup(sockets)
            return
        await super().startup(sockets=[])  # lifespan and state; no listener of its own
        self._accepting = list(sockets)
        for sock in self._accepting:
            self._watch(sock)
        self._publish()

    def _open(self) -> int:
        return len(self.server_state.connections) + len(self._handshakes)

    def _publish(self) -> None:
        # Connections also close between accepts: keep the slot current while serving.
        if self._counts is not None and self._slot is not None and not self.should_exit:
            self._counts.publish(self._slot, self._open())
            asyncio.get_running_loop().call_later(self.PUBLISH_SECONDS, self._publish)

    def _watch(self, sock: socket.socket) -> None:
        if not self.should_exit:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept_one, sock)

    def _pause(self, sock: socket.socket, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        loop.call_later(seconds, self._watch, sock)

    def _yield_to_peer(self) -> bool:
        if self._counts is None or self._slot is None:
            return False
        mine = self._open()
        self._counts.publish(self._slot, mine)
        fewest = self._counts.fewest_elsewhere(self._slot)
        now = time.monotonic()
        if fewest is None or mine <= fewest:
            self._deferred_since = None
            return False
        if self._deferred_since is None:
            self._deferred_since = now
        return now - self._deferred_since < self.MAX_DEFER_SECONDS

    def _accept_one(self, sock: socket.socket) -> None:
        if self._yield_to_peer():
            self._pause(sock, self.DEFER_SECONDS)
            return
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it
        except OSError as exc:  # EMFILE and the like: back off instead of spinning
            logging.getLogger("gunicorn.error").warning("accept failed: %s", exc)
            self._pause(sock, 0.1)
            return
        self._deferred_since = None
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            loop.connect_accepted_socket(self._protocol, conn, ssl=self.config.ssl)
        )
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)
        if self._counts is not None and self._slot is not None:
            self._counts.publish(self._slot, self._open())

    def _protocol(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._accepting:
            loop.remove_reader(sock.fileno())  # stop accepting before the sockets close
        self._accepting = []
        if self._counts is not None and self._slot is not None:
            self._counts.publish(self._slot, ConnectionCounts.CLOSED)
        await super().shutdown(sockets)


class ItemsWorker(UvicornWorker):  # type: ignore[misc]
    """uvloop + httptools, lifespan on, access log ours (with route and request id), and
    connections spread over the workers (FairAcceptServer)."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 (the base class declares it mutable)
        "loop": "uvloop",
        # httptools, with the size limits and read timeouts it lacks (service.core.http_limits).
        "http": LimitedHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
    }

    async def _serve(self) -> None:
        # uvicorn_worker's own _serve, with FairAcceptServer in place of uvicorn's Server.
        self.config.app = self.wsgi
        server = FairAcceptServer(self.config, _COUNTS, getattr(self, "items_slot", None))
        self._items_server = server
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def callback_notify(self) -> None:
        # Uvicorn calls this every `timeout` seconds. Gunicorn's own workers leave when their
        # master is gone; Uvicorn's never look, so a master killed outright (SIGKILL, the OOM
        # killer) left orphan workers serving and holding the port: drain and exit instead.
        if os.getppid() != self.ppid:
            self.log.warning("master %s is gone: worker %s exits", self.ppid, self.pid)
            self._items_server.should_exit = True
        self.notify()


class LoguruGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """Gunicorn's own messages through the same JSON sink."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers = [InterceptHandler()]
            log.propagate = False
        self.access_log.disabled = True


def _pre_fork(server: Arbiter, worker: Worker) -> None:
    if _COUNTS is not None:  # a connection-count slot the new worker keeps for its life
        worker.items_slot = _COUNTS.claim(
            {getattr(w, "items_slot", None) for w in server.WORKERS.values()}
        )


def _child_exit(server: Arbiter, worker: Worker) -> None:
    from prometheus_client import multiprocess

    if _COUNTS is not None and getattr(worker, "items_slot", None) is not None:
        _COUNTS.release(worker.items_slot)

    # Forget the exited worker's live gauges (in-flight, pool) in the shared metrics folder.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _post_worker_init(worker: Worker) -> None:
    logging.getLogger("gunicorn.error").info("worker %s ready", worker.pid)


class ItemsServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], loader: Callable[[], Any] | None = None) -> None:
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


def gunicorn_options(
    *, host: str, port: int, workers: int, graceful_timeout: int, keepalive: int = 5
) -> dict[str, Any]:
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "worker_class": "service.server.ItemsWorker",
        "logger_class": "service.server.LoguruGunicornLogger",
        "graceful_timeout": graceful_timeout,
        "timeout": 30,
        "keepalive": keepalive,  # Uvicorn's timeout_keep_alive: the idle timeout between requests
        "backlog": 2048,
        "pre_fork": _pre_fork,
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "control_socket_disable": True,
        "proc_name": "items-service",
    }


def run(
    *,
    host: str,
    port: int,
    workers: int,
    graceful_timeout: int,
    keepalive: int = 5,
    loader: Callable[[], Any] | None = None,
) -> None:
    global _COUNTS
    _COUNTS = ConnectionCounts()
    metrics_dir = prepare_metrics_dir()
    options = gunicorn_options(
        host=host,
        port=port,
        workers=workers,
        graceful_timeout=graceful_timeout,
        keepalive=keepalive,
    )
    try:
        ItemsServer(options, loader).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
