"""Request dependencies, and the app state the item routes read directly.

The dependencies are ``async def`` although none awaits: FastAPI runs a plain ``def``
dependency in its thread pool, a hand-off that costs more than the work these do. The item
routes skip even those for the engines and settings (``engines_of``, ``settings_of``): each
dependency is a call and a cache entry in FastAPI's resolver on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.api.auth import TokenSource
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


async def require_token(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> None:
    """Writes need a bearer token; reads (GET) too with ITEMS_PROTECT_READS.

    create_app adds it to the item routes only when a token source is configured: without
    one every request is allowed, and the dependency would be work for nothing. The caller's
    id (request.state.caller) scopes idempotency keys; without auth every caller is "".
    """
    if request.method not in _READS or request.app.state.settings.protect_reads:
        source: TokenSource = request.app.state.token_source
        request.state.caller = source.identify(authorization)


_READS = frozenset({"GET", "HEAD"})
TokenDep = Depends(require_token)
