"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://items.platform.dev/problems/"


class FieldProblem(BaseModel):
    field: str = Field(description="Where: body.price, query.limit, ...")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the kind of problem, or about:blank.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(
        default=None, description="Per-field details (validation)."
    )


_DESCRIPTIONS = {
    400: "Malformed request (body not JSON, bad header or cursor)",
    401: "Bearer token missing or not valid (tokens are configured); see WWW-Authenticate",
    404: "No such resource",
    409: "Conflicts with another item (SKU already used)",
    412: "If-Match names a version that is no longer current",
    413: "Body larger than ITEMS_MAX_BODY_BYTES",
    415: "Body is not application/json",
    422: "Invalid input; errors lists each field",
    408: "The request head or body did not arrive in time (ITEMS_HEADER/BODY_TIMEOUT_SECONDS)",
    414: "Request target longer than ITEMS_MAX_REQUEST_TARGET_BYTES",
    428: "If-Match is required for writes (ITEMS_REQUIRE_IF_MATCH)",
    431: "Headers larger than ITEMS_MAX_HEADER_BYTES or more than ITEMS_MAX_HEADERS",
    503: "Database unavailable; retry after Retry-After seconds",
}


# Answered by the HTTP layer (service/core/http_limits.py) before any route runs: any request
# can receive them, so every operation documents them.
FRAMING_CODES = (408, 414, 431)


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem answers, so clients and fuzzers know every status."""
    return {
        code: {
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in sorted({*codes, *FRAMING_CODES})
    }


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        problem: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem = problem
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    problem: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem if problem else "about:blank",
        "title": phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _location(loc: tuple[Any, ...]) -> str:
    """JSON-pointer-like path to the field: ``body.price`` reads better than a tuple."""
    return ".".join(str(part) for part in loc)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    # Only the location, message and type: echoing input could leak what clients sent.
    return [
        {
            "field": _location(tuple(error.get("loc", ()))),
            "message": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.detail,
        instance=request.url.path,
        problem=exc.problem,
        headers=exc.headers,
        **exc.extensions,
    )


def _routes_matching(request: Request, path: str) -> list[Route]:
    scope = {**request.scope, "path": path}
    return [
        route
        for route in request.app.state.plain_routes
        if route.matches(scope)[0] is not Match.NONE
    ]


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette names only the first route's."""
    methods: set[str] = set()
    for route in _routes_matching(request, request.url.path):
        methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")  # RequestMiddleware serves HEAD on every GET route
    return ", ".join(sorted(methods))


def _slash_redirect(request: Request) -> Response | None:
    """/items → /items/ (and back), as a relative Location: never the client's Host header."""
    path = request.url.path
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    if not other.startswith("/") or other.startswith("//") or not _routes_matching(request, other):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    location = quote(other, safe="/") + (f"?{query}" if query else "")
    return Response(status_code=307, headers={"Location": location})


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    elif exc.status_code == 404 and (redirect := _slash_redirect(request)) is not None:
        return redirect
    return problem_response(
        exc.status_code, detail, instance=request.url.path, headers=headers or None
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        "the request is not valid; see errors for each field",
        instance=request.url.path,
        problem="validation",
        errors=_field_errors(exc),
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The log keeps the traceback; the client gets no internals.
    logger.opt(exception=exc).error("unhandled error")
    return problem_response(
        500, "internal error; the request id identifies it in the logs", instance=request.url.path
    )


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: {}", type(exc).__name__)
    return problem_response(
        503,
        "the database is unavailable; retry shortly",
        instance=request.url.path,
        headers={"Retry-After": "1"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for database_error in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        ConnectionError,
    ):
        app.add_exception_handler(database_error, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
