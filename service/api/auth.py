"""Bearer tokens (RFC 6750): where they come from, and the check on each request.

Tokens come from ITEMS_API_TOKENS and from ITEMS_API_TOKENS_FILE, one per line. The file is
a mounted Secret: Kubernetes replaces it by swapping the ``..data`` symlink, which changes the
inode a ``stat`` of the path reaches. So the file is stat'ed at most once a second, and read
again only when its inode, size or mtime changed: a revoked token stops working within about
a second of the kubelet's update, with no restart.

Fails closed: a configured source that yields no token refuses start-up
(``TokenSourceError``); one that becomes empty or unreadable later refuses every protected
request with 401 until it holds tokens again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from pathlib import Path

from loguru import logger

from service.api.problems import ProblemError
from service.core.config import Settings

RECHECK_SECONDS = 1.0
_BEARER = re.compile(r"Bearer(?:[ ]+(.*))?", re.IGNORECASE | re.DOTALL)
# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*[ ]*")
REALM = 'Bearer realm="items"'


class TokenSourceError(ValueError):
    """A configured token source holds no token."""


def caller_id(token: bytes) -> str:
    """A stable, non-secret name for the holder of a token (idempotency keys are scoped by it)."""
    return hashlib.sha256(token).hexdigest()[:32]


def _read_file(path: Path) -> list[bytes]:
    text = path.read_text(encoding="utf-8")
    return [line.strip().encode() for line in text.splitlines() if line.strip()]


class TokenSource:
    def __init__(self, settings: Settings) -> None:
        self._static = [token.get_secret_value().encode() for token in settings.api_tokens]
        self._path = settings.api_tokens_file
        # ITEMS_API_TOKENS="" reads as unset; a mounted file is a source even when empty.
        self.configured = bool(self._static) or self._path is not None
        self._file_tokens: list[bytes] = []
        self._signature: tuple[int, ...] | None = None
        self._checked_at = 0.0
        if self._path is not None:
            try:
                self._reload(force=True)
            except OSError as exc:
                raise TokenSourceError(
                    f"ITEMS_API_TOKENS_FILE: cannot read {self._path}: {exc.strerror}"
                ) from None
        if self.configured and not self.tokens():
            raise TokenSourceError(
                "ITEMS_API_TOKENS / ITEMS_API_TOKENS_FILE are set but hold no "
                "token; the service refuses to start rather than run open"
            )

    def _reload(self, *, force: bool = False) -> None:
        assert self._path is not None
        info = os.stat(self._path)  # follows the ..data symlink to the current file
        signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if force or signature != self._signature:
            self._file_tokens = _read_file(self._path)
            if self._signature is not None:
                logger.info("bearer tokens reloaded", count=len(self._file_tokens))
            self._signature = signature

    def tokens(self) -> list[bytes]:
        if self._path is not None:
            now = time.monotonic()
            if now - self._checked_at >= RECHECK_SECONDS:
                self._checked_at = now
                try:
                    self._reload()
                except OSError as exc:  # fail closed until the file is back
                    if self._file_tokens:
                        logger.warning("bearer token file unreadable: {}", exc.strerror)
                    self._file_tokens, self._signature = [], None
        return self._static + self._file_tokens if self._file_tokens else self._static

    def identify(self, authorization: str | None) -> str:
        """The caller's id for a valid ``Authorization`` header; a problem otherwise."""
        if authorization is None:
            raise ProblemError(
                401,
                "this operation needs a bearer token",
                problem="unauthorized",
                headers={"WWW-Authenticate": REALM},
            )
        match = _BEARER.fullmatch(authorization.strip(" "))
        if match is None:  # another scheme (Basic, ...): no bearer credentials were sent
            raise ProblemError(
                401,
                "the Authorization header must be 'Bearer <token>'",
                problem="unauthorized",
                headers={"WWW-Authenticate": REALM},
            )
        credentials = match.group(1) or ""
        if not _B64TOKEN.fullmatch(credentials):
            raise ProblemError(
                400,
                "the bearer token is malformed",
                problem="invalid-request",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'},
            )
        presented = credentials.rstrip(" ").encode()
        # Compare against every token, so the time taken does not reveal which one was close.
        matched = False
        for token in self.tokens():
            matched |= hmac.compare_digest(presented, token)
        if not matched:
            raise ProblemError(
                401,
                "the bearer token is not valid",
                problem="invalid-token",
                headers={
                    "WWW-Authenticate": f'{REALM}, error="invalid_token", '
                    'error_description="the token is not accepted"'
                },
            )
        return caller_id(presented)
