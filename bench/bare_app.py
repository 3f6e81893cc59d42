"""The ceiling: a bare ASGI callable answering every request with one fixed JSON body.

Served by the same Gunicorn + Uvicorn worker configuration as the service (bench/serve.py), so
the difference between this and the service is the cost of the framework, the middleware and
the database, not of the server.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

BODY = (
    b'{"name":"bench item","description":"","price":12.5,"in_stock":true,"sku":null,'
    b'"id":1,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z",'
    b'"version":1}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    # Read the body (POST, PATCH) as a real handler would, then answer.
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
