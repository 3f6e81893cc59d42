"""Liveness, readiness and metrics: what Kubernetes and Prometheus ask."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field

from service import schema
from service.api.deps import EnginesDep, SettingsDep
from service.core import metrics
from service.core.lifecycle import state

router = APIRouter(tags=["operations"])


class ReadinessReport(BaseModel):
    status: str = Field(description="ok, or unavailable")
    checks: dict[str, str] = Field(description="Each check's outcome: shutdown, database, schema")


_last_revision: list[str] = []  # remembered per process, to retire the old metric label


@router.get("/healthz", summary="Liveness: the process answers; never touches the database")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _schema_check(engines: EnginesDep) -> tuple[bool, str]:
    known = schema.known_revisions()
    async with engines.read.connect() as conn:
        current = await schema.current_revision(conn)
    status = schema.classify(current, known)
    revision = current or "none"
    if not _last_revision or _last_revision[0] != revision:
        if _last_revision:
            metrics.SCHEMA_INFO.labels(revision=_last_revision[0], image_head=known.head).set(0)
            _last_revision.clear()
        _last_revision.append(revision)
    metrics.SCHEMA_INFO.labels(revision=revision, image_head=known.head).set(1)
    if status is schema.SchemaState.AT_HEAD:
        return True, f"ok: at {known.head}"
    if status is schema.SchemaState.AHEAD:
        return True, f"ok: at {revision}, newer than this image's {known.head} (compatible)"
    if status is schema.SchemaState.BEHIND:
        return False, f"behind: database at {revision}, this image needs {known.head}"
    return False, f"unmigrated: run 'items-service migrate' (this image needs {known.head})"


@router.get(
    "/readyz",
    summary="Readiness: not shutting down, database reachable, schema not behind this image",
    responses={503: {"description": "Not ready; the body says which check failed"}},
    response_model=ReadinessReport,
)
async def readyz(engines: EnginesDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    ready = True
    if state.shutting_down:
        checks["shutdown"] = "in progress"
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    try:
        ok, message = await asyncio.wait_for(
            _schema_check(engines), settings.readiness_timeout_seconds
        )
        checks["database"] = "ok"
        checks["schema"] = message
        ready = ok
    except TimeoutError:
        checks["database"] = f"unreachable: no answer within {settings.readiness_timeout_seconds}s"
        ready = False
    except Exception as exc:  # any driver failure means "not ready", never a 500
        logger.warning("readiness: database check failed: {}", type(exc).__name__)
        checks["database"] = f"unreachable: {type(exc).__name__}"
        ready = False
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
