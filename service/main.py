"""The application factory: wiring only; behaviour lives in the routers and core modules."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from loguru import logger
from starlette.routing import Route

from service import __version__, crud, idempotency
from service.api import openapi_extras, problems
from service.api.auth import TokenSource
from service.api.deps import TokenDep
from service.api.middleware import RequestMiddleware
from service.api.routes import health, items
from service.core.config import Settings, get_settings
from service.core.db import create_engines, is_embedded
from service.core.lifecycle import install_shutdown_hook, tune_gc
from service.core.pool_metrics import track_pool
from service.core.tracing import setup_tracing

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


async def _purge_idempotency_keys(app: FastAPI, settings: Settings) -> None:
    """Forget Idempotency-Keys past their TTL (lookups ignore them already), in bounded rounds.

    Every worker runs this; the random phase spreads the rounds, and a round that finds
    nothing costs one indexed SELECT.
    """
    interval = settings.idempotency_purge_interval_seconds
    await asyncio.sleep(random.uniform(0.1, 1.0) * interval)
    while True:
        try:
            purged = await idempotency.purge(
                app.state.engines.write,
                older_than=crud.utcnow() - timedelta(seconds=settings.idempotency_key_ttl_seconds),
            )
            if purged:
                logger.info("purged expired idempotency keys", count=purged)
        except Exception as exc:  # the next round tries again
            logger.warning("idempotency key purge failed: {}", type(exc).__name__)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None, *, install_signal_hooks: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engines = create_engines(settings)
        track_pool(engines.read, "read", engines.capacity)
        track_pool(engines.write, "write", engines.capacity)
        app.state.engines = engines
        purge = asyncio.create_task(_purge_idempotency_keys(app, settings))
        if install_signal_hooks:  # the app owns its process (the server), not embedded (tests)
            install_shutdown_hook(settings.shutdown_delay_seconds)
            tune_gc()
        logger.info(
            "service started",
            version=__version__,
            database="embedded sqlite"
            if is_embedded(settings)
            else engines.write.url.render_as_string(hide_password=True),
        )
        try:
            yield
        finally:
            purge.cancel()
            await engines.dispose()
            if app.state.stop_tracing is not None:
                app.state.stop_tracing()  # flush the spans still buffered
            logger.info("service stopped")

    app = FastAPI(
        # FastAPI's own OpenTelemetry support checks the global providers on every request;
        # tracing here is opt-in (setup_tracing), so without an endpoint it is switched off.
        telemetry=None if settings.otlp_endpoint else NO_TELEMETRY,
        title="Items API",
        version=__version__,
        description="Items with exact prices, optimistic concurrency (ETag/If-Match), "
        "idempotent creation (Idempotency-Key) and keyset pagination.",
        lifespan=lifespan,
    )
    # Starlette's own redirect builds an absolute URL from the Host header; problems.py
    # answers with a relative Location instead.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.token_source = TokenSource(settings)  # TokenSourceError: refuse to start
    secret = settings.cursor_secret
    app.state.cursor_key = (
        hashlib.sha256(secret.get_secret_value().encode()).digest() if secret else None
    )
    problems.install(app)
    protected = app.state.token_source.configured
    app.include_router(items.router, dependencies=[TokenDep] if protected else [])
    app.include_router(health.router)
    # The routes as declared, for Allow and the slash redirect (included routers are wrapped).
    app.state.plain_routes = [
        route
        for route in (*app.router.routes, *items.router.routes, *health.router.routes)
        if isinstance(route, Route)
    ]
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes)
    app.state.stop_tracing = setup_tracing(app, settings)
    _document_problems(app, protected=protected, protect_reads=settings.protect_reads)
    return app


def _document_problems(app: FastAPI, *, protected: bool, protect_reads: bool) -> None:
    """Add the Problem schema, which the routes' error responses reference, to the document,
    the bearer scheme when tokens are configured, and the headers the API relies on."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = problems.Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            openapi_extras.document(schema, protected=protected, protect_reads=protect_reads)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
