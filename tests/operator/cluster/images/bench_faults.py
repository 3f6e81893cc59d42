"""Test-only entry point (tests/operator/cluster/images, the bench14-* images): items-service
with one fault, chosen by BENCH_FAULT, and otherwise unchanged (`migrate` is passed through).

- oom: before it listens, allocates twice the container's memory limit (cgroup memory.max).
- slow-start: sleeps BENCH_SLOW_START_SECONDS (90) before it listens, so /healthz refuses.
- 5xx: answers HTTP 500 to a BENCH_ERROR_RATIO (0.2) share of requests on the /items routes,
  inside the service's own middleware, so its /metrics count them; probes are fine.
- blip: once, BENCH_BLIP_AFTER_SECONDS (1) after its first 200, /readyz answers 503 for
  BENCH_BLIP_SECONDS (8).
- crash: BENCH_CRASH_AFTER_SECONDS (1) after it starts, exits 1 with a message on stderr and
  nothing in its termination log (an unhandled error: the operator needs two runs or the
  kubelet's back-off, unlike the service's own start report).

The app itself is built in each worker after the fork, as items-service does it
(service/server.py): this module only hands the server a loader that wraps it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _number(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"title": "injected fault", "status": status, "detail": detail}).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def failing_share(inner: ASGIApp, ratio: float, draw: Callable[[], float]) -> ASGIApp:
    """A `ratio` share of /items requests is served, then answered 500 instead (the work done,
    as with a bug in the response path); inside the service's own middleware, so its metrics
    count the 500 under the matched route."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith("/items") or draw() >= ratio:
            await inner(scope, receive, send)
            return
        answered = False

        async def replace(message: Message) -> None:
            nonlocal answered
            done = message["type"] == "http.response.body" and not message.get("more_body")
            if done and not answered:
                answered = True
                await _answer(send, 500, "bench: an injected 5xx regression")

        await inner(scope, receive, replace)
        if not answered:
            await _answer(send, 500, "bench: an injected 5xx regression")

    return app


def blipping(
    inner: ASGIApp, after: float, length: float, clock: Callable[[], float] = time.monotonic
) -> ASGIApp:
    """/readyz answers 503 from `after` to `after + length` seconds after its first 200."""
    first_ready: float | None = None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal first_ready
        if scope["type"] != "http" or scope.get("path") != "/readyz":
            await inner(scope, receive, send)
            return
        now = clock()
        if first_ready is not None and first_ready + after <= now < first_ready + after + length:
            await _answer(send, 503, "bench: a readiness blip")
            return

        async def watch(message: Message) -> None:
            nonlocal first_ready
            if message["type"] == "http.response.start" and message["status"] == 200:
                first_ready = first_ready if first_ready is not None else clock()
            await send(message)

        await inner(scope, receive, watch)

    return app


def with_fault(app: Any, fault: str) -> Any:
    """The app with the fault as its innermost middleware (Starlette builds the stack at the
    first request: after the service's own middleware, which records status and route)."""
    from starlette.middleware import Middleware

    if fault == "5xx":
        ratio = _number("BENCH_ERROR_RATIO", 0.2)
        app.user_middleware.append(Middleware(failing_share, ratio, random.random))
    elif fault == "blip":
        after, length = _number("BENCH_BLIP_AFTER_SECONDS", 1), _number("BENCH_BLIP_SECONDS", 8)
        app.user_middleware.append(Middleware(blipping, after, length))
    return app


def _load_faulty_app(fault: str) -> Any:
    from service.main import create_app  # in the worker, after the fork (metrics folder set)

    return with_fault(create_app(), fault)


def _memory_limit() -> int:
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        text = "max"
    return int(text) if text.isdigit() else 512 * 2**20


def _stop_on_sigterm() -> None:
    # As pid 1 Python ignores SIGTERM without a handler: stop at once instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def main() -> int:
    fault = os.environ.get("BENCH_FAULT", "")
    serving = sys.argv[1:2] == ["serve"]
    if serving and fault == "oom":
        hog = b"\x01" * (2 * _memory_limit())  # written, so resident: the kernel kills us
        print(f"bench: oom: still alive with {len(hog)} bytes: no memory limit?", file=sys.stderr)
        return 137
    if serving and fault == "crash":
        _stop_on_sigterm()
        time.sleep(_number("BENCH_CRASH_AFTER_SECONDS", 1))
        print("bench: crash: RuntimeError: an unhandled error at start", file=sys.stderr)
        return 1
    if serving and fault == "slow-start":
        _stop_on_sigterm()
        time.sleep(_number("BENCH_SLOW_START_SECONDS", 90))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if serving and fault in ("5xx", "blip"):
        import service.server

        run = service.server.run

        def run_wrapped(**options: Any) -> None:
            run(**options, loader=lambda: _load_faulty_app(fault))

        service.server.run = run_wrapped  # cli.py imports it when it serves
    from service.cli import main as items_service

    return items_service()


if __name__ == "__main__":
    sys.exit(main())
