"""Kopf's settings for this operator; apart from the handlers so tests can check them offline."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from items_operator.constants import GROUP

# Kopf's own inactivity_timeout: the watch timeouts the operator always ran with.
DEFAULT_WATCH_TIMEOUT = 70.0
MIN_WATCH_TIMEOUT = 10.0
# The API server sends a quiet watch a bookmark about once a minute (Kopf's reasoning for its
# 70 s default): a timer that long never fires on a healthy stream.
BOOKMARK_PERIOD = 60.0
BOOKMARK_JITTER = 10.0
SERVER_TIMEOUT = 270
WORKER_IDLE_TIMEOUT = 0.5
# Under a shorter --watch-timeout the server ends each watch request this long before its
# inactivity timer (one per request) could fire on a healthy, quiet stream.
SERVER_TIMEOUT_LEAD = 5.0
# The whole request's backstop, after the server's own end of it.
CLIENT_TIMEOUT_LEAD = 30.0


@dataclass(frozen=True)
class WatchTimeouts:
    """Kopf's watch settings from one figure, --watch-timeout.

    `inactivity` is Kopf's `watching.inactivity_timeout`: an asyncio timeout around each watch
    request, pushed back on every event (bookmarks included). It is what ends a silent stream
    (TCP open, no bytes): Kopf then resumes the watch from the last resourceVersion it saw, so
    nothing is lost. `server` (timeoutSeconds) ends healthy requests; `client` (aiohttp's
    total) bounds a whole request, events or not.
    """

    inactivity: float
    server: int  # Kopf sends it as str(): the API server parses an integer only
    client: float


def watch_timeouts(seconds: float = DEFAULT_WATCH_TIMEOUT) -> WatchTimeouts:
    """The settings for a watch timeout (seconds); refuses one under MIN_WATCH_TIMEOUT."""
    if not math.isfinite(seconds) or seconds < MIN_WATCH_TIMEOUT:
        raise ValueError(f"--watch-timeout must be at least {MIN_WATCH_TIMEOUT:g} s: {seconds}")
    # Minute bookmarks keep a quiet stream alive under a long timeout; a shorter one needs the
    # server to end each request first.
    long_enough = seconds >= BOOKMARK_PERIOD + BOOKMARK_JITTER
    server = SERVER_TIMEOUT if long_enough else math.floor(seconds - SERVER_TIMEOUT_LEAD)
    return WatchTimeouts(inactivity=seconds, server=server, client=server + CLIENT_TIMEOUT_LEAD)


def apply_settings(settings: kopf.OperatorSettings, watch: WatchTimeouts | None = None) -> None:
    """Kopf settings; separate from the startup handler so tests can check them offline."""
    watch = watch or watch_timeouts()
    # Kopf's bookkeeping goes to annotations under our prefix; status stays ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    # A silent watch (a proxy or load balancer that stopped forwarding) is a stale view:
    # it ends `inactivity` seconds after its last event and resumes (WatchTimeouts).
    settings.watching.inactivity_timeout = watch.inactivity
    settings.watching.server_timeout = watch.server
    settings.watching.client_timeout = watch.client
    settings.watching.connect_timeout = 10
    # Memory at fleet scale (docs/benchmarks.md): a per-object worker, which holds its task,
    # loggers and the object's last raw body, exits half a second after its last event
    # instead of five (a fleet in motion kept all of that per object alive that long). Not
    # paged listings (watching.chunk_size): Kopf 1.45 does not handle a 410 on an expired
    # continue token, and a watcher that dies on one is not restarted.
    settings.queueing.idle_timeout = WORKER_IDLE_TIMEOUT
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # One ClusterKopfPeering even when serving a namespace list: one active replica in total.
    settings.peering.clusterwide = True
    # Only the events we post explicitly; log lines stay in the logs.
    settings.posting.loggers = False


NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def apply_scanning(settings: kopf.OperatorSettings, namespaces: Sequence[str]) -> None:
    """Serving named namespaces needs no namespace listing: say so to Kopf.

    Kopf lists and watches Namespaces whenever it serves a namespace list, to resolve globs;
    our ClusterRole does not grant that, and the 403 is retried for about a minute before Kopf
    falls back, so an operator started with `--namespace items` would sit idle that long.
    With plain names only, scanning is switched off (the CRD is then read once at start, not
    watched); globs keep it on and need `list`/`watch` on namespaces granted separately.
    """
    if namespaces and all(NAMESPACE_NAME.fullmatch(n) for n in namespaces):
        settings.scanning.disabled = True


def on_the_loop(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """`fn` as a coroutine function, for Kopf: Kopf runs a plain function in its thread pool,
    and these (the wake-ups) touch asyncio Events and shared dicts that belong to
    the event loop; an Event set from another thread wakes its waiter only when the loop next
    wakes for something else. Each is short and awaits nothing, so it runs inline."""

    async def inline(**kwargs: Any) -> Any:
        return fn(**kwargs)

    # The name (Kopf's handler id, the log filter's key), but no __wrapped__: Kopf follows that
    # to the plain function and would run the coroutine function in its thread pool (never
    # awaiting the coroutine it returns), as functools.wraps would set it.
    inline.__name__, inline.__qualname__ = fn.__name__, fn.__qualname__
    inline.__doc__ = fn.__doc__
    return inline
