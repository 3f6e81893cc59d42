"""Test image only: every ITEMS_E2E_ERROR_EVERY-th request to an item route answers 500.

The innermost middleware of the app (appended to create_app's middleware list, so it runs after
routing and inside the service's own request middleware) turns the status of every 5th /items
response into 500: the service's metrics count it as one of its own 500s, under the route's
template. /healthz and /readyz are untouched: the pods turn ready, and only the metrics tell
the release is broken. Imported at the end of service/main.py.
"""

import itertools
import os
from typing import Any

from starlette.middleware import Middleware

from service import main

EVERY = int(os.environ.get("ITEMS_E2E_ERROR_EVERY", "5"))
_create_app = main.create_app


class EveryFifthFails:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = itertools.count(1)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/items")
            or next(self.calls) % EVERY
        ):
            await self.app(scope, receive, send)
            return

        async def failing(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "status": 500}
            await send(message)

        await self.app(scope, receive, failing)


def create_app(*args: Any, **kwargs: Any) -> Any:
    app = _create_app(*args, **kwargs)
    app.user_middleware.append(Middleware(EveryFifthFails))
    return app


main.create_app = create_app
