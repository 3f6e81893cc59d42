"""Test image only: every ITEMS_E2E_ERROR_EVERY-th request to an /items route answers 500.

Wraps the routes' own ASGI apps, inside the service's request middleware, so the service's
metrics count the 500s as it counts its own; /healthz and /readyz are untouched (the pods turn
ready, and only the metrics tell the release is broken).
"""

import itertools
import os
from typing import Any

from fastapi.routing import APIRoute

from service import main

EVERY = int(os.environ.get("ITEMS_E2E_ERROR_EVERY", "5"))
_create_app = main.create_app


def _failing_every(inner: Any) -> Any:
    calls = itertools.count(1)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and next(calls) % EVERY == 0:
            headers = [(b"content-type", b"application/problem+json")]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"title":"injected fault"}'})
            return
        await inner(scope, receive, send)

    return app


def create_app(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/items"):
            route.app = _failing_every(route.app)
    return app


main.create_app = create_app
