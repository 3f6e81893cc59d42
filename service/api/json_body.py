"""Request bodies: JSON only (415 otherwise), and numbers parsed exactly.

The standard ``json`` module turns 19.999999999999999 into the float 20.0 before any validator
sees it, so excess digits in a price would be rounded instead of refused. Here every JSON
number with a fraction or exponent becomes a Decimal of exactly the digits sent, and the
model's constraints (12 digits, 2 places) judge those. NaN and Infinity are not JSON: 422.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from service.api.problems import ProblemError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_MISSING = object()


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        cached = getattr(self, "_exact_json", _JSON_MISSING)
        if cached is _JSON_MISSING:
            cached = self._exact_json = json.loads(
                await self.body(), parse_float=Decimal, parse_constant=_refuse_constant
            )
        return cached


class JSONRoute(APIRoute):
    """An APIRoute whose handler sees ExactJSONRequest and refuses non-JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                content_type = request.headers.get("content-type")
                # No Content-Type at all is read as JSON (curl --data-binary and old clients).
                if content_type is not None and not is_json_media_type(content_type):
                    raise ProblemError(
                        415,
                        "send the body as application/json",
                        problem="unsupported-media-type",
                        headers={"Accept": "application/json", "Accept-Patch": "application/json"},
                    )
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return route
