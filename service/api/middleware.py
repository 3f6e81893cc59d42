"""One pure-ASGI middleware for request id, access log and request metrics.

Pure ASGI rather than BaseHTTPMiddleware: no extra task per request, and streaming is untouched.
"""

from __future__ import annotations

import re
import time
import uuid

from loguru import logger
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response
from service.core import metrics

_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _VALID_REQUEST_ID.fullmatch(value):
            return str(value.decode())
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        header_value = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", header_value)]
            await send(message)

        started = time.perf_counter()
        metrics.IN_FLIGHT.inc()
        try:
            with logger.contextualize(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"]
            metrics.REQUESTS.labels(route=template, method=method, status=str(status)).inc()
            metrics.LATENCY.labels(route=template, method=method).observe(duration)
            if self.access_log:
                logger.bind(request_id=request_id, method=method, route=template,
                            path=scope["path"], status=status,
                            duration_ms=round(duration * 1000, 3)).info("request")


def _too_large_detail(limit: int) -> str:
    return f"request body exceeds {limit} bytes (ITEMS_MAX_BODY_BYTES)"


class _BodyTooLargeError(HTTPException):
    """An HTTPException, so FastAPI's body reader lets it through to the problem handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_detail(limit))


class BodyLimitMiddleware:
    """413 as a problem document once a body passes the limit, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, _too_large_detail(self.max_body_bytes),
                                    instance=scope["path"], headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (
                not value.isdigit() or int(value) > self.max_body_bytes
            ):
                await self._reject(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await self._reject(scope, receive, send)
