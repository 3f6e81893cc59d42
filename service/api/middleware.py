"""One pure-ASGI middleware for request id, body limit, access log and request metrics.

Pure ASGI rather than BaseHTTPMiddleware: no extra task per request, and streaming is untouched.
One layer rather than one per concern: every layer is another coroutine call and another
wrapped ``send`` on each request, and this service answers small requests where that shows.
"""

from __future__ import annotations

import re
import time
import uuid

from loguru import logger
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_response
from service.core import logging, metrics

_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"


def _too_large_detail(limit: int) -> str:
    return f"request body exceeds {limit} bytes (ITEMS_MAX_BODY_BYTES)"


class _BodyTooLargeError(HTTPException):
    """An HTTPException, so FastAPI's body reader lets it through to the problem handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_detail(limit))


class RequestMiddleware:
    """Per HTTP request: an id (X-Request-ID, echoed), a 413 problem once the body passes
    ``max_body_bytes`` (declared or streamed), the request metrics and one access log line."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, access_log: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        if method == "HEAD":  # HEAD is GET without the body (RFC 9110 9.3.2), on every GET route
            scope = {**scope, "method": "GET"}
        request_id: str | None = None
        has_body = too_large = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if request_id is None and _VALID_REQUEST_ID.fullmatch(value):
                    request_id = value.decode()
            elif name == b"content-length":
                has_body = True
                too_large = too_large or not value.isdigit() or int(value) > self.max_body_bytes
            elif name == b"transfer-encoding":
                has_body = True
        if request_id is None:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0  # set when the response starts
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif method == "HEAD" and message.get("body"):
                # Content-Length stays that of the GET, as RFC 9110 allows; the body goes.
                message = {**message, "body": b""}
            await send(message)

        if has_body:  # HTTP/1.1: without either header the body is empty, nothing to count
            receive = self._counting(receive)
        metrics.IN_FLIGHT.inc()
        try:
            with logger.contextualize(request_id=request_id):
                if too_large:
                    await self._reject(scope, receive, send_with_id)
                    return
                try:
                    await self.app(scope, receive, send_with_id)
                except _BodyTooLargeError:
                    if not status:  # else the response is under way: too late for a 413
                        await self._reject(scope, receive, send_with_id)
                except Exception as exc:
                    # Here, not in Starlette's outermost error handler: the log line gets the
                    # request id and traceback, and the 500 gets X-Request-ID.
                    logger.opt(exception=exc).error("unhandled error")
                    if status:
                        raise  # the response is under way: the server drops the connection
                    await problem_response(
                        500,
                        "internal error; the request id identifies it in the logs",
                        instance=scope["path"],
                    )(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            status = status or 500
            # A method outside the standard set is one label value, not one per spelling.
            label = method if method in KNOWN_METHODS else OTHER_METHOD
            metrics.observe_request(template, label, status, duration)
            if self.access_log:
                logging.access_line(
                    request_id=request_id,
                    method=method,
                    route=template,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(duration * 1000, 3),
                )

    def _counting(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError(limit)
            return message

        return counting_receive

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            _too_large_detail(self.max_body_bytes),
            instance=scope["path"],
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
