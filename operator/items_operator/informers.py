"""Watch-fed caches (--cache-reads on), listed and watched by the operator itself: one
informer per cached kind and served namespace (or one per kind cluster-wide).

Why not Kopf's @kopf.index (what this replaced, docs/benchmarks.md "Where the memory goes"):
Kopf lists each kind whole, decodes the whole list at once and keeps per-object machinery
(a worker task, loggers, memories, the raw body) for every object of every watched kind, while
the caches need one small record per object; and its watcher does not list again on a 410 of
an expired continue token. Here a list goes in pages (LIST_PAGE objects decoded at a time),
each object is reduced to its record (records.py) the moment it is decoded, a watch resumes
from the last resourceVersion it saw (bookmarks keep that fresh), and a 410 (an expired
continue token, a resourceVersion too old) lists again and diffs the new listing against the
store, so a deletion missed meanwhile is a deletion here too. A watch that delivers nothing for
--watch-timeout seconds (a proxy that went silent) is closed and resumed: the read timeout of
the stream is that timer (kopf_settings.WatchTimeouts).

The stores are pure (store.py); this module is only their I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from lightkube import AsyncClient

from items_operator import metrics
from items_operator.audit import PHANTOMS
from items_operator.kopf_settings import WatchTimeouts
from items_operator.kube_proxy import http_client
from items_operator.store import Change, Entry, ObjectId, Store

logger = logging.getLogger(__name__)

LIST_PAGE = 100
LIST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
RETRY_FLOOR, RETRY_CEILING = 1.0, 30.0
# A watch that ends sooner than this with no event made no progress (a proxy that closes
# streams, a server that refuses quietly): the next one waits, as after an error.
SHORT_WATCH = 1.0
HTTP_OK, HTTP_GONE = 200, 410
# httpx's pool holds 100 connections; each watch keeps one for minutes (HTTP/1.1), so the
# informers of at most this many namespaces share a client (8 kinds each, lists besides).
NAMESPACES_PER_CLIENT = 10

# kind, namespace, name, instance label of the object that changed (was added, was deleted).
OnChange = Callable[[str, str, str, str], None]
Sleep = Callable[[float], Awaitable[None]]


def retry_delay(failures: int) -> float:
    """Seconds before the next round after `failures` rounds in a row made no progress:
    none after none, then 1 s doubling to 30 s, +-20 % (informers apart)."""
    if failures <= 0:
        return 0.0
    base = min(RETRY_FLOOR * 2.0 ** (failures - 1), RETRY_CEILING)
    return base * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Source:
    """One cached kind: where it is listed, what the server selects, how an object becomes a
    store entry."""

    kind: str
    api: str  # "/api/v1", "/apis/apps/v1"
    plural: str
    entry: Callable[[dict[str, Any]], Entry]
    label_selector: str | None = None
    field_selector: str | None = None

    def path(self, namespace: str | None) -> str:
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{self.api}{where}/{self.plural}"

    def selectors(self) -> dict[str, str]:
        found = {}
        if self.label_selector:
            found["labelSelector"] = self.label_selector
        if self.field_selector:
            found["fieldSelector"] = self.field_selector
        return found


class ExpiredError(Exception):
    """410 Gone: the resourceVersion or the continue token is too old; list again."""


class RefusedError(Exception):
    """Not allowed or not there (401, 403, 404): the view cannot be trusted until a list
    succeeds; the passes of its namespace wait."""


class UnavailableError(Exception):
    """The API server could not answer now (429, 5xx): the view stays, the watch resumes
    from where it was after a wait (a restarting server is not a reason to list again)."""


REFUSALS = frozenset({401, 403, 404})


class Informer:
    """One kind in one namespace (None: all): list, then watch, for as long as it runs."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        source: Source,
        namespace: str | None,
        timeouts: WatchTimeouts,
        on_change: OnChange,
    ) -> None:
        self.http, self.source, self.namespace = http, source, namespace
        self.timeouts, self.on_change = timeouts, on_change
        self.store = Store()
        self.synced = asyncio.Event()
        self.version: str | None = None  # where the next watch resumes; None: list first
        self.sleep: Sleep = asyncio.sleep  # tests count the waits instead of waiting
        self.events = 0  # in the current round (run's measure of progress)
        self.watch_started: float | None = None  # the current round's watch request, if any
        self.where = f"{source.plural} in {namespace or 'all namespaces'}"

    async def run(self) -> None:
        """List, then watch, for as long as the operator runs: never ends on its own (a dead
        informer is a frozen cache), never spins (every round without progress waits; one
        that delivered events resumes at once, however it ended)."""
        failures = 0  # rounds in a row without progress
        while True:
            self.events, self.watch_started = 0, None
            try:
                if self.version is None:
                    await self.relist()
                await self.watch()
                ended = "ended"
            except ExpiredError:
                metrics.WATCH_RESTARTS.labels(self.source.kind, "expired").inc()
                logger.info(f"watch of {self.where}: resourceVersion expired; listing again")
                self.version = None
                ended = "expired"
            except Exception as error:
                ended = "failed"
                metrics.WATCH_RESTARTS.labels(self.source.kind, "error").inc()
                if isinstance(error, RefusedError):  # refused, not lost: no view to trust
                    self.synced.clear()
                    self.version = None
                expected = isinstance(
                    error, httpx.HTTPError | RefusedError | UnavailableError | TimeoutError
                )
                logger.warning(
                    f"watch of {self.where} {ended} ({failures + 1} in a row): {error!r}",
                    exc_info=not expected,
                )
            # The watch's own life, not the round's: a long list before a refused watch is
            # no progress (else a refused watch would relist a big namespace every second).
            lived = time.monotonic() - (self.watch_started or time.monotonic())
            progressed = self.events > 0 or lived >= SHORT_WATCH
            failures = 0 if progressed else failures + 1
            if ended == "ended" and not progressed:
                metrics.WATCH_RESTARTS.labels(self.source.kind, "short").inc()
            # A first expiry lists again at once, as client-go's reflector does.
            await self.sleep(retry_delay(failures - 1 if ended == "expired" else failures))

    async def relist(self) -> None:
        """The whole selection, page by page, then the store replaced by it: what changed or
        went meanwhile wakes its owner as an event would have. A continue token that expired
        mid-listing (410) is followed by one unpaged list, as client-go's pager does."""
        listing: dict[tuple[str, str], Entry] = {}
        token: str | None = None
        paged = True
        while True:
            params = self.source.selectors()
            if paged:
                params["limit"] = str(LIST_PAGE)
            if token:
                params["continue"] = token
            metrics.WATCH_REQUESTS.labels(self.source.kind, "list").inc()
            response = await self.http.get(
                self.source.path(self.namespace), params=params, timeout=LIST_TIMEOUT
            )
            if response.status_code == HTTP_GONE and token:
                metrics.WATCH_RESTARTS.labels(self.source.kind, "expired").inc()
                listing, token, paged = {}, None, False
                continue
            _check(response)
            page = response.json()
            for obj in page.get("items") or ():
                entry = self.entry(obj)
                if entry is not None:
                    listing[entry.object] = entry
                    PHANTOMS.touched((self.source.kind, *entry.object))
            del page["items"]  # a page at a time: the records are all that stays
            token = page["metadata"].get("continue") or None
            if token is None:
                break
        for change in self.store.replace(listing):
            self.changed(change)
        self.version = str(page["metadata"]["resourceVersion"])
        self.synced.set()

    async def watch(self) -> None:
        """One watch request, from self.version, until the server ends it, it goes silent for
        the inactivity timeout (then resumed by run) or the version expires (ExpiredError).
        Counts its events in self.events (run's measure of progress)."""
        params = {
            **self.source.selectors(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": str(self.version),
            "timeoutSeconds": str(self.timeouts.server),
        }
        timeout = httpx.Timeout(
            CONNECT_TIMEOUT, read=self.timeouts.inactivity, connect=CONNECT_TIMEOUT
        )
        metrics.WATCH_REQUESTS.labels(self.source.kind, "watch").inc()
        path = self.source.path(self.namespace)
        self.watch_started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeouts.client):
                async with self.http.stream("GET", path, params=params, timeout=timeout) as answer:
                    if answer.status_code != HTTP_OK:
                        await answer.aread()
                        _check(answer)
                    async for line in answer.aiter_lines():
                        if line.strip():
                            self.apply(json.loads(line))
                            self.events += 1
        except httpx.ReadTimeout:  # no byte for that long, headers or events: a silent stream
            metrics.WATCH_RESTARTS.labels(self.source.kind, "inactive").inc()
            logger.info(
                f"watch of {self.where} is inactive for {self.timeouts.inactivity:g}s; resuming it"
            )

    def apply(self, event: dict[str, Any]) -> None:
        """One watch event into the store; an ERROR event raises."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == HTTP_GONE:
                raise ExpiredError
            error = RefusedError if code in REFUSALS else UnavailableError
            raise error(f"{code} {obj.get('reason')}: {obj.get('message')}")
        meta = obj["metadata"]
        version = str(meta["resourceVersion"])
        if kind == "DELETED":  # by name alone: nothing of its body needs to be readable
            PHANTOMS.touched((self.source.kind, *_object_id(meta)))
            self.changed(self.store.delete(_object_id(meta)))
        elif kind != "BOOKMARK":
            entry = self.entry(obj)
            if entry is None:  # unreadable: forgotten, so a pass confirms it with the API
                self.changed(self.store.delete(_object_id(meta)))
            else:
                PHANTOMS.touched((self.source.kind, *entry.object))
                self.changed(self.store.put(entry))
        self.version = version

    def changed(self, change: Change | None) -> None:
        """Wake the owner of what changed; an object moved to another ItemService (its
        instance label changed) wakes both."""
        if change is None:
            return
        old, new = change
        for entry in {e.instance: e for e in (old, new) if e is not None}.values():
            self.on_change(self.source.kind, *entry.object, entry.instance)

    def entry(self, obj: dict[str, Any]) -> Entry | None:
        """The object's entry; None (logged, skipped) for one the reducers cannot read, which
        would otherwise fail its watch again on every resume."""
        try:
            return self.source.entry(obj)
        except (KeyError, TypeError, ValueError, AttributeError):
            metrics.WATCH_RESTARTS.labels(self.source.kind, "unreadable").inc()
            name = (obj.get("metadata") or {}).get("name")
            logger.exception(f"{self.source.kind} {name!r} in {self.where}: unreadable, skipped")
            return None


def _object_id(meta: dict[str, Any]) -> ObjectId:
    return str(meta.get("namespace") or ""), str(meta["name"])


def _check(response: httpx.Response) -> None:
    if response.status_code == HTTP_GONE:
        raise ExpiredError
    if response.status_code != HTTP_OK:
        error = RefusedError if response.status_code in REFUSALS else UnavailableError
        raise error(f"{response.status_code}: {response.text[:300]}")


class Informers:
    """All the informers of one operator: started with the operator, stopped with it."""

    def __init__(self, informers: Sequence[Informer], clients: Sequence[AsyncClient]) -> None:
        self.informers = {(i.source.kind, i.namespace): i for i in informers}
        # Their own clients: long watches never hold the passes' pool, nor each other's.
        self.clients = clients
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        sources: Sequence[Source],
        namespaces: Sequence[str],
        timeouts: WatchTimeouts,
        on_change: OnChange,
    ) -> Informers:
        where: list[str | None] = list(namespaces) or [None]
        groups = [
            where[i : i + NAMESPACES_PER_CLIENT]
            for i in range(0, len(where), NAMESPACES_PER_CLIENT)
        ]
        clients, found = [], []
        for group in groups:
            client = AsyncClient()
            clients.append(client)
            http = http_client(client)
            found += [Informer(http, s, ns, timeouts, on_change) for s in sources for ns in group]
        informers = cls(found, clients)
        informers.tasks = [
            asyncio.create_task(i.run(), name=f"informer {i.where}")
            for i in informers.informers.values()
        ]
        return informers

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()

    def serving(self, namespace: str) -> list[Informer]:
        """The informers whose stores a pass in `namespace` reads."""
        return [i for (_, ns), i in self.informers.items() if ns in (namespace, None)]

    def unsynced(self) -> int:
        return sum(not i.synced.is_set() for i in self.informers.values())

    async def wait_synced(self, namespace: str, seconds: float) -> bool:
        """Whether the informers of `namespace` have listed (and not been refused since),
        waiting `seconds` at most: one namespace's missing RoleBinding holds only its own."""
        waits = [i.synced.wait() for i in self.serving(namespace) if not i.synced.is_set()]
        if waits:
            try:
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*waits)
            except TimeoutError:
                return False
        return True
