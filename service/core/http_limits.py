"""Limits Uvicorn's httptools protocol does not have: request-target and header-section size,
header count, and read timeouts for the head and the body of a request.

Uvicorn's h11 protocol bounds an incomplete event (``h11_max_incomplete_event_size``) but
answers 400 for it; httptools bounds nothing, buffers a header of any size, and starts no timer
before the first request, so a silent or slow client held its connection forever and a 50 MB
header was parsed and answered. This subclass counts what the parser is fed and answers, as
RFC 9110 and RFC 6585 name them:

- 414 when the request target passes ITEMS_MAX_REQUEST_TARGET_BYTES;
- 431 when the request line and headers pass ITEMS_MAX_HEADER_BYTES, or there are more
  than ITEMS_MAX_HEADERS header fields;
- 408 when a started request head is not complete within ITEMS_HEADER_TIMEOUT_SECONDS of the
  connection opening (or of its first byte, on a reused connection), or its body within
  ITEMS_BODY_TIMEOUT_SECONDS of the head; a connection that sends nothing is closed silently
  at the same deadline. Between requests Uvicorn's own keep-alive timeout applies.

Each refusal closes the connection: the rest of what the client sends is never parsed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.core.config import get_settings


@dataclass(frozen=True)
class Limits:
    max_target_bytes: int
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float


@lru_cache
def current_limits() -> Limits:
    settings = get_settings()
    return Limits(
        settings.max_request_target_bytes,
        settings.max_header_bytes,
        settings.max_headers,
        settings.header_timeout_seconds,
        settings.body_timeout_seconds,
    )


class _RefusedError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _raw_problem(status: int, detail: str) -> bytes:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = current_limits()
        self._head_bytes = 0
        self._header_count = 0
        self._in_body = False
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    # Timers: one deadline at a time, for the head or for the body.
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_body and self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, "the request body did not arrive in time")
        elif not self._in_body and self._head_bytes > 0:
            self._refuse(408, "the request head did not arrive in time")
        else:
            self.transport.close()  # nothing sent, or the answer is already under way

    def _refuse(self, status: int, detail: str) -> None:
        self._refused = True
        self._disarm()
        self.logger.warning("refused a request: %s %s", status, detail)
        self.transport.write(_raw_problem(status, detail))
        self.transport.close()

    # Protocol interface
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if not self._in_body:
            if self._deadline is None:
                self._arm(self.limits.header_timeout)
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            refused = error.__context__
            if isinstance(refused, _RefusedError):
                self._refuse(refused.status, refused.detail)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if not self._in_body and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(
                431,
                f"request headers exceed {self.limits.max_header_bytes} bytes "
                "(ITEMS_MAX_HEADER_BYTES)",
            )

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_target_bytes:
            raise _RefusedError(
                414,
                f"request target exceeds {self.limits.max_target_bytes} "
                "bytes (ITEMS_MAX_REQUEST_TARGET_BYTES)",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _RefusedError(
                431, f"more than {self.limits.max_headers} header fields (ITEMS_MAX_HEADERS)"
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()
