"""Request dependencies, and the app state the item routes read directly.

The dependencies are ``async def`` although none awaits: FastAPI runs a plain ``def``
dependency in its thread pool, a hand-off that costs more than the work these do. The item
routes skip even those for the engines and settings (``engines_of``, ``settings_of``): each
dependency is a call and a cache entry in FastAPI's resolver on every request.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import Depends, Header, Request

from service.api.problems import ProblemError
from service.core.config import Settings
from service.core.db import Engines


async def get_settings_from_app(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engines(request: Request) -> Engines:
    engines: Engines = request.app.state.engines
    return engines


SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
EnginesDep = Annotated[Engines, Depends(get_engines)]


def engines_of(request: Request) -> Engines:
    engines: Engines = request.app.state.engines
    return engines


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


_BEARER = re.compile(r"Bearer[ ]+([\x21-\x7e]+)[ ]*", re.IGNORECASE)


def _check_token(request: Request, authorization: str | None) -> None:
    tokens: list[bytes] = request.app.state.tokens
    if not tokens:
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="items"'}
    if authorization is None:
        raise ProblemError(401, "this operation needs a bearer token", problem="unauthorized",
                           headers=challenge)
    match = _BEARER.fullmatch(authorization)
    if match is None:
        raise ProblemError(401, "the Authorization header must be 'Bearer <token>'",
                           problem="unauthorized", headers=challenge)
    presented = match.group(1).encode()
    # Compare against every token, so the time taken does not reveal which one was close.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token)
    if not matched:
        raise ProblemError(403, "the bearer token is not accepted", problem="forbidden")


async def require_token(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """Writes need a bearer token; reads (GET) too with ITEMS_PROTECT_READS.

    create_app adds it to the item routes only when tokens are configured: without tokens
    every request is allowed, and the dependency would be work for nothing.
    """
    if request.method != "GET" or request.app.state.settings.protect_reads:
        _check_token(request, authorization)


TokenDep = Depends(require_token)
