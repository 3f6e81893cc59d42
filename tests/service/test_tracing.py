"""Tracing is off by default and, with an OTLP endpoint configured, exports real spans."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

Received = list[tuple[str, str, bytes]]


@pytest.fixture
def collector() -> Iterator[tuple[str, Received]]:
    """A minimal OTLP/HTTP receiver on loopback that records what it is sent."""
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_spans_reach_the_collector(
    make_client: Callable[..., TestClient], collector: tuple[str, Received], backend: str
) -> None:
    endpoint, received = collector
    client = make_client(otlp_endpoint=endpoint)
    assert client.post("/items/", json={"name": "traced", "price": 1}).status_code == 201
    assert client.get("/healthz").status_code == 200
    client.__exit__(None, None, None)  # shutdown flushes the batch
    assert received, "no export reached the collector"
    path, content_type, body = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    names = {
        span.name
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert any("/items/" in name for name in names), names
    assert not any("healthz" in name for name in names)  # probes are not traced
    service_names = {
        attribute.value.string_value
        for resource in request.resource_spans
        for attribute in resource.resource.attributes
        if attribute.key == "service.name"
    }
    assert service_names == {"items-service"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_tracing_is_off_by_default(client: TestClient, backend: str) -> None:
    assert client.app.state.stop_tracing is None  # type: ignore[attr-defined]
