"""A loopback TCP proxy to the API server that can go silent, for the frozen-watch test.

Raw bytes are forwarded (the client's TLS runs end to end with the API server, whose
certificate names 127.0.0.1). `silence()` freezes every connection open at that moment: they
stay open and forward nothing in either direction (what a stuck proxy or load balancer does,
FIN included), while connections opened afterwards work. The proxy runs its own event loop in
a thread, so a synchronous test and Kopf's thread (KopfRunner) can both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

HOST = "127.0.0.1"
CHUNK = 65536


@dataclass
class Connection:
    opened: float  # time.monotonic()
    frozen: bool = False
    to_client: int = 0  # bytes forwarded from the API server
    withheld: int = 0  # bytes the API server sent after the freeze, dropped


class SilentProxy:
    """`with SilentProxy(host, port) as proxy:` listens on 127.0.0.1:proxy.port."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.connections: list[Connection] = []
        self.silenced_at: float | None = None
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> SilentProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, HOST, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_: object) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def silence(self) -> int:
        """Freeze the connections open now; return how many."""

        async def freeze() -> int:
            self.silenced_at = time.monotonic()
            for connection in self.connections:
                connection.frozen = True
            return len(self.connections)

        frozen: int = self._call(freeze())
        return frozen

    def opened_since(self, moment: float) -> list[Connection]:
        return [c for c in list(self.connections) if c.opened >= moment]

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(opened=time.monotonic())
        self.connections.append(connection)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), 10
            )
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        upstream = asyncio.ensure_future(self._pump(up_reader, writer, connection, down=True))
        try:
            await self._pump(reader, up_writer, connection, down=False)
        finally:
            # The client is gone (or the proxy closes): so is its upstream leg.
            upstream.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        connection: Connection,
        *,
        down: bool,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(CHUNK):
                if connection.frozen:
                    # Read and dropped, so the server's side never blocks on us.
                    connection.withheld += len(data) if down else 0
                    continue
                connection.to_client += len(data) if down else 0
                sink.write(data)
                await sink.drain()
        if down and connection.frozen:
            # A silent proxy forwards no FIN either: the client's leg stays open.
            await asyncio.Event().wait()
        with contextlib.suppress(OSError):
            sink.write_eof()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        # The frozen legs wait forever: end them before the loop stops.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def upstream_of(kubeconfig: Path) -> tuple[str, int]:
    """The API server's host and port in a kubeconfig's current context."""
    config = yaml.safe_load(kubeconfig.read_text())
    server = _current_cluster(config)["server"]
    parts = urlsplit(server)
    if parts.hostname is None:
        raise ValueError(f"no host in {server!r}")
    return parts.hostname, parts.port or 443


def through_proxy(kubeconfig: Path, port: int, into: Path) -> Path:
    """A copy of `kubeconfig` whose current cluster is reached at 127.0.0.1:port.

    TLS still verifies the API server's certificate: it must name 127.0.0.1 (the local
    cluster's does, hack/cluster/certs.sh), or tls-server-name must name what it does."""
    config = yaml.safe_load(kubeconfig.read_text())
    _current_cluster(config)["server"] = f"https://{HOST}:{port}"
    into.write_text(yaml.safe_dump(config))
    into.chmod(0o600)  # it holds the client key
    return into


def _current_cluster(config: dict[str, Any]) -> dict[str, Any]:
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    name = context["context"]["cluster"]
    cluster: dict[str, Any] = next(c for c in config["clusters"] if c["name"] == name)["cluster"]
    return cluster
