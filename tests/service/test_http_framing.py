"""Framing limits and timeouts, over raw sockets against the real Gunicorn + Uvicorn server.

The server runs on SQLite with short timeouts so the deadlines are seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, start_live_server, stop_process_group

pytestmark = pytest.mark.slow
TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("framing")
    live = start_live_server(
        {
            "ITEMS_SQLITE_PATH": str(folder / "items.db"),
            "ITEMS_HEADER_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            "ITEMS_BODY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
            "ITEMS_KEEPALIVE_TIMEOUT_SECONDS": "1",
        },
        folder / "server.log",
    )
    yield live
    stop_process_group(live.process)


def _connect(server: LiveServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket, deadline_seconds: float = 10) -> bytes:
    """Everything until the server closes the connection (or the deadline passes)."""
    sock.settimeout(deadline_seconds)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # The server may refuse and close before all is sent: what these tests expect.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def test_a_long_request_target_gets_414(server: LiveServer) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /items/?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = _read_all(sock)
    assert _status(response) == 414
    assert b"application/problem+json" in response


def test_too_many_header_fields_get_431(server: LiveServer) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert _status(_read_all(sock)) == 431


def test_a_huge_header_gets_431_without_delaying_probes(server: LiveServer) -> None:
    """Two clients each streaming a 50 MB header; /healthz stays fast throughout."""
    sent = [0, 0]
    answers: list[bytes] = [b"", b""]

    def flood(index: int) -> None:
        with _connect(server) as sock:
            _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * 65536
            try:
                for _ in range(800):  # 50 MB at most
                    sock.sendall(chunk)
                    sent[index] += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answers[index] = _read_all(sock)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    probe_times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(20):
            started = time.monotonic()
            assert client.get(f"{server.base_url}/healthz").status_code == 200
            probe_times.append(time.monotonic() - started)
    for thread in threads:
        thread.join(timeout=60)
    for answer in answers:
        if answer:  # the refusal may be lost if the reset beats it; the close is what counts
            assert _status(answer) == 431
    assert max(sent) < 50 * 1024 * 1024, "the server read a whole 50 MB header"
    assert max(probe_times) < 1.0, probe_times


def test_a_silent_connection_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""  # closed without an answer: nothing was asked
        assert time.monotonic() - started < TIMEOUT_SECONDS + 3


def test_a_partial_head_gets_408(server: LiveServer) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        response = _read_all(sock)
    assert _status(response) == 408
    assert time.monotonic() - started < TIMEOUT_SECONDS + 3


def test_a_slow_drip_head_gets_408(server: LiveServer) -> None:
    """A byte every 0.2 s never completes the head: the deadline is for the whole head."""
    with _connect(server) as sock:
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa":
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > TIMEOUT_SECONDS + 3:
                break
            time.sleep(0.2)
        response = _read_all(sock)
    assert _status(response) == 408


def test_a_partial_body_gets_408(server: LiveServer) -> None:
    with _connect(server) as sock:
        _send_quietly(
            sock,
            b"POST /items/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 100\r\n\r\n{"name":',
        )
        response = _read_all(sock)
    assert _status(response) == 408


def test_an_idle_keep_alive_connection_is_closed(server: LiveServer) -> None:
    with _connect(server) as sock:
        _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        response = _read_all(sock)
    assert _status(response) == 200
    assert time.monotonic() - started < 5


def test_requests_within_the_limits_are_served(server: LiveServer) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(90))
    with _connect(server) as sock:
        _send_quietly(
            sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"
        )
        assert _status(_read_all(sock)) == 200
    with _connect(server) as sock:  # keep-alive: two requests, one connection
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        _send_quietly(sock, request + request)
        assert _read_all(sock).count(b"HTTP/1.1 200") == 2


def test_head_sends_headers_only_and_keeps_the_connection_usable(server: LiveServer) -> None:
    with _connect(server) as sock:
        _send_quietly(
            sock,
            b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        response = _read_all(sock)
    head, _, rest = response.partition(b"\r\n\r\n")
    assert _status(head) == 200
    assert b"content-length: " in head.lower()
    assert rest.startswith(b"HTTP/1.1 200"), rest[:100]  # no body came between the answers
